"""Euro reference exchange rates: the ECB's XML feeds over https (httpx), or a CSV of the company's own rates.

The ECB publishes one mid rate per currency, quoted as EUR 1 = x, at about 16:00 CET on every TARGET working
day (reference/analytics_exports.md §4). Three feeds share one XML format (a gesmes envelope holding
`<Cube time="YYYY-MM-DD"><Cube currency="USD" rate="1.0921"/>...</Cube>`):

- `eurofxref-daily.xml`: the latest publication day;
- `eurofxref-hist-90d.xml`: the last 90 days;
- `eurofxref-hist.xml`: everything since 1999-01-04.

`fetch_rates` reads the smallest feed that covers `since` (daily + 90-day when `since` is recent, else the
full history) and returns `EcbRate(rate_date, currency, per_eur)` rows, deduplicated, sorted. Amounts are
`Decimal` from the text as published: never floats.

A CSV source (`FxSource.csv(path)`) replaces the ECB with the company's own rates. Columns
`rate_date,currency,rate` (header required; `date` is accepted for `rate_date`), the rate meaning units of
`currency` per one unit of the source's `anchor` currency (EUR unless the source says otherwise). Any anchor
works because conversions triangulate through it (`warehouse/fx.py`).

Transient failures (5xx, timeouts, a body that is not the ECB XML) are retried with backoff; after the last
attempt they raise `EcbFeedError` naming the URL and what was wrong.
"""

from __future__ import annotations

import csv
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx

from gp_pipelines.connectors.http import http_client

ECB_BASE_URL = "https://www.ecb.europa.eu/stats/eurofxref/"
DAILY_FEED = "eurofxref-daily.xml"
HISTORY_90D_FEED = "eurofxref-hist-90d.xml"
HISTORY_FEED = "eurofxref-hist.xml"
ECB_NAMESPACE = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
GESMES_NAMESPACE = "http://www.gesmes.org/xml/2002-08-01"
_NINETY_DAYS = timedelta(days=85)  # a margin under 90: the 90-day feed counts calendar days back from today


class EcbFeedError(RuntimeError):
    """A rate feed could not be read (HTTP error, timeout, malformed body, bad CSV)."""


@dataclass(frozen=True, order=True)
class EcbRate:
    rate_date: date
    currency: str
    per_eur: Decimal  # units of `currency` per 1 anchor unit (EUR for the ECB)


@dataclass(frozen=True)
class FxSource:
    """Where reference rates come from. `kind` is `ecb` (the three XML feeds under `base_url`) or `csv`."""

    kind: str = "ecb"
    base_url: str = ECB_BASE_URL
    daily_url: str | None = None  # default: base_url + eurofxref-daily.xml
    history_90d_url: str | None = None
    history_url: str | None = None
    csv_path: str | None = None
    anchor: str = "EUR"
    name: str = "ecb"  # recorded as `source` on every stored rate
    timeout_seconds: float = 30.0  # per network operation
    attempts: int = 3
    backoff_seconds: float = 0.5
    # Per whole HTTP request: the full history feed is several MB, which must fit on a slow link.
    deadline_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.kind not in ("ecb", "csv"):
            raise ValueError(f"FxSource.kind must be 'ecb' or 'csv', not {self.kind!r}")
        if self.kind == "csv" and not self.csv_path:
            raise ValueError("FxSource.kind 'csv' needs csv_path")

    @classmethod
    def ecb(cls, base_url: str = ECB_BASE_URL, **options) -> FxSource:
        return cls(kind="ecb", base_url=base_url if base_url.endswith("/") else base_url + "/", **options)

    @classmethod
    def csv(cls, path: str | Path, *, anchor: str = "EUR", name: str = "csv") -> FxSource:
        return cls(kind="csv", csv_path=str(path), anchor=anchor, name=name)

    @classmethod
    def from_mapping(cls, settings: dict) -> FxSource:
        """From a config section, e.g. `{"kind": "csv", "csv_path": "rates.csv", "anchor": "USD"}` or
        `{"kind": "ecb", "base_url": "http://127.0.0.1:8766/stats/eurofxref/"}`; unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown FX source settings {unknown}; known: {sorted(known)}")
        values = dict(settings)
        if values.get("kind", "ecb") == "ecb" and "base_url" in values and not values["base_url"].endswith("/"):
            values["base_url"] += "/"
        if values.get("kind") == "csv":
            values.setdefault("name", "csv")
        return cls(**values)

    def url(self, feed: str) -> str:
        explicit = {DAILY_FEED: self.daily_url, HISTORY_90D_FEED: self.history_90d_url,
                    HISTORY_FEED: self.history_url}[feed]
        return explicit or self.base_url + feed


# -- XML --------------------------------------------------------------------------------------------------


def parse_ecb_xml(text: str | bytes, *, source: str = "ECB feed") -> list[EcbRate]:
    """Every (day, currency, rate) in a daily, 90-day or historical ECB document."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise EcbFeedError(f"{source}: not well-formed XML ({exc})") from None
    if root.tag != f"{{{GESMES_NAMESPACE}}}Envelope":
        raise EcbFeedError(f"{source}: not an ECB eurofxref document (root element {root.tag!r})")
    rates: list[EcbRate] = []
    days = 0
    for day in root.iter(f"{{{ECB_NAMESPACE}}}Cube"):
        stamp = day.get("time")
        if stamp is None:
            continue
        days += 1
        try:
            rate_date = date.fromisoformat(stamp)
        except ValueError:
            raise EcbFeedError(f"{source}: bad date {stamp!r}") from None
        for cell in day:
            currency, value = cell.get("currency"), cell.get("rate")
            if not currency or value is None:
                raise EcbFeedError(f"{source}: {stamp}: a Cube without currency or rate")
            rates.append(EcbRate(rate_date, currency.upper(), _positive(value, f"{source}: {stamp} {currency}")))
    if days == 0:
        raise EcbFeedError(f"{source}: no <Cube time=...> element (empty or truncated feed)")
    return rates


