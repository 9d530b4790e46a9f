"""`gp-pipelines warehouse build [--instance KEY]` and `gp-pipelines export zoho [--dry-run]`: the warehouse and
Zoho export jobs from the shell.

Both run the code location's own Dagster jobs (`warehouse`, `zoho_export`) in this process, against the Dagster
instance in DAGSTER_HOME when it is set (the runs then show in the UI) or an ephemeral one, and print every
check: its name, PASSED / FAILED / WARNED, its description and one line per problem. Exit 1 when a blocking
check fails (or a step fails), 2 on a usage or config error; never a traceback.

- `warehouse build --instance KEY` runs the same job tagged `gp/instance=KEY`: the gate and the checks judge that
  instance's rows only (the others may still be loading). The tables merge every instance, so they are still
  built from the whole cache; exports keep gating on every configured instance.
- `export zoho --dry-run` runs the export gates outside Dagster and says per view what an export would send,
  judged from the export state kept in PostgreSQL; it sends nothing to Zoho and records no run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from gp_pipelines import database

STORAGE_URL_ENV = "GP_DAGSTER_STORAGE_URL"  # the local DAGSTER_HOME's dagster.yaml reads its storage URL here
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # this command prints the outcome itself


def register(subparsers: argparse._SubParsersAction, platform_database_url: Callable[[], str]) -> None:
    """Add `warehouse` and `export` to a `gp-pipelines` subparsers object."""
    warehouse = subparsers.add_parser("warehouse", help="the merged warehouse")
    warehouse_commands = warehouse.add_subparsers(dest="warehouse_command", required=True)
    build = warehouse_commands.add_parser(
        "build", help="run the warehouse job: completeness gate, rates, tables, analytics views and their checks "
        "(exit 1 when a blocking check fails)")
    build.add_argument("--instance", metavar="KEY",
                       help="gate and judge only this instance's rows (the tables still merge every instance)")
    build.set_defaults(func=lambda args: run_warehouse_build(args, platform_database_url))

    export = subparsers.add_parser("export", help="publish the analytics views to BI tools")
    export_commands = export.add_subparsers(dest="export_command", required=True)
    zoho = export_commands.add_parser(
        "zoho", help="run the Zoho Analytics export job: gates, upload, read-back (exit 1 when a blocking check "
        "fails)")
    zoho.add_argument("--dry-run", action="store_true",
                      help="run the gates and say what would be sent; send nothing")
    zoho.set_defaults(func=lambda args: run_zoho_export(args, platform_database_url))


@contextlib.contextmanager
def dagster_instance() -> Iterator[Any]:
    """DAGSTER_HOME's instance when it is set (runs show in the UI), else an ephemeral one."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        os.environ.setdefault(STORAGE_URL_ENV, database.dagster_storage_url())
        instance = dg.DagsterInstance.get()
    else:
        instance = dg.DagsterInstance.ephemeral()
    with instance:
        yield instance


def _use_platform_database(platform_database_url: Callable[[], str]) -> None:
    """Name the platform database in the environment, so the job's resources read the same one the other
    commands (and `dev`) use."""
    os.environ.setdefault(database.DATABASE_URL_ENV, platform_database_url())
    import psycopg

    # Reach it once before Dagster starts: an unreachable database is then one line naming GP_DATABASE_URL
    # (the CLI's handler), not a failed step per asset.
    psycopg.connect(os.environ[database.DATABASE_URL_ENV], connect_timeout=10).close()


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_warehouse_build(args: argparse.Namespace, platform_database_url: Callable[[], str]) -> int:
    warnings.filterwarnings("ignore")  # Dagster's preview warnings are for developers, not this output
    from gp_pipelines.assets.warehouse import INSTANCE_TAG
    from gp_pipelines.config import load_config
    from gp_pipelines.definitions import WAREHOUSE_JOB, build_definitions

    config = load_config()
    if args.instance is not None and args.instance not in config.instance_keys:
        return _error(f"unknown instance {args.instance!r}; the config has {', '.join(config.instance_keys)}")
    _use_platform_database(platform_database_url)
    job = build_definitions(config).resolve_job_def(WAREHOUSE_JOB)
    tags = {INSTANCE_TAG: args.instance} if args.instance else {}
    scope = f"instance {args.instance}" if args.instance else f"instances {', '.join(config.instance_keys)}"
    print(f"warehouse build ({scope})")
    return _execute(job, tags)


