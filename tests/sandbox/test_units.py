"""Pure unit tests: time stamps, instances, FX, the limiter and the fault schedule."""

from __future__ import annotations

import pytest

from gp_pipelines.sandbox.cin7 import SandboxOptions, sandbox_instances
from gp_pipelines.sandbox.cin7.faults import FAULT_NAMES, FaultSchedule, parse_fault_spec
from gp_pipelines.sandbox.cin7.limiter import RollingWindowLimiter
from gp_pipelines.sandbox.cin7.model import fmt_business_date, fmt_stamp, fx_rate, parse_stamp


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_stamps_round_trip_and_accept_every_documented_form() -> None:
    ms = parse_stamp("2026-11-22T10:11:12.345Z")
    assert fmt_stamp(ms) == "2026-11-22T10:11:12.345Z"
    assert parse_stamp("2026-11-22T10:11:12.345") == ms  # no offset means UTC
    assert parse_stamp("2026-11-22T10:11:12") == ms - 345
    assert parse_stamp("2026-11-22T21:11:12.345+11:00") == ms
    assert parse_stamp("2026-11-22") == parse_stamp("2026-11-22T00:00:00Z")
    with pytest.raises(ValueError, match="not a valid date"):
        parse_stamp("yesterday")


def test_business_dates_are_local_midnight_without_zone() -> None:
    ms = parse_stamp("2026-11-22T20:00:00Z")
    assert fmt_business_date(ms, "Australia/Sydney") == "2026-11-23T00:00:00"
    assert fmt_business_date(ms, "America/New_York") == "2026-11-22T00:00:00"


def test_instances_are_deterministic_and_distinct() -> None:
    a, b, c = sandbox_instances(42), sandbox_instances(42), sandbox_instances(7)
    assert a == b
    assert [i.key for i in a] == ["au", "nz", "us"]
    assert [i.currency for i in a] == ["AUD", "NZD", "USD"]
    assert [i.timezone for i in a] == ["Australia/Sydney", "Pacific/Auckland", "America/New_York"]
    assert all(len(i.application_keys) == 2 for i in a)
    assert {i.account_id for i in a}.isdisjoint({i.account_id for i in c})


def test_fx_rate_means_base_units_per_quote_unit_and_varies_by_date() -> None:
    day = parse_stamp("2026-01-01T00:00:00Z")
    assert fx_rate("AUD", "AUD", day) == 1.0
    usd_in_aud = fx_rate("AUD", "USD", day)
    assert 1.3 < usd_in_aud < 1.7
    assert fx_rate("AUD", "USD", day + 90 * 86_400_000) != usd_in_aud
    assert abs(fx_rate("USD", "AUD", day) * usd_in_aud - 1) < 1e-4


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="size"):
        SandboxOptions(size="huge").validate()
    with pytest.raises(ValueError, match="throttle_mode"):
        SandboxOptions(throttle_mode="418").validate()


def test_limiter_rolls_and_refusals_do_not_count() -> None:
    clock = FakeClock()
    limiter = RollingWindowLimiter(3, 60.0, clock)
    assert all(limiter.hit("k").allowed for _ in range(3))
    clock.t += 10
    refused = limiter.hit("k")
    assert not refused.allowed and refused.retry_after_seconds == 50
    assert limiter.hit("other").allowed  # per application key
    clock.t += 49.5
    assert limiter.hit("k").retry_after_seconds == 1  # rounded up
    clock.t += 0.6
    assert limiter.hit("k").allowed  # the refusals did not keep the window full
    assert limiter.in_window("k") == 1


def test_fault_spec_parsing() -> None:
    assert parse_fault_spec(" throttle=0.05, error500=0.02 ,") == [("throttle", 0.05), ("error500", 0.02)]
    assert parse_fault_spec("") == []
    for bad, token in [("nosuch=0.1", "nosuch=0.1"), ("slow", "slow"), ("slow=abc", "slow=abc"),
                       ("slow=2", "slow=2")]:
        with pytest.raises(ValueError, match=token):
            parse_fault_spec(bad)
    with pytest.raises(ValueError, match="more than 1"):
        parse_fault_spec("slow=0.6,error500=0.6")


def test_fault_schedule_is_deterministic_and_forced_faults_come_first() -> None:
    spec = ",".join(f"{name}=0.05" for name in FAULT_NAMES)
    first = FaultSchedule(spec, seed=3)
    second = FaultSchedule(spec, seed=3)
    draws = [first.draw() for _ in range(500)]
    assert draws == [second.draw() for _ in range(500)]
    assert set(draws) == {*FAULT_NAMES, None}
    schedule = FaultSchedule("", seed=3)
    schedule.force("error500", 2)
    assert [schedule.draw() for _ in range(3)] == ["error500", "error500", None]
    with pytest.raises(ValueError, match="unknown fault"):
        schedule.force("gremlins")
