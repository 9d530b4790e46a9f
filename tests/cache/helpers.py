"""Shared helpers for the cache tests: sandbox servers, clients without a rate-limit wait, and the truth."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from gp_pipelines.cin7.client import Cin7Client, RetryPolicy
from gp_pipelines.cin7.entities import ENTITIES, Entity, availability_id
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.cin7.store import CACHE_SCHEMA
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.cin7.store import DocRecord

CLOCK_START = "2026-11-22T00:00:00Z"
FAST_RETRY = RetryPolicy(max_attempts=8, backoff_base=0.005, backoff_cap=0.02, throttle_wait_cap=0.05)


def options(**overrides: Any) -> SandboxOptions:
    values: dict[str, Any] = {"clock_start": CLOCK_START, "rate_limit": 1_000_000, "size": "small", "seed": 11}
    values.update(overrides)
    return SandboxOptions(**values)


def client_for(server: SandboxServer, instance: str = "au", keys: int = 1, **kwargs: Any) -> Cin7Client:
    inst = next(i for i in server.instances if i.key == instance)
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("limiter", LocalRateLimiter(1_000_000, 1.0))
    return Cin7Client(server.base_url, inst.account_id, list(inst.application_keys[:keys]), instance=instance,
                      **kwargs)


def control(server: SandboxServer, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{server.root_url}/sandbox/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def truth(server: SandboxServer, instance: str, entity: Entity) -> dict[str, Any]:
    """What the sandbox holds right now for (instance, entity), keyed like the cache, as JSON values."""
    sandbox = server.sandbox
    st = sandbox.stores[instance]
    if entity.name == "me":
        inst = next(i for i in server.instances if i.key == instance)
        with client_for(server, instance) as client:
            body = client.get("me")
        assert body["Company"] == inst.company
        return {"me": body}
    if entity.name == "product_availability":
        return {availability_id(r.row()): _roundtrip(r.row()) for r in sandbox.records(st, "availability")}
    collection = {"locations": "locations", "price_tiers": "price_tiers", "carriers": "carriers",
                  "products": "products", "customers": "customers", "suppliers": "suppliers", "sales": "sales",
                  "purchases": "purchases", "stock_transfers": "transfers", "stock_adjustments": "adjustments",
                  "finished_goods": "finished_goods"}[entity.name]
    out: dict[str, Any] = {}
    for record in sandbox.records(st, collection):
        if isinstance(record, DocRecord):
            payload = record.document()
        elif entity.has_detail:
            payload = record.detail  # type: ignore[attr-defined]
        else:
            payload = record.row()
        out[entity.record_id(record.row())] = _roundtrip(payload)
    return out


def cached(conn: psycopg.Connection, instance: str, entity: Entity, live: bool = True) -> dict[str, Any]:
    where = "AND deleted_at IS NULL" if live else ""
    rows = conn.execute(
        f"SELECT id, payload FROM {CACHE_SCHEMA}.{entity.table} WHERE instance = %s {where}", (instance,)
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def assert_cache_equals_truth(conn: psycopg.Connection, server: SandboxServer, instance: str,
                              entities: list[Entity] | None = None) -> None:
    for entity in entities or list(ENTITIES.values()):
        expected = truth(server, instance, entity)
        actual = cached(conn, instance, entity)
        missing = set(expected) - set(actual)
        extra = set(actual) - set(expected)
        assert not missing and not extra, (
            f"{instance}/{entity.name}: {len(missing)} missing, {len(extra)} extra in the cache"
        )
        differing = [key for key in expected if expected[key] != actual[key]]
        assert not differing, f"{instance}/{entity.name}: {len(differing)} payloads differ, e.g. {differing[:3]}"
