"""Cin7 sandbox figures: start-up time and peak memory per data size, and client calls per second.

Each size starts in a fresh process so its peak RSS is its own. Sizes: `small`, `medium`, `large`
(GP_BENCH_SIZES overrides, e.g. `small,medium`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

_CHILD = r"""
import json, resource, sys, time
import httpx
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.limiter import LocalRateLimiter
size = sys.argv[1]
t0 = time.perf_counter()
server = SandboxServer(SandboxOptions(seed=42, size=size, rate_limit=10**9)).start()
startup = time.perf_counter() - t0
inst = server.instances[0]
# The sandbox's own limit is lifted, so the client's must be too: this measures the server, not the budget.
client = Cin7Client(server.base_url, inst.account_id, list(inst.application_keys), instance=inst.key,
                   limiter=LocalRateLimiter(calls=10**9))
total = client.get("saleList", {"Limit": 1})["Total"]
t0 = time.perf_counter()
n = 0
for page in client.paginate("saleList", "SaleList", page_size=1000):
    n += len(page)
list_seconds = time.perf_counter() - t0
ids = [row["SaleID"] for row in client.get("saleList", {"Limit": 200})["SaleList"]]
t0 = time.perf_counter()
for sale_id in ids:
    client.get("sale", {"ID": sale_id})
detail_seconds = time.perf_counter() - t0
stats = httpx.get(server.root_url + "/sandbox/stats").json()
server.stop()
print(json.dumps({
    "size": size, "startup_s": round(startup, 2), "sales_per_instance": total,
    "list_rows_per_s": round(n / list_seconds), "detail_calls_per_s": round(len(ids) / detail_seconds, 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
}))
"""


def main(as_json: bool = False) -> dict:
    sizes = os.environ.get("GP_BENCH_SIZES", "small,medium,large").split(",")
    results: dict = {}
    if not as_json:
        print("== sandbox: start-up, memory, throughput (one fresh process per size) ==")
    for size in sizes:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _CHILD, size], capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            print(f"{size}: FAILED\n{out.stderr[-2000:]}")
            continue
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        figures["wall_s"] = round(time.perf_counter() - started, 1)
        results[size] = figures
        if not as_json:
            print("  ".join(f"{key}={value}" for key, value in figures.items()), flush=True)
    if as_json:
        print(json.dumps(results))
    return results
