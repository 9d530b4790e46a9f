"""Fixtures: real sandbox servers on 127.0.0.1 and httpx clients authenticated as one instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from gp_pipelines.sandbox.cin7 import SandboxInstance, SandboxOptions, SandboxServer

CLOCK_START = "2026-11-22T00:00:00Z"


def make_options(**overrides: object) -> SandboxOptions:
    """Fixed clock start (reproducible data) and a limit high enough not to get in the way."""
    values: dict[str, object] = {"clock_start": CLOCK_START, "rate_limit": 100_000}
    values.update(overrides)
    return SandboxOptions(**values)  # type: ignore[arg-type]


def api_client(server: SandboxServer, instance: str = "au", key_index: int = 0) -> httpx.Client:
    inst: SandboxInstance = next(i for i in server.instances if i.key == instance)
    return httpx.Client(base_url=server.base_url, timeout=10.0, headers={
        "api-auth-accountid": inst.account_id,
        "api-auth-applicationkey": inst.application_keys[key_index],
    })


@pytest.fixture(scope="module")
def shared_server() -> Iterator[SandboxServer]:
    """A read-only server shared by a test module: tests using it must not write."""
    with SandboxServer(make_options()) as server:
        yield server


@pytest.fixture
def fresh_server() -> Iterator[Callable[..., SandboxServer]]:
    """A factory for servers with custom options, all stopped at the end of the test."""
    started: list[SandboxServer] = []

    def start(**overrides: object) -> SandboxServer:
        server = SandboxServer(make_options(**overrides)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def au(shared_server: SandboxServer) -> Iterator[httpx.Client]:
    with api_client(shared_server) as client:
        yield client
