"""`python -m bench [name ...]`: run the benchmarks (all by default) and print their figures."""

from __future__ import annotations

import sys

from bench import sandbox_bench

BENCHMARKS = {"sandbox": sandbox_bench.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
