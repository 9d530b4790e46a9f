"""The Cin7 client against the sandbox over real HTTP: auth, paging, every throttle form, faults."""

from __future__ import annotations

import math

import httpx
import pytest

from gp_pipelines.cin7.client import Cin7Client, RetryPolicy, parse_retry_after
from gp_pipelines.cin7.errors import Cin7AuthError, Cin7RequestError, Cin7ResponseError, Cin7ThrottledError
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05, throttle_wait_cap=0.3)


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(SandboxOptions(seed=7, size="small")) as server:
        yield server


@pytest.fixture(scope="module")
def tight_sandbox():
    """A limiter small enough to hit in a test: 4 calls per rolling second per key."""
    with SandboxServer(SandboxOptions(seed=7, size="small", rate_limit=4, rate_window_seconds=1.0)) as server:
        yield server


def _client(server: SandboxServer, instance: int = 0, keys: int = 1, **kwargs) -> Cin7Client:
    inst = server.instances[instance]
    return Cin7Client(
        server.base_url,
        inst.account_id,
        list(inst.application_keys[:keys]),
        instance=inst.key,
        retry=kwargs.pop("retry", FAST),
        **kwargs,
    )


def _force(server: SandboxServer, fault: str, count: int = 1) -> None:
    response = httpx.post(f"{server.root_url}/sandbox/faults/next", json={"fault": fault, "count": count})
    response.raise_for_status()


def test_me_answers_with_the_instance_currency(sandbox):
    for index, expected in enumerate(["AUD", "NZD", "USD"]):
        with _client(sandbox, index) as client:
            me = client.get("me")
        assert me["Currency"] == expected
        assert me["Company"] == sandbox.instances[index].company


def test_bad_key_fails_fast_without_retrying(sandbox):
    inst = sandbox.instances[0]
    with Cin7Client(sandbox.base_url, inst.account_id, ["00000000-0000-0000-0000-000000000000"]) as client:
        with pytest.raises(Cin7AuthError, match="credentials rejected"):
            client.get("me")
        assert client.stats.calls == 1


def test_paging_by_total_arithmetic_reads_every_record_once(sandbox):
    with _client(sandbox) as client:
        total = client.get("customer", {"Page": 1, "Limit": 1, "IncludeDeprecated": True})["Total"]
        before = client.stats.calls
        pages = list(client.paginate("customer", "CustomerList", {"IncludeDeprecated": True}, page_size=7))
    ids = [record["ID"] for page in pages for record in page]
    assert len(ids) == total == len(set(ids))
    assert client.stats.calls - before == math.ceil(total / 7)


@pytest.mark.parametrize("fault", ["throttle429", "throttle503", "throttle400"])
def test_each_throttle_form_is_waited_out(sandbox, fault):
    _force(sandbox, fault, 2)
    with _client(sandbox) as client:
        assert client.get("me")["Currency"] == "AUD"
    assert client.stats.throttled == 2
    assert client.stats.seconds_waited > 0


@pytest.mark.parametrize("fault", ["error500", "error503", "error200", "html200", "truncated"])
def test_transient_faults_are_retried(sandbox, fault):
    _force(sandbox, fault, 2)
    with _client(sandbox) as client:
        assert client.get("me")["Currency"] == "AUD"
    assert client.stats.retries == 2


def test_persistent_malformed_body_raises_a_typed_error(sandbox):
    _force(sandbox, "html200", FAST.max_attempts)
    with _client(sandbox) as client, pytest.raises(Cin7ResponseError, match="HTML page"):
        client.get("me")


def test_persistent_throttle_raises_after_the_cap(sandbox):
    _force(sandbox, "throttle429", FAST.max_attempts)
    with _client(sandbox) as client, pytest.raises(Cin7ThrottledError):
        client.get("me")


def test_real_rolling_window_is_respected(tight_sandbox):
    with _client(tight_sandbox, retry=RetryPolicy(backoff_base=0.01, throttle_wait_cap=1.5)) as client:
        for _ in range(10):
            client.get("me")
    assert client.stats.throttled >= 1
    assert client.stats.calls == 10 + client.stats.throttled


def test_spreading_over_two_keys_throttles_less(tight_sandbox):
    policy = RetryPolicy(backoff_base=0.01, throttle_wait_cap=1.5)
    with _client(tight_sandbox, instance=1, keys=2, retry=policy) as client:
        for _ in range(8):
            client.get("me")
    assert client.stats.throttled == 0


def test_rejected_request_is_a_request_error(sandbox):
    with _client(sandbox) as client, pytest.raises(Cin7RequestError):
        client.get("product", {"Limit": 5000})


@pytest.mark.parametrize(
    ("value", "seconds"), [("60 Seconds", 60.0), ("30 sec", 30.0), ("12", 12.0), ("", None), (None, None)]
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds
