"""The ECB client and its sandbox: the three feed formats, the TARGET calendar, faults, the CSV source."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from gp_pipelines.connectors.ecb import (
    DAILY_FEED,
    HISTORY_90D_FEED,
    EcbFeedError,
    FxSource,
    fetch_rates,
    parse_ecb_xml,
    read_rates_csv,
)
from gp_pipelines.sandbox.ecb import (
    CURRENCIES,
    EcbSandboxOptions,
    EcbSandboxServer,
    is_publication_day,
    reference_rate,
    target_holidays,
)

TODAY = date(2026, 11, 22)  # a Sunday: the daily feed shows Friday 20 November

REAL_DAILY = """<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender>
		<gesmes:name>European Central Bank</gesmes:name>
	</gesmes:Sender>
	<Cube>
		<Cube time='2024-01-05'>
			<Cube currency='USD' rate='1.0921'/>
			<Cube currency='JPY' rate='158.08'/>
			<Cube currency='AUD' rate='1.6316'/>
		</Cube>
	</Cube>
</gesmes:Envelope>"""


@pytest.fixture(scope="module")
def ecb():
    with EcbSandboxServer(EcbSandboxOptions(seed=7, today=TODAY, start=date(2025, 1, 1))) as server:
        yield server


def test_parses_the_real_daily_format():
    rates = parse_ecb_xml(REAL_DAILY)
    assert [(r.rate_date, r.currency, r.per_eur) for r in rates] == [
        (date(2024, 1, 5), "USD", Decimal("1.0921")),
        (date(2024, 1, 5), "JPY", Decimal("158.08")),
        (date(2024, 1, 5), "AUD", Decimal("1.6316")),
    ]


@pytest.mark.parametrize("body", ["<html>oops</html>", REAL_DAILY[: len(REAL_DAILY) // 2], "",
                                  REAL_DAILY.replace("rate='1.0921'", "rate='abc'"),
                                  REAL_DAILY.replace("rate='1.0921'", "rate='0'")])
def test_malformed_documents_raise(body):
    with pytest.raises(EcbFeedError):
        parse_ecb_xml(body)


def test_target_calendar():
    assert target_holidays(2026) == {date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1),
                                     date(2026, 12, 25), date(2026, 12, 26)}
    assert not is_publication_day(date(2026, 11, 21))  # Saturday
    assert not is_publication_day(date(2024, 3, 29))  # Good Friday 2024
    assert is_publication_day(date(2026, 11, 20))


def test_sandbox_feeds_agree_and_skip_weekends_and_holidays(ecb):
    history = fetch_rates(ecb.source())
    recent = fetch_rates(ecb.source(), since=TODAY - timedelta(days=30), today=TODAY)
    days = {r.rate_date for r in history}
    assert max(days) == date(2026, 11, 20)
    assert all(is_publication_day(d) for d in days)
    assert date(2026, 4, 3) not in days and date(2026, 4, 2) in days  # Good Friday gap
    assert {r.currency for r in history} == set(CURRENCIES) >= {"AUD", "NZD", "USD", "GBP", "CAD"}
    by_key = {(r.rate_date, r.currency): r.per_eur for r in history}
    assert all(by_key[(r.rate_date, r.currency)] == r.per_eur for r in recent)
    assert by_key[(date(2026, 11, 20), "USD")] == reference_rate(7, "USD", date(2026, 11, 20))


def test_daily_feed_is_the_last_publication_day(ecb):
    with httpx.Client() as http:
        rates = parse_ecb_xml(http.get(ecb.source().url(DAILY_FEED)).content)
        ninety = parse_ecb_xml(http.get(ecb.source().url(HISTORY_90D_FEED)).content)
    assert {r.rate_date for r in rates} == {date(2026, 11, 20)}
    assert min(r.rate_date for r in ninety) >= TODAY - timedelta(days=90)


@pytest.mark.parametrize("fault", ["500", "503", "malformed", "truncated", "empty"])
def test_transient_faults_are_retried(ecb, fault):
    ecb.inject(fault)
    rates = fetch_rates(ecb.source(), since=TODAY - timedelta(days=10), today=TODAY)
    assert rates and ecb.sandbox.pending_faults == type(ecb.sandbox.pending_faults)()


def test_persistent_faults_raise_naming_the_url(ecb):
    ecb.inject("500", "500", "500")
    with pytest.raises(EcbFeedError, match=r"eurofxref-hist-90d\.xml: failed after 3 attempts: HTTP 500"):
        fetch_rates(ecb.source(), since=TODAY - timedelta(days=10), today=TODAY)


def test_csv_source(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("rate_date,currency,rate\n2026-01-02,AUD,1.50\n2026-01-02,NZD,1.65\n2026-01-05,AUD,1.52\n")
    rates = fetch_rates(FxSource.csv(path, anchor="USD"))
    assert [(r.rate_date, r.currency, r.per_eur) for r in rates] == [
        (date(2026, 1, 2), "AUD", Decimal("1.50")), (date(2026, 1, 2), "NZD", Decimal("1.65")),
        (date(2026, 1, 5), "AUD", Decimal("1.52"))]
    bad = tmp_path / "bad.csv"
    bad.write_text("rate_date,currency,rate\n2026-01-02,AUD,-1\n")
    with pytest.raises(EcbFeedError, match=r"bad\.csv:2"):
        read_rates_csv(bad)
