"""ERP cache sync benchmark: API calls against the floor, rate-limit utilisation, write throughput against
COPY, peak memory of a full sales sync, and the DESIGN.md §1 query with and without its index.

`gp-pipelines bench sync [--size small|medium|large] --json` prints one JSON object. What is measured:

- `calls_vs_floor`: an incremental sales sync of instance `au` after 1% of its sales were edited (directly in
  the sandbox, so exactly 1%), divided by the floor = changed documents + list pages + 1 (one call of
  per-run overhead: the sweep's share). `calls_full_reread` is what re-reading every document would cost.
- `utilisation_1_key` / `utilisation_3_keys`: detail reads through the shared PostgreSQL limiter against a
  sandbox enforcing 60 calls per window per key (the window scaled down for small and medium: 3 s / 12 s;
  60 s for large). Steady state: calls completed during four windows after a one-window warm-up, divided
  by what the server allows in them. The sandbox gives each instance two keys; the benchmark registers a
  third one for `au` in the in-process sandbox. `throttled_responses` counts throttles the server sent.
- `write_vs_copy`: the store's initial-load write path (canonical JSON, hash, COPY into a temp table,
  INSERT ... ON CONFLICT) in records per second, against a plain COPY of the same rows into an identical
  table (the ceiling), limiter off (the records are taken from the cache, not fetched again).
- `peak_rss_mb`: peak resident memory (the process's own VmHWM) of a `gp-pipelines sync --entity sales`
  process doing the full initial load of every instance's sales (the sandbox runs in the benchmark's process,
  not in the measured one).
- `query_ms_indexed` / `query_ms_unindexed`: median of 5 runs of `queries.sales_with_sku` (SKU, shipped from
  a location, for a customer, last 12 months) over all cached sales, with the query indexes and with them
  dropped inside a rolled-back transaction.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg

from gp_pipelines import database
from gp_pipelines.cin7 import queries, store
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.entities import entity
from gp_pipelines.cin7.limiter import LocalRateLimiter, PostgresRateLimiter
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.cin7 import sales as sandbox_sales
from gp_pipelines.sandbox.local import sandbox_environment

BENCH_DATABASE = "gp_bench_sync"
SEED = 42
WINDOW_SECONDS = {"small": 3.0, "medium": 12.0, "large": 60.0}
WRITE_SAMPLE = 20_000  # records for the write-throughput comparison (kept bounded in memory)


def _log(as_json: bool, message: str) -> None:
    if not as_json:
        print(message, flush=True)


def _fresh_database(size: str) -> str:
    server = database.server_url()
    name = f"{BENCH_DATABASE}_{size}"
    database.drop_database(server, name)
    return database.ensure_database(server, name)


def _client(server: SandboxServer, instance: str, keys: list[str] | None = None, **kwargs: Any) -> Cin7Client:
    inst = next(i for i in server.instances if i.key == instance)
    kwargs.setdefault("limiter", LocalRateLimiter(10**9, 1.0))
    return Cin7Client(server.base_url, inst.account_id, keys or [inst.application_keys[0]], instance=instance,
                      **kwargs)


# The child reports its own high-water mark (VmHWM of its own memory map). getrusage(RUSAGE_CHILDREN) would not
# do: a child started by fork/vfork + exec carries the parent's peak RSS (here, the sandbox's) into ru_maxrss.
_SYNC_CHILD = (
    "import json, sys\n"
    "from gp_pipelines.cin7.sync_cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1]\n"
    "print(json.dumps({'vm_hwm_kb': int(hwm)}), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _initial_load(server: SandboxServer, url: str) -> dict[str, Any]:
    """Full sales load of every instance in a child process, for its own peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != "GP_CONFIG"}
    env.update(sandbox_environment(server.instances, server.port, SEED))
    env["GP_DATABASE_URL"] = url
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _SYNC_CHILD, "--entity", "sales", "--calls-per-minute", "0", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"initial load failed: {err[-2000:]}")
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    peak_kb = next(json.loads(line)["vm_hwm_kb"] for line in err.splitlines() if line.startswith('{"vm_hwm_kb"'))
    records = sum(r["inserted"] for r in results)
    return {"sales_loaded": records, "initial_load_s": round(seconds, 1),
            "initial_load_records_per_s": round(records / seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1)}


