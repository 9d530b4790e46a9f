"""fx_rate and fx_rate_daily: triangulation through EUR, carry-over across gaps, rate dates, sources."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from gp_pipelines import database
from gp_pipelines.connectors.ecb import FxSource
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer, reference_rate
from gp_pipelines.warehouse.fx import FxRateMissing, load_fx_rates, rate, refresh_daily_rates

TODAY = date(2026, 11, 22)
SEED = 3


@pytest.fixture(scope="module")
def loaded(module_database_url):
    with EcbSandboxServer(EcbSandboxOptions(seed=SEED, today=TODAY, start=date(2025, 1, 1))) as server:
        first = load_fx_rates(module_database_url, server.source(), reporting_currency="USD", today=TODAY)
        second = load_fx_rates(module_database_url, server.source(), reporting_currency="USD", today=TODAY)
        yield module_database_url, first, second


def _eur(ccy: str, day: date) -> Decimal:
    return Decimal(1) if ccy == "EUR" else reference_rate(SEED, ccy, day)


def test_first_load_is_full_and_second_writes_nothing(loaded):
    _, first, second = loaded
    assert first.mode == "full" and first.rates_inserted > 5000 and first.daily_rows_changed > 0
    assert second.mode == "incremental" and second.rates_inserted == second.rates_updated == 0
    assert second.daily_rows_changed == 0
    assert set(first.as_metadata()) >= {"rates_fetched", "rates_inserted", "first_rate_date", "last_rate_date"}


def test_triangulation_through_eur(loaded):
    url, *_ = loaded
    day = date(2026, 11, 18)
    quote = rate(url, "AUD", "NZD", day)
    assert quote.triangulated and quote.rate_date == day
    assert quote.rate == round(_eur("NZD", day) / _eur("AUD", day), 10)
    direct = rate(url, "EUR", "USD", day)
    assert not direct.triangulated and direct.rate == _eur("USD", day)
    inverse = rate(url, "USD", "EUR", day)
    assert inverse.rate == round(1 / _eur("USD", day), 10)


def test_same_currency_is_one_on_the_day_itself(loaded):
    url, *_ = loaded
    quote = rate(url, "NZD", "NZD", date(2026, 11, 21))
    assert quote.rate == 1 and quote.rate_date == date(2026, 11, 21) and not quote.triangulated


@pytest.mark.parametrize(("on", "published"), [
    (date(2026, 11, 21), date(2026, 11, 20)),  # Saturday -> Friday
    (date(2026, 11, 22), date(2026, 11, 20)),  # Sunday -> Friday
    (date(2026, 4, 3), date(2026, 4, 2)),  # Good Friday -> Thursday
    (date(2026, 4, 6), date(2026, 4, 2)),  # Easter Monday -> Thursday
    (date(2026, 12, 1), date(2026, 11, 20)),  # after the last publication: still the last one
])
def test_carry_over_keeps_the_publication_day(loaded, on, published):
    url, *_ = loaded
    quote = rate(url, "GBP", "AUD", on)
    assert quote.rate_date == published
    assert quote.rate == round(_eur("AUD", published) / _eur("GBP", published), 10)


def test_daily_table_matches_point_lookups(loaded, db):
    url, *_ = loaded
    for on in (date(2025, 1, 2), date(2026, 4, 4), date(2026, 11, 22)):
        for ccy in ("AUD", "NZD", "GBP", "EUR", "USD", "CAD"):
            row = db.execute("SELECT rate, rate_date, triangulated FROM warehouse.fx_rate_daily "
                             "WHERE reporting_currency = 'USD' AND on_date = %s AND currency = %s",
                             (on, ccy)).fetchone()
            quote = rate(url, ccy, "USD", on)
            assert (row[0], row[1], row[2]) == (quote.rate, quote.rate_date, quote.triangulated)
    # every calendar day covered, nothing before the first publication
    first = db.execute("SELECT min(on_date), count(DISTINCT on_date) FROM warehouse.fx_rate_daily").fetchone()
    assert first[0] == date(2025, 1, 2)
    last = db.execute("SELECT max(on_date) FROM warehouse.fx_rate_daily").fetchone()[0]
    assert first[1] == (last - first[0]).days + 1


def test_missing_rates_raise(loaded):
    url, *_ = loaded
    with pytest.raises(FxRateMissing, match="XYZ"):
        rate(url, "XYZ", "USD", date(2026, 1, 5))
    with pytest.raises(FxRateMissing, match="on or before 2024-12-31"):
        rate(url, "AUD", "USD", date(2024, 12, 31))


def test_revised_rate_updates_and_marks_changed_days(loaded, db):
    url, *_ = loaded
    before = db.execute("SELECT max(changed_at) FROM warehouse.fx_rate_daily").fetchone()[0]
    db.execute("UPDATE warehouse.fx_rate SET per_anchor = per_anchor * 2 WHERE currency = 'AUD' "
               "AND rate_date = '2026-11-20'")
    changed, _ = refresh_daily_rates(db, "USD")
    rows = db.execute("SELECT min(on_date), count(*) FROM warehouse.fx_rate_daily WHERE changed_at > %s",
                      (before,)).fetchone()
    assert changed == rows[1] and rows[0] == date(2026, 11, 20) and rows[1] >= 3  # Friday + carried days
    # the source still publishes the original: the next load puts it back (a revision) and re-marks the days
    with EcbSandboxServer(EcbSandboxOptions(seed=SEED, today=TODAY, start=date(2025, 1, 1))) as server:
        result = load_fx_rates(url, server.source(), reporting_currency="USD", today=TODAY)
    assert result.rates_updated == 1 and result.daily_rows_changed == changed
    assert rate(url, "AUD", "USD", date(2026, 11, 21)).rate == round(_eur("USD", date(2026, 11, 20))
                                                                    / _eur("AUD", date(2026, 11, 20)), 10)


def test_csv_source_with_its_own_anchor(pg_server_url, tmp_path):
    name = f"t_fx_csv_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(pg_server_url, name)
    try:
        path = tmp_path / "own.csv"
        path.write_text("rate_date,currency,rate\n2026-01-02,AUD,1.50\n2026-01-02,NZD,1.60\n2026-01-05,AUD,1.55\n"
                        "2026-01-05,NZD,1.62\n")
        result = load_fx_rates(url, FxSource.csv(path, anchor="USD", name="treasury"), reporting_currency="AUD")
        assert result.rates_inserted == 4 and result.anchor == "USD"
        quote = rate(url, "NZD", "AUD", date(2026, 1, 4))
        assert quote.rate_date == date(2026, 1, 2) and quote.rate == round(Decimal("1.50") / Decimal("1.60"), 10)
        assert rate(url, "USD", "AUD", date(2026, 1, 5)).rate == Decimal("1.55")
    finally:
        database.drop_database(pg_server_url, name)
