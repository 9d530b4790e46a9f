"""Shared vocabulary of the Cin7 Core sandbox: instances, options, time stamps, FX rates, the virtual clock."""

from __future__ import annotations

import math
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SIZES = ("small", "medium", "large")
THROTTLE_MODES = ("429", "503", "400")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class SandboxInstance:
    key: str
    company: str
    currency: str
    timezone: str
    account_id: str
    application_keys: tuple[str, ...]


@dataclass
class SandboxOptions:
    seed: int = 42
    size: str = "small"
    rate_limit: int = 60
    rate_window_seconds: float = 60.0
    throttle_mode: str = "429"
    faults: str = ""
    unknown_path: str = "html"
    since_inclusive: bool = True
    # Where the virtual clock starts ("2026-11-22T00:00:00Z"); None = real UTC now. The generated history is
    # anchored at this instant floored to UTC midnight, so two servers started the same day serve the same
    # bytes, and a fixed value makes every response reproducible forever.
    clock_start: str | None = None
    # How long the `slow` fault sleeps before serving normally.
    slow_seconds: float = 1.5

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, not {self.size!r}")
        if self.throttle_mode not in THROTTLE_MODES:
            raise ValueError(f"throttle_mode must be one of {THROTTLE_MODES}, not {self.throttle_mode!r}")
        if self.unknown_path not in ("html", "404"):
            raise ValueError(f"unknown_path must be 'html' or '404', not {self.unknown_path!r}")
        if self.rate_limit < 1 or self.rate_window_seconds <= 0:
            raise ValueError("rate_limit must be >= 1 and rate_window_seconds > 0")


_INSTANCE_TABLE = (
    ("au", "Good People Trading Pty Ltd", "AUD", "Australia/Sydney"),
    ("nz", "Good People Trading NZ Ltd", "NZD", "Pacific/Auckland"),
    ("us", "Good People Trading Inc.", "USD", "America/New_York"),
)


def seeded_rng(seed: int, *parts: object) -> random.Random:
    """A Random seeded from a string: str seeds go through SHA-512, so they are stable across processes
    (unlike hash()), and each (seed, part...) gets an independent stream."""
    return random.Random(":".join([str(seed), *map(str, parts)]))


def new_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sandbox_instances(seed: int = 42) -> list[SandboxInstance]:
    """The three sandbox accounts with their credentials; deterministic from the seed."""
    result = []
    for key, company, currency, tz in _INSTANCE_TABLE:
        rng = seeded_rng(seed, "credentials", key)
        account_id = new_guid(rng)
        keys = (new_guid(rng), new_guid(rng))
        result.append(SandboxInstance(key, company, currency, tz, account_id, keys))
    return result


# ---------------------------------------------------------------- time stamps (integer ms since the epoch, UTC)

_STAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_stamp(text: str) -> int:
    """Parse `yyyy-MM-ddTHH:mm:ss[.fff][Z|±hh:mm]`; no offset means UTC (the documented API convention)."""
    m = _STAMP_RE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a valid date. Expected yyyy-MM-ddTHH:mm:ss.fff (UTC).")
    year, month, day, hh, mi, ss, frac, zone = m.groups()
    dt = datetime(int(year), int(month), int(day), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=UTC)
    ms = int(dt.timestamp() * 1000) + (int((frac + "000")[:3]) if frac else 0)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ms -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    return ms


def fmt_stamp(ms: int) -> str:
    """Modified stamps as the API emits them: UTC, milliseconds, `Z`."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


_ZONES: dict[str, ZoneInfo] = {}


def fmt_business_date(ms: int, timezone: str = "UTC") -> str:
    """Business dates are the local calendar day of the account, emitted as midnight with no zone."""
    zone = _ZONES.get(timezone) or _ZONES.setdefault(timezone, ZoneInfo(timezone))
    local = datetime.fromtimestamp(ms / 1000, zone)
    return f"{local:%Y-%m-%d}T00:00:00"


def floor_day(ms: int) -> int:
    return ms - ms % DAY_MS


def add_days_date(date_text: str, days: int) -> str:
    dt = datetime.strptime(date_text[:10], "%Y-%m-%d") + timedelta(days=days)
    return f"{dt:%Y-%m-%d}T00:00:00"


# ---------------------------------------------------------------- FX

# Rough USD value of one unit; a slow deterministic wave per currency makes rates vary by date.
_USD_VALUE = {"USD": 1.0, "AUD": 0.655, "NZD": 0.598, "EUR": 1.085, "GBP": 1.268, "CAD": 0.735}
_PHASE = {code: i * 1.7 for i, code in enumerate(sorted(_USD_VALUE))}
CURRENCIES = tuple(sorted(_USD_VALUE))


def fx_rate(base: str, quote: str, ms: int) -> float:
    """Base-currency units per one unit of `quote` on the day of `ms` (the meaning of Cin7's CurrencyRate)."""
    if base == quote:
        return 1.0
    day = ms // DAY_MS

    def usd(code: str) -> float:
        return _USD_VALUE[code] * (1 + 0.04 * math.sin(day / 41.0 + _PHASE[code]))

    return round(usd(quote) / usd(base), 6)


# ---------------------------------------------------------------- virtual clock


class VirtualClock:
    """Server time = start + real time elapsed + an offset that /sandbox/advance moves forward."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.start_ms = start_ms if start_ms is not None else int(time.time() * 1000)
        self._mono0 = time.monotonic()
        self._offset_ms = 0
        self._last = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            now = self.start_ms + int((time.monotonic() - self._mono0) * 1000) + self._offset_ms
            # Never go backwards and never repeat: every mutation gets a distinct, increasing stamp.
            self._last = max(now, self._last + 1)
            return self._last

    def advance(self, ms: int) -> None:
        with self._lock:
            self._offset_ms += ms

    def step_back(self, ms: int) -> None:
        """The server's clock is set back (an NTP correction, a host moved): stamps may repeat older ones."""
        with self._lock:
            self._offset_ms -= ms
            self._last = 0