def _calls_vs_floor(server: SandboxServer, url: str) -> dict[str, Any]:
    st = server.sandbox.stores["au"]
    records = st.collections["sales"]
    changed = max(1, len(records) // 100)
    step = len(records) // changed
    for record in records[::step][:changed]:
        st.mutate_sale(record, lambda doc: sandbox_sales.touch(st, doc))
    sales = entity("sales")
    with _client(server, "au") as client:
        result = sync_entity(url, client, "au", sales)
    list_pages = max(1, math.ceil(changed / sales.page_size))
    floor = changed + list_pages + 1
    return {
        "changed_documents": changed,
        "incremental_calls": result.api_calls,
        "incremental_detail_calls": result.detail_calls,
        "incremental_list_calls": result.list_calls,
        "floor": floor,
        "calls_vs_floor": round(result.api_calls / floor, 3),
        "calls_full_reread": math.ceil(len(records) / sales.page_size) + len(records),
    }


def _write_vs_copy(url: str) -> dict[str, Any]:
    sales = entity("sales")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, payload, modified_at::text FROM erp_cache.sales ORDER BY instance, id LIMIT %s",
            (WRITE_SAMPLE,),
        ).fetchall()
        conn.execute("DROP SCHEMA IF EXISTS bench_copy CASCADE")
        conn.execute("CREATE SCHEMA bench_copy")
        conn.execute("CREATE TABLE bench_copy.sales (LIKE erp_cache.sales INCLUDING ALL)")
    instance = "bench"

    conn = store.connect(url)
    try:
        store.start_sync(conn)
        started = time.perf_counter()
        for i in range(0, len(rows), 1000):
            batch = [store.StagedRecord.of(r[0], r[1], r[2]) for r in rows[i:i + 1000]]
            with conn.transaction():
                store.upsert_records(conn, instance, sales, batch, verified=False)
        ours = len(rows) / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, len(rows), 1000):
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                "COPY bench_copy.sales (instance, id, modified_at, payload, payload_hash) FROM STDIN"
            ) as copy:
                for r in rows[i:i + 1000]:
                    text = store.canonical_json(r[1])
                    copy.write_row((instance, r[0], r[2], text, store.text_hash(text)))
        ceiling = len(rows) / (time.perf_counter() - started)
        conn.execute(f"DELETE FROM erp_cache.sales WHERE instance = '{instance}'")
        conn.execute("DROP SCHEMA bench_copy CASCADE")
    finally:
        conn.close()
    return {"write_records": len(rows), "write_records_per_s": round(ours, 1),
            "copy_records_per_s": round(ceiling, 1), "write_vs_copy": round(ours / ceiling, 3)}


def _query_latency(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE erp_cache.sales")  # the query indexes come with the cache schema
        sample = conn.execute(
            """SELECT s.payload->>'CustomerID', line->>'SKU', line->>'Location'
                 FROM erp_cache.sales s,
                      jsonb_array_elements(s.payload->'Fulfilments') f,
                      jsonb_array_elements(f->'Pick'->'Lines') line
                WHERE f->'Ship'->>'Status' = 'AUTHORISED'
                ORDER BY s.payload->>'SaleOrderDate' DESC LIMIT 1"""
        ).fetchone()
        if sample is None:
            return {"query_ms_indexed": None, "query_ms_unindexed": None}
        customer, sku, location = sample

        def timed() -> tuple[float, int]:
            times, found = [], 0
            for _ in range(5):
                started = time.perf_counter()
                found = len(queries.sales_with_sku(conn, sku, location=location, customer=customer))
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times), found

        indexed, found = timed()
        with conn.transaction():
            for name in store.QUERY_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS erp_cache.{name}")
            unindexed, found_unindexed = timed()
            raise psycopg.Rollback()
        total = conn.execute("SELECT count(*) FROM erp_cache.sales").fetchone()[0]
    assert found == found_unindexed
    return {"query_sales": total, "query_matches": found, "query_ms_indexed": round(indexed, 2),
            "query_ms_unindexed": round(unindexed, 2)}