def _positive(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise EcbFeedError(f"{where}: rate {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise EcbFeedError(f"{where}: rate {text!r} is not positive")
    return value


def render_ecb_xml(days: Iterable[tuple[date, Iterable[tuple[str, Decimal]]]]) -> str:
    """The ECB document for the given days (newest first, as the ECB orders them). Used by the sandbox."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gesmes:Envelope xmlns:gesmes="{GESMES_NAMESPACE}" xmlns="{ECB_NAMESPACE}">',
        "\t<gesmes:subject>Reference rates</gesmes:subject>",
        "\t<gesmes:Sender>",
        "\t\t<gesmes:name>European Central Bank</gesmes:name>",
        "\t</gesmes:Sender>",
        "\t<Cube>",
    ]
    for day, cells in days:
        out.append(f"\t\t<Cube time='{day.isoformat()}'>")
        out.extend(f"\t\t\t<Cube currency='{ccy}' rate='{rate}'/>" for ccy, rate in cells)
        out.append("\t\t</Cube>")
    out += ["\t</Cube>", "</gesmes:Envelope>", ""]
    return "\n".join(out)


# -- CSV --------------------------------------------------------------------------------------------------


def read_rates_csv(path: str | Path) -> list[EcbRate]:
    """The company's own rates: `rate_date,currency,rate` (units of currency per 1 anchor unit)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise EcbFeedError(f"{path}: cannot read rates CSV: {exc.strerror}") from None
    rates = []
    with handle:
        reader = csv.DictReader(handle)
        fields = {name.strip().lower() for name in reader.fieldnames or []}
        date_field = "rate_date" if "rate_date" in fields else "date"
        if not {date_field, "currency", "rate"} <= fields:
            raise EcbFeedError(f"{path}: the header must name rate_date (or date), currency and rate")
        for line_number, raw in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            where = f"{path}:{line_number}"
            try:
                rate_date = date.fromisoformat(row[date_field])
            except ValueError:
                raise EcbFeedError(f"{where}: bad date {row[date_field]!r} (use YYYY-MM-DD)") from None
            currency = row["currency"].upper()
            if len(currency) != 3 or not currency.isalpha():
                raise EcbFeedError(f"{where}: bad currency code {row['currency']!r}")
            rates.append(EcbRate(rate_date, currency, _positive(row["rate"], where)))
    return rates


# -- fetching ----------------------------------------------------------------------------------------------


def _get_feed(http: httpx.Client, source: FxSource, url: str, sleep: Callable[[float], None]) -> list[EcbRate]:
    last_error = ""
    for attempt in range(1, max(1, source.attempts) + 1):
        try:
            response = http.get(url)
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}"
            elif response.status_code != 200:
                raise EcbFeedError(f"{url}: HTTP {response.status_code}")  # 4xx: retrying will not help
            else:
                return parse_ecb_xml(response.content, source=url)
        except httpx.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        except EcbFeedError as exc:
            if "HTTP 4" in str(exc):
                raise
            last_error = str(exc)
        if attempt < source.attempts:
            sleep(source.backoff_seconds * 2 ** (attempt - 1))
    raise EcbFeedError(f"{url}: failed after {source.attempts} attempts: {last_error}")


def fetch_rates(
    source: FxSource,
    *,
    since: date | None = None,
    today: date | None = None,
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EcbRate]:
    """The published rates from `since` (all history when None), sorted by (date, currency), one per pair.

    For the ECB, a recent `since` reads the daily and the 90-day feeds (a few kB); an older one or none reads
    the full history. The daily feed is read too, because it is published before the 90-day one is rebuilt."""
    if source.kind == "csv":
        rates = read_rates_csv(source.csv_path)
    else:
        today = today or date.today()
        recent = since is not None and since >= today - _NINETY_DAYS
        feeds = [HISTORY_90D_FEED, DAILY_FEED] if recent else [HISTORY_FEED, DAILY_FEED]
        own = http is None
        client = http or http_client(
            timeout=source.timeout_seconds, deadline=source.deadline_seconds, follow_redirects=True
        )
        try:
            rates = [rate for feed in feeds for rate in _get_feed(client, source, source.url(feed), sleep)]
        finally:
            if own:
                client.close()
    unique = {(r.rate_date, r.currency): r for r in rates if since is None or r.rate_date >= since}
    return sorted(unique.values())
