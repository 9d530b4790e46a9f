"""Reference exchange rates in the warehouse: `warehouse.fx_rate` (as published) and `warehouse.fx_rate_daily`.

- `fx_rate` holds what the source published: one row per (currency, publication day), `per_anchor` units of
  the currency per 1 anchor unit (EUR for the ECB). Loads upsert, writing only rates that are new or revised.
- `fx_rate_daily` holds, for one reporting currency, a rate for **every calendar day** and every currency:
  `rate` = reporting units per 1 unit of `currency`, triangulated through the anchor
  (`USD→AUD = per_eur[AUD] / per_eur[USD]`), with the **last rate published on or before the day** carried over
  weekends and TARGET holidays. `rate_date` is that publication day, kept apart from the day it is used for
  (when both legs are quoted, the older of their two publication days). It runs from the first publication
  day to 31 days past the later of today and the last publication; a fact date outside that range gets no rate
  and `check_fx_coverage` names it. Facts join it on (day, currency) with an equality join, which is what keeps a
  million-line build cheap; a row's `changed_at` moves only when its rate or rate date changes, which is how
  fact builds find the lines to re-convert after new rates arrive.

Same currency converts at exactly 1 with `rate_date` = the day itself. A currency the source does not quote
has no row: amounts in it have no reporting amount and the FX coverage check fails, naming instance and month.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from gp_pipelines.connectors.ecb import EcbRate, FxSource, fetch_rates
from gp_pipelines.warehouse.schema import WAREHOUSE_SCHEMA, create_warehouse_schema

FX_RATE = f"{WAREHOUSE_SCHEMA}.fx_rate"
FX_RATE_DAILY = f"{WAREHOUSE_SCHEMA}.fx_rate_daily"
REFRESH_OVERLAP_DAYS = 7  # re-read a week before the newest stored day: the ECB occasionally corrects a rate
DAYS_PAST_TODAY = 31


class FxRateMissing(LookupError):
    """No rate published on or before the day for one of the currencies."""


@dataclass(frozen=True)
class FxQuote:
    from_currency: str
    to_currency: str
    on: date
    rate: Decimal  # to_currency units per 1 from_currency unit
    rate_date: date  # the publication day used (older leg when triangulated); `on` for the same currency
    triangulated: bool

    def convert(self, amount: Decimal) -> Decimal:
        return amount * self.rate


@dataclass
class FxLoadResult:
    source: str
    anchor: str
    reporting_currency: str
    rates_fetched: int = 0
    rates_inserted: int = 0
    rates_updated: int = 0
    first_rate_date: date | None = None
    last_rate_date: date | None = None
    currencies: int = 0
    daily_rows_changed: int = 0
    daily_rows: int = 0
    mode: str = "incremental"
    seconds: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        values = asdict(self)
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}


def _connect(database_url_or_conn: str | psycopg.Connection) -> tuple[psycopg.Connection, bool]:
    if isinstance(database_url_or_conn, psycopg.Connection):
        return database_url_or_conn, False
    return psycopg.connect(database_url_or_conn, autocommit=True), True


def store_rates(conn: psycopg.Connection, rates: list[EcbRate], *, anchor: str, source: str) -> tuple[int, int]:
    """Upsert published rates; returns (inserted, updated). Call inside a transaction."""
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS _fx_stage (rate_date date, currency text, per_anchor numeric)"
                    " ON COMMIT DELETE ROWS")
        cur.execute("DELETE FROM _fx_stage")
        with cur.copy("COPY _fx_stage (rate_date, currency, per_anchor) FROM STDIN") as copy:
            for r in rates:
                copy.write_row((r.rate_date, r.currency, r.per_eur))
        row = cur.execute(
            f"""WITH written AS (
                    INSERT INTO {FX_RATE} AS t (rate_date, currency, per_anchor, anchor, source, loaded_at)
                    SELECT rate_date, currency, per_anchor, %(anchor)s, %(source)s, now() FROM _fx_stage
                    ON CONFLICT (currency, rate_date) DO UPDATE
                       SET per_anchor = EXCLUDED.per_anchor, anchor = EXCLUDED.anchor,
                           source = EXCLUDED.source, loaded_at = EXCLUDED.loaded_at
                     WHERE t.per_anchor <> EXCLUDED.per_anchor OR t.anchor <> EXCLUDED.anchor
                    RETURNING (t.xmax = 0) AS inserted
                )
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written""",
            {"anchor": anchor, "source": source},
        ).fetchone()
    return int(row[0]), int(row[1])


def refresh_daily_rates(conn: psycopg.Connection, reporting_currency: str) -> tuple[int, int]:
    """Rebuild `fx_rate_daily` for one reporting currency, writing only rows that changed.

    Returns (rows changed, rows in total). Set-based: days × currencies left-joined to the published rates, the
    last published rate carried forward with a running count (`grp`) that starts a new group at every
    publication, so `first_value` over the group is the last rate on or before the day."""
    anchor_row = conn.execute(f"SELECT min(anchor), count(DISTINCT anchor) FROM {FX_RATE}").fetchone()
    if anchor_row[0] is None:
        return 0, 0
    if anchor_row[1] > 1:
        raise ValueError(f"{FX_RATE} mixes anchors; reload it from one source")
    params = {"rc": reporting_currency, "anchor": anchor_row[0], "ahead": DAYS_PAST_TODAY}
    changed = conn.execute(
        f"""WITH bounds AS (
                SELECT min(rate_date) AS first_day,
                       greatest(max(rate_date), current_date) + %(ahead)s AS last_day FROM {FX_RATE}
            ), currencies AS (
                SELECT DISTINCT currency FROM {FX_RATE} UNION SELECT %(anchor)s
            ), grid AS (
                SELECT d::date AS on_date, c.currency, r.per_anchor, r.rate_date,
                       count(r.rate_date) OVER (PARTITION BY c.currency ORDER BY d) AS grp
                  FROM bounds, generate_series(bounds.first_day, bounds.last_day, interval '1 day') d
                 CROSS JOIN currencies c
                  LEFT JOIN {FX_RATE} r ON r.currency = c.currency AND r.rate_date = d::date
            ), carried AS (
                SELECT on_date, currency,
                       CASE WHEN currency = %(anchor)s THEN 1::numeric
                            ELSE first_value(per_anchor) OVER w END AS per_anchor,
                       CASE WHEN currency = %(anchor)s THEN on_date
                            ELSE first_value(rate_date) OVER w END AS rate_date
                  FROM grid
                WINDOW w AS (PARTITION BY currency, grp ORDER BY on_date)
            ), target AS (
                SELECT on_date, per_anchor, rate_date FROM carried WHERE currency = %(rc)s
            ), computed AS (
                SELECT c.on_date, c.currency,
                       CASE WHEN c.currency = %(rc)s THEN 1::numeric
                            ELSE round(t.per_anchor / c.per_anchor, 10) END AS rate,
                       CASE WHEN c.currency = %(rc)s THEN c.on_date
                            ELSE least(c.rate_date, t.rate_date) END AS rate_date,
                       (c.currency <> %(rc)s AND c.currency <> %(anchor)s AND %(rc)s <> %(anchor)s) AS triangulated
                  FROM carried c JOIN target t ON t.on_date = c.on_date
                 WHERE c.per_anchor IS NOT NULL AND t.per_anchor IS NOT NULL
            ), written AS (
                INSERT INTO {FX_RATE_DAILY} AS f
                    (reporting_currency, on_date, currency, rate, rate_date, triangulated, changed_at)
                SELECT %(rc)s, on_date, currency, rate, rate_date, triangulated, clock_timestamp() FROM computed
                ON CONFLICT (reporting_currency, on_date, currency) DO UPDATE
                   SET rate = EXCLUDED.rate, rate_date = EXCLUDED.rate_date, triangulated = EXCLUDED.triangulated,
                       changed_at = EXCLUDED.changed_at
                 WHERE f.rate <> EXCLUDED.rate OR f.rate_date <> EXCLUDED.rate_date
                RETURNING 1
            )
            SELECT count(*) FROM written""",
        params,
    ).fetchone()[0]
    total = conn.execute(
        f"SELECT count(*) FROM {FX_RATE_DAILY} WHERE reporting_currency = %s", (reporting_currency,)
    ).fetchone()[0]
    return int(changed), int(total)


def load_fx_rates(
    database_url: str,
    source: FxSource,
    *,
    reporting_currency: str,
    currencies: set[str] | None = None,
    full: bool = False,
    today: date | None = None,
) -> FxLoadResult:
    """Fetch rates (since a week before the newest stored day, or all history on the first load or with
    `full`), store the new and revised ones, and refresh `fx_rate_daily` for the reporting currency, all in
    one transaction. `currencies` limits what is stored (None = everything the source publishes)."""
    started = time.monotonic()
    result = FxLoadResult(source=source.name, anchor=source.anchor, reporting_currency=reporting_currency)
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_warehouse_schema(conn)
        newest, stored_source = conn.execute(
            f"SELECT max(rate_date), min(source) FROM {FX_RATE}"
        ).fetchone()
        switching = stored_source is not None and stored_source != source.name
        since = None if (full or newest is None or switching) else newest - timedelta(days=REFRESH_OVERLAP_DAYS)
        result.mode = "full" if since is None else "incremental"
        rates = fetch_rates(source, since=since, today=today)
        if currencies is not None:
            wanted = {c.upper() for c in currencies}
            rates = [r for r in rates if r.currency in wanted]
        result.rates_fetched = len(rates)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('gp.warehouse.fx_rate', 0))")
            if switching:
                conn.execute(f"DELETE FROM {FX_RATE}")
            result.rates_inserted, result.rates_updated = store_rates(
                conn, rates, anchor=source.anchor, source=source.name
            )
            result.daily_rows_changed, result.daily_rows = refresh_daily_rates(conn, reporting_currency)
        first, last, count = conn.execute(
            f"SELECT min(rate_date), max(rate_date), count(DISTINCT currency) FROM {FX_RATE}"
        ).fetchone()
        result.first_rate_date, result.last_rate_date, result.currencies = first, last, int(count)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def rate(database_url_or_conn: str | psycopg.Connection, from_ccy: str, to_ccy: str, on: date) -> FxQuote:
    """`to_ccy` units per 1 `from_ccy` on day `on`, from the published rates: triangulated through the anchor,
    each leg the last rate published on or before `on`. Raises `FxRateMissing` when a leg has none."""
    from_ccy, to_ccy = from_ccy.upper(), to_ccy.upper()
    if from_ccy == to_ccy:
        return FxQuote(from_ccy, to_ccy, on, Decimal(1), on, False)
    conn, owned = _connect(database_url_or_conn)
    try:
        anchor = conn.execute(f"SELECT min(anchor) FROM {FX_RATE}").fetchone()[0]
        if anchor is None:
            raise FxRateMissing(f"{FX_RATE} is empty: load rates first")

        def leg(currency: str) -> tuple[Decimal, date]:
            if currency == anchor:
                return Decimal(1), on
            row = conn.execute(
                f"""SELECT per_anchor, rate_date FROM {FX_RATE}
                    WHERE currency = %s AND rate_date <= %s ORDER BY rate_date DESC LIMIT 1""",
                (currency, on),
            ).fetchone()
            if row is None:
                raise FxRateMissing(f"no {currency} rate published on or before {on.isoformat()}")
            return Decimal(row[0]), row[1]

        from_rate, from_date = leg(from_ccy)
        to_rate, to_date = leg(to_ccy)
    finally:
        if owned:
            conn.close()
    quoted = round(to_rate / from_rate, 10)
    return FxQuote(from_ccy, to_ccy, on, quoted, min(from_date, to_date), anchor not in (from_ccy, to_ccy))
