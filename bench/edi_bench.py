"""EDI figures: parse-and-validate throughput on a generated 50 MB file of 856s, and peak memory for 5 MB and
50 MB files (each measured in a fresh child process, so the two sizes do not share a peak).

`python -m bench edi` or `gp-pipelines bench edi [--json]`; keys: mb_per_s (wall clock), cpu_mb_per_s,
mb_per_s_no_shape_memo, peak_rss_mb_5mb, peak_rss_mb_50mb.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from gp_pipelines.edi.models import Pack, Party, ShipItem, Shipment, ShipNotice, ShipOrder
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, write_interchange

SIZES_MB = (5, 50)
SETS_PER_INTERCHANGE = 200

# The child reads and validates the whole file (every set against its spec) and reports its own peak RSS.
_CHILD = r"""
import json, resource, sys, time
from gp_pipelines.edi import structure
from gp_pipelines.edi.validator import iter_events, iter_event_issues, TransactionSet
path = sys.argv[1]
if sys.argv[2:] == ["--no-shape-memo"]:
    structure.SHAPE_CACHE_SIZE = 0
started, cpu_started = time.perf_counter(), time.process_time()
sets = errors = 0
with open(path, "rb") as stream:
    for event in iter_events(stream):
        sets += isinstance(event, TransactionSet)
        errors += sum(issue.is_error for issue in iter_event_issues(event))
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "sets": sets, "errors": errors,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _ship_notice(number: int) -> ShipNotice:
    orders = []
    for order_number in range(3):
        packs = [
            Pack(sscc=f"{number:010d}{order_number:04d}{pack:04d}", items=[
                ShipItem({"UP": f"0123456{item:05d}", "VN": f"SKU-{item}"}, Decimal(item + 1), "EA", str(item + 1),
                         Decimal(item + 1), f"WIDGET {item}")
                for item in range(3)
            ])
            for pack in range(3)
        ]  # fmt: skip
        orders.append(ShipOrder(f"PO{number}-{order_number}", "20240115", f"INV{number}", packs))
    shipment = Shipment(Decimal(9), "CTN25", Decimal("120.5"), "LB", "UPSN", "M", f"BOL{number}", f"1Z{number:016d}",
                        "20240116", [Party("ST", "ACME STORE", "92", "0042", ["1 MAIN ST"], "SPRINGFIELD", "IL",
                                           "62701"), Party("SF", "WAREHOUSE", "92", "WH1")])  # fmt: skip
    return ShipNotice(f"ASN{number}", "20240116", "1200", shipment=shipment, orders=orders)


def generate_file(path: Path, size_mb: int) -> int:
    """A file of back-to-back interchanges of 856s, at least `size_mb` MB; returns its size in bytes."""
    settings = EnvelopeSettings(sender_id="WAREHOUSE", receiver_id="RETAILER")
    numbers = CountingControlNumbers()
    notices = [_ship_notice(n) for n in range(SETS_PER_INTERCHANGE)]
    now = datetime(2024, 1, 16, 12, 0)
    target = size_mb * 1024 * 1024
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            text = write_interchange(notices, settings, numbers, now)
            out.write(text)
            written += len(text.encode("utf-8"))
    return written


def _measure(path: Path, *options: str) -> dict:
    command = [sys.executable, "-c", _CHILD, str(path), *options]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(as_json: bool = False) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="edi_bench_") as tmp:
        for size_mb in SIZES_MB:
            path = Path(tmp) / f"asn_{size_mb}mb.edi"
            size = generate_file(path, size_mb)
            run = _measure(path)
            if run["errors"]:
                raise RuntimeError(f"generated file has {run['errors']} validation errors")
            figures[f"peak_rss_mb_{size_mb}mb"] = round(run["peak_rss_mb"], 1)
            figures[f"sets_{size_mb}mb"] = run["sets"]
            figures[f"seconds_{size_mb}mb"] = round(run["seconds"], 2)
            if size_mb == max(SIZES_MB):
                figures["mb_per_s"] = round(size / 1024 / 1024 / run["seconds"], 2)
                # CPU time too: on a shared machine the wall clock also measures the neighbours.
                figures["cpu_mb_per_s"] = round(size / 1024 / 1024 / run["cpu_seconds"], 2)
                # The structure memo (issues per tag sequence) helps most when every set has the same shape,
                # as here; this figure is the engine without it (every set walked through its loop tree).
                cold = _measure(path, "--no-shape-memo")
                figures["mb_per_s_no_shape_memo"] = round(size / 1024 / 1024 / cold["seconds"], 2)
    if as_json:
        print(json.dumps(figures))
    else:
        print("== edi: parse + validate 856s (fresh process per size) ==")
        print("  ".join(f"{key}={value}" for key, value in figures.items()), flush=True)
    return figures


if __name__ == "__main__":
    main(as_json="--json" in sys.argv[1:])
