"""Deterministic euro reference rates: the TARGET calendar and a seeded rate for every (day, currency).

A rate depends only on (seed, currency, day), never on the range asked for, so the daily, the 90-day and the
historical feed always agree with each other and across runs. Each currency wanders slowly (a sine wave with
its own phase, ±5%) around a realistic level, plus a small seeded daily wiggle (±0.4%).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

# Units per EUR around which each currency moves (roughly the 2024 levels). Covers every currency the Cin7
# sandbox uses (AUD, CAD, EUR, GBP, NZD, USD; EUR is the anchor and is not quoted) and more.
LEVELS: dict[str, float] = {
    "USD": 1.08, "JPY": 162.0, "CZK": 25.0, "DKK": 7.46, "GBP": 0.855, "HUF": 390.0, "PLN": 4.3,
    "SEK": 11.3, "CHF": 0.95, "NOK": 11.6, "AUD": 1.65, "CAD": 1.47, "CNY": 7.8, "HKD": 8.45, "INR": 90.0,
    "NZD": 1.80, "SGD": 1.45, "ZAR": 20.0, "MXN": 19.5,
}
CURRENCIES: tuple[str, ...] = tuple(LEVELS)
_TWO_DECIMALS = {"JPY", "HUF"}
_EPOCH = date(1999, 1, 4)  # the first ECB publication day


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def target_holidays(year: int) -> set[date]:
    """TARGET2 closing days besides weekends: New Year, Good Friday, Easter Monday, 1 May, 25 and 26 Dec."""
    easter = easter_sunday(year)
    return {date(year, 1, 1), easter - timedelta(days=2), easter + timedelta(days=1), date(year, 5, 1),
            date(year, 12, 25), date(year, 12, 26)}


def is_publication_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target_holidays(day.year)


def publication_days(first: date, last: date) -> Iterator[date]:
    """Every TARGET working day in [first, last], oldest first."""
    day = max(first, _EPOCH)
    while day <= last:
        if is_publication_day(day):
            yield day
        day += timedelta(days=1)


def last_publication_day(on_or_before: date) -> date:
    day = on_or_before
    while not is_publication_day(day):
        day -= timedelta(days=1)
    return day


def _noise(seed: int, currency: str, day: date) -> float:
    digest = hashlib.sha256(f"{seed}:{currency}:{day.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 2 - 1  # uniform in [-1, 1)


def reference_rate(seed: int, currency: str, day: date) -> Decimal:
    """Units of `currency` per EUR published on `day` (the caller makes sure `day` is a publication day)."""
    ordinal = day.toordinal()
    phase = (int(hashlib.sha256(f"{seed}:{currency}".encode()).hexdigest()[:6], 16) % 1000) / 100
    value = LEVELS[currency] * (1 + 0.05 * math.sin(ordinal / 60 + phase) + 0.004 * _noise(seed, currency, day))
    places = Decimal("0.01") if currency in _TWO_DECIMALS else Decimal("0.0001")
    return Decimal(repr(value)).quantize(places)


def day_rates(seed: int, day: date, currencies: tuple[str, ...] = CURRENCIES) -> list[tuple[str, Decimal]]:
    return [(currency, reference_rate(seed, currency, day)) for currency in currencies]