def _utilisation(url: str, size: str, keys: int) -> dict[str, Any]:
    window = WINDOW_SECONDS[size]
    options = SandboxOptions(seed=SEED, size="small", rate_limit=60, rate_window_seconds=window)
    with SandboxServer(options) as server:
        inst = next(i for i in server.instances if i.key == "au")
        app_keys = list(inst.application_keys)
        while len(app_keys) < keys:  # the sandbox issues two keys per instance; register a third
            extra = str(uuid.uuid4())
            server.sandbox.credentials[(inst.account_id.lower(), extra.lower())] = "au"
            app_keys.append(extra)
        ids = [r.id for r in server.sandbox.stores["au"].collections["sales"]]
        limiter = PostgresRateLimiter(url, calls=58, window_seconds=window)
        with _client(server, "au", app_keys[:keys], limiter=limiter) as client:
            started = time.monotonic()
            warm_until, stop_at = started + window, started + 5 * window
            measured = 0
            i = 0
            while True:
                client.get("sale", {"ID": ids[i % len(ids)]})
                i += 1
                now = time.monotonic()
                if now >= stop_at:
                    break
                if now >= warm_until:
                    measured += 1
        limiter.close()
        throttled = sum(server.sandbox.throttled.values())
    allowed = 60 * keys * 4  # four measured windows
    return {"calls": measured, "allowed": allowed, "utilisation": round(measured / allowed, 3),
            "throttled": throttled + client.stats.throttled, "calls_per_minute": round(measured / (4 * window) * 60)}


def main(as_json: bool = False, size: str = "medium") -> dict:
    if size not in WINDOW_SECONDS:
        raise ValueError(f"size must be one of {list(WINDOW_SECONDS)}")
    started = time.perf_counter()
    results: dict[str, Any] = {"size": size}
    url = _fresh_database(size)
    store.ensure_cache_schema(url)
    _log(as_json, f"== sync benchmark ({size}) ==")
    with SandboxServer(SandboxOptions(seed=SEED, size=size, rate_limit=10**9)) as server:
        results.update(_initial_load(server, url))
        _log(as_json, f"initial load: {results['sales_loaded']} sales in {results['initial_load_s']} s, "
                      f"peak RSS {results['peak_rss_mb']} MB")
        results.update(_calls_vs_floor(server, url))
        _log(as_json, f"incremental after 1% changed: {results['incremental_calls']} calls, floor "
                      f"{results['floor']} -> {results['calls_vs_floor']} "
                      f"(full re-read {results['calls_full_reread']})")
    results.update(_write_vs_copy(url))
    _log(as_json, f"writes: {results['write_records_per_s']}/s vs COPY {results['copy_records_per_s']}/s "
                  f"-> {results['write_vs_copy']}")
    results.update(_query_latency(url))
    _log(as_json, f"§1 query over {results.get('query_sales')} sales: {results['query_ms_indexed']} ms indexed, "
                  f"{results['query_ms_unindexed']} ms unindexed")
    for keys in (1, 3):
        figures = _utilisation(url, size, keys)
        results[f"utilisation_{keys}_key" + ("s" if keys > 1 else "")] = figures["utilisation"]
        results[f"calls_per_minute_{keys}_key" + ("s" if keys > 1 else "")] = figures["calls_per_minute"]
        results[f"throttled_{keys}_key" + ("s" if keys > 1 else "")] = figures["throttled"]
        _log(as_json, f"utilisation with {keys} key(s): {figures}")
    results["throttled_responses"] = results["throttled_1_key"] + results["throttled_3_keys"]
    results["throughput_3_vs_1_key"] = round(results["calls_per_minute_3_keys"] / results["calls_per_minute_1_key"], 2)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        print(json.dumps(results))
    else:
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = next((a.split("=", 1)[1] for a in arguments if a.startswith("--size=")), "medium")
    main(as_json="--json" in arguments, size=chosen)