def run_zoho_export(args: argparse.Namespace, platform_database_url: Callable[[], str]) -> int:
    warnings.filterwarnings("ignore")
    from gp_pipelines.config import load_config
    from gp_pipelines.definitions import ZOHO_EXPORT_JOB, build_definitions

    config = load_config()
    zoho = config.zoho_analytics
    if zoho is None:
        return _error(f"{config.source}: no zoho_analytics section; there is nothing to export to Zoho")
    _use_platform_database(platform_database_url)
    if args.dry_run:
        return _dry_run(config)
    missing = [name for name in (zoho.client_id_env, zoho.client_secret_env, zoho.refresh_token_env)
               if not os.environ.get(name)]
    if missing:
        return _error("Zoho Analytics credentials not set in the environment: " + ", ".join(missing))
    job = build_definitions(config).resolve_job_def(ZOHO_EXPORT_JOB)
    print(f"Zoho Analytics export to workspace {zoho.workspace_id}")
    return _execute(job, {})


def _execute(job, tags: dict[str, str]) -> int:
    try:
        with dagster_instance() as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET, tags=tags)
    except Exception as exc:  # anything Dagster or the database raises: one line, not a traceback
        print(f"error: the {job.name} run could not be carried out: {type(exc).__name__}: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}", file=sys.stderr)
        return 1
    return report(job, result)


def report(job, result) -> int:
    """Print what the run built and every check; 0 when it succeeded and no blocking check failed, else 1."""
    import dagster as dg

    built = {e.materialization.asset_key for e in result.get_asset_materialization_events()}
    selected = set(job.asset_layer.selected_asset_keys)
    print(f"run {result.run_id}: {len(built)} of {len(selected)} assets materialised")
    seen: set[str] = set()
    blocking_failed = 0
    evaluations = sorted(result.get_asset_check_evaluations(),
                         key=lambda c: (c.passed, c.asset_key.to_user_string(), c.check_name))
    for check in evaluations:
        error = check.severity == dg.AssetCheckSeverity.ERROR
        state = "PASSED" if check.passed else ("FAILED" if error else "WARNED")
        blocking_failed += not check.passed and error
        print(f"{state:<7} {check.asset_key.to_user_string()}:{check.check_name}  {check.description or ''}")
        failures = check.metadata.get("failures")
        lines = [line for line in (failures.value.splitlines() if failures is not None else []) if line]
        new = [line for line in lines if line not in seen]
        for line in new:
            print(f"          {line}")
        if lines and not new:
            print(f"          (the same {len(lines)} problems as above)")
        seen.update(lines)
    step_failures = 0
    for event in result.all_events:
        if event.is_step_failure:
            step_failures += 1
            print(f"STEP FAILED {event.step_key}: {_failure_line(event.event_specific_data)}")
    missing = sorted(key.to_user_string() for key in selected - built)
    if missing:
        print(f"not materialised ({len(missing)}): " + ", ".join(missing))
    ok = result.success and not blocking_failed and not step_failures
    print("result: " + ("every blocking check passed" if ok else
                        f"{blocking_failed} blocking check(s) failed, {step_failures} step(s) failed"))
    return 0 if ok else 1


def _failure_line(data) -> str:
    """The first line of why a step failed: a `dg.Failure`'s own description, else the error without its class."""
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description.strip().splitlines()[0]
    error = data.error
    while error.cause is not None and error.message.startswith("dagster._core.errors.Dagster"):
        error = error.cause  # Dagster's wrapper ("Error occurred while executing op ..."): the cause says why
    first = error.message.strip().splitlines()[0] if error.message.strip() else "failed"
    qualified, _, rest = first.partition(": ")
    return f"{error.cls_name}: {rest}" if rest and qualified.endswith(error.cls_name or "\0") else first


def _dry_run(config) -> int:
    from gp_pipelines.assets.exports import exported_views
    from gp_pipelines.resources.zoho import zoho_resource_from_config
    from gp_pipelines.warehouse import gates
    from gp_pipelines.warehouse.checks import scope_from_config
    from gp_pipelines.warehouse.zoho_export import EXPORT_SPECS, ZohoExportError, preview_export

    url = database.database_url()
    views = exported_views(config)
    print(f"Zoho Analytics export, dry run: {len(views)} views; nothing is sent")
    gate = gates.export_gate(url, scope_from_config(config), [EXPORT_SPECS[view].warehouse_table for view in views])
    for name, outcome in gate.items():
        print(f"{'PASSED' if outcome.passed else 'FAILED':<7} {name}  {outcome.description}")
        for line in outcome.failures:
            print(f"          {line}")
    if not all(outcome.passed for outcome in gate.values()):
        print("result: the gates failed; an export would send nothing")
        return 1
    settings = zoho_resource_from_config(config).settings()
    for view in views:
        try:
            print("  " + preview_export(url, view, settings).line())
        except ZohoExportError as exc:
            print(f"  {view}: would fail: {exc}")
            return 1
    print("result: every gate passed; the export would send the above")
    return 0
