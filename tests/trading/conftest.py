"""Fixtures for trading-partner EDI: a Cin7 Core sandbox over HTTP, a retailer sandbox in a temporary folder, and
the partner config that joins them."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gp_pipelines.automation.exchange import envelope_for
from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.models import Document
from gp_pipelines.edi.writer import CountingControlNumbers, write_interchange
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.partner import PartnerItem, PartnerSandbox, Receipt

PARTNER_ID = "RETAILSBX"
OUR_ID = "GPPIPELINES"
GS1_PREFIX = "0614141"
NOW = datetime(2026, 11, 23, 9, 30)


def partner_config(**overrides: Any) -> PartnerConfig:
    values: dict[str, Any] = {
        "key": "retail", "name": "Sandbox Retail", "kind": "trading", "instance": "au",
        "interchange_id": PARTNER_ID, "our_id": OUR_ID, "usage": "T",
        "transport": {"kind": "folder", "root": "/nonexistent"},
        "customer": "Wattle Co-op 8", "price_tier": "Wholesale", "location": "Main Warehouse",
        "gs1_company_prefix": GS1_PREFIX, "carrier_scac": {"Sendle": "SNDL", "UPS": "UPSN"},
    }  # fmt: skip
    values.update(overrides)
    return PartnerConfig(**values)


class Vendor:
    """Our side of the exchange in a test: writes documents as the platform would (its envelope for the
    partner, control numbers that keep counting) into the retailer's in/ and lets the retailer read them."""

    def __init__(self, retailer: PartnerSandbox, config: PartnerConfig) -> None:
        self.retailer = retailer
        self.config = config
        self.control_numbers = CountingControlNumbers()
        self.items: list[PartnerItem] = []  # what the retailer orders from us

    def text(self, documents: list[Document]) -> str:
        return write_interchange(documents, envelope_for(self.config), self.control_numbers, NOW)

    def deliver(self, name: str, content: str | bytes) -> Receipt:
        path = self.retailer.in_dir / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        (receipt,) = self.retailer.process_once()
        return receipt

    def send(self, name: str, documents: list[Document]) -> Receipt:
        return self.deliver(name, self.text(documents))


@pytest.fixture(scope="module")
def cin7() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(clock_start="2026-11-22T00:00:00Z", rate_limit=100_000)) as server:
        yield server


@pytest.fixture(scope="module")
def api(cin7: SandboxServer) -> Iterator[httpx.Client]:
    instance = next(i for i in cin7.instances if i.key == "au")
    headers = {"api-auth-accountid": instance.account_id, "api-auth-applicationkey": instance.application_keys[0]}
    with httpx.Client(base_url=cin7.base_url, headers=headers, timeout=10.0) as client:
        yield client


def get(api: httpx.Client, path: str, key: str, **params: Any) -> Any:
    response = api.get(path, params={"Limit": 1000, **params})
    response.raise_for_status()
    return response.json()[key] if key else response.json()


def post(api: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = api.post(path, json=body)
    assert response.status_code == 200, f"POST {path}: {response.text}"
    return response.json()


@pytest.fixture
def retailer(tmp_path: Path, request: pytest.FixtureRequest) -> PartnerSandbox:
    # A seed per test: PO numbers differ between tests that share one Cin7 sandbox.
    seed = zlib.crc32(request.node.name.encode()) % 100_000
    return PartnerSandbox(tmp_path / "retail", PARTNER_ID, OUR_ID, seed=seed, clock=lambda: NOW)
