"""`make demo`: bring up the local stack, run the main job for every instance, print what happened."""

from __future__ import annotations

import time

import dagster as dg

from gp_pipelines import database
from gp_pipelines.definitions import MAIN_JOB, build_definitions
from gp_pipelines.sandbox.local import local_stack

# The step-by-step DEBUG events belong in the Dagster UI; the terminal gets warnings and the summary.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(size: str = "small", seed: int = 42) -> int:
    started = time.monotonic()
    with local_stack(seed=seed, size=size) as stack:
        print(f"PostgreSQL  {database.libpq_url(stack.database_url)}")
        if stack.sandbox is not None:
            print(f"Cin7 sandbox {stack.sandbox.base_url} (seed {seed}, size {size})")
        print(f"Config      {stack.config.source}: {', '.join(stack.config.instance_keys)}")

        defs = build_definitions(stack.config)
        job = defs.resolve_job_def(MAIN_JOB)
        rows = []
        failures = 0
        with dg.DagsterInstance.get() as instance:
            for key in stack.config.instance_keys:
                result = job.execute_in_process(
                    partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_LOGS
                )
                if not result.success:
                    failures += 1
                    rows.append((key, "FAILED", "", "", "", result.run_id))
                    continue
                for event in result.get_asset_materialization_events():
                    meta = event.materialization.metadata
                    rows.append(
                        (
                            key,
                            str(meta["company"].value),
                            str(meta["base_currency"].value),
                            str(meta["timezone"].value),
                            str(meta["api_calls"].value),
                            result.run_id,
                        )
                    )
        _print_table(("instance", "company", "currency", "time zone", "API calls", "Dagster run"), rows)
        print(f"\n{len(rows) - failures} of {len(rows)} instances answered; runs stored in {stack.dagster_home}")
    print(f"demo finished in {time.monotonic() - started:.1f}s")
    return 1 if failures else 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    print()
    print(line.format(*header))
    print(line.format(*("-" * width for width in widths)))
    for row in rows:
        print(line.format(*row))
