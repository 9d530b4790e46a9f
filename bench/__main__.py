"""`python -m bench [name ...]`: run the benchmarks (all by default) and print their figures."""

from __future__ import annotations

import sys

from bench import automation_bench, edi_bench, routing_bench, sandbox_bench, sync_bench, warehouse_bench

BENCHMARKS = {
    "sandbox": sandbox_bench.main,
    "edi": edi_bench.main,
    "sync": sync_bench.main,
    "warehouse": warehouse_bench.main,
    "routing": routing_bench.main,
    "automation": automation_bench.main,
}


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    names = [name for name in argv if name != "--json"] or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        BENCHMARKS[name](as_json=as_json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
