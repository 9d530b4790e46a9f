"""`make demo`: bring up the local stack, load the whole cache for every instance through the main job,
build the warehouse, export it to the Zoho Analytics sandbox (read back and compared), then trade a day in the
sandbox and do it all again incrementally, printing what each pass cost."""

import time

import dagster as dg
import httpx

from gp_pipelines import database, local_state
from gp_pipelines.assets.exports import CHECK_NAME, GATE_CHECK
from gp_pipelines.definitions import MAIN_JOB, WAREHOUSE_JOB, ZOHO_EXPORT_JOB, build_definitions
from gp_pipelines.demo_cycle import play_order_cycle
from gp_pipelines.demo_partner import run_partner_demo
from gp_pipelines.sandbox.local import StackError, local_stack
from gp_pipelines.sandbox.zoho import DEFAULT_LIMITS, ZohoSandboxOptions
from gp_pipelines.warehouse.checks import reconciliation_summary
from gp_pipelines.warehouse.zoho_export import EXPORT_SPECS

# The step-by-step DEBUG events belong in the Dagster UI; the terminal gets warnings and the summary.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# Cin7 allows 60 calls a minute per key; the demo's sandbox allows ten times that (and the platform budgets
# accordingly) so a first load takes a minute, not ten. The call counts printed are what real accounts cost.
DEMO_RATE_LIMIT = 600
# Likewise Zoho's per-minute limits (BULK 40, METADATA 60) are raised tenfold; API units are not.
DEMO_ZOHO_OPTIONS = ZohoSandboxOptions(per_minute={name: 10 * limit for name, limit in DEFAULT_LIMITS.items()})


def run_demo(size: str = "small", seed: int = 42) -> int:
    try:
        return _run_demo(size, seed)
    except local_state.StackRunning as running:  # raised before anything starts: nothing was touched
        raise StackError(f"{running}: the demo starts a new sandbox world and would reset that stack's state; "
                         "stop it first (Ctrl-C in its terminal)") from None


def _run_demo(size: str, seed: int) -> int:
    started = time.monotonic()
    with local_stack(command="demo", seed=seed, size=size, rate_limit=DEMO_RATE_LIMIT,
                     zoho_options=DEMO_ZOHO_OPTIONS) as stack:
        print(f"PostgreSQL   {database.libpq_url(stack.database_url)}")
        if stack.sandbox is not None:
            print(
                f"Cin7 sandbox {stack.sandbox.base_url} (seed {seed}, size {size}, "
                f"{DEMO_RATE_LIMIT} calls/min per key: 10x Cin7's limit to keep the demo short)"
            )
        if stack.zoho_sandbox is not None:
            print(f"Zoho sandbox {stack.zoho_sandbox.root_url} (per-minute limits 10x Zoho's; API units as Zoho's)")
        print(f"Config       {stack.config.source}: {', '.join(stack.config.instance_keys)}")
        defs = build_definitions(stack.config)
        job = defs.resolve_job_def(MAIN_JOB)
        warehouse = defs.resolve_job_def(WAREHOUSE_JOB)
        zoho = defs.resolve_job_def(ZOHO_EXPORT_JOB) if stack.config.zoho_analytics else None
        with dg.DagsterInstance.get() as instance:
            failures = _run_pass(
                "Initial load: every entity, every instance", job, instance, stack.config.instance_keys
            )
            failures += _build_warehouse(warehouse, instance, stack.database_url)
            if zoho is not None and not failures:
                failures += _export_to_zoho("Zoho Analytics export", zoho, instance, stack.zoho_sandbox)
            if stack.sandbox is not None and not failures:
                summary = httpx.post(f"{stack.sandbox.root_url}/sandbox/advance", json={"days": 1}, timeout=120)
                summary.raise_for_status()
                print("\nThe sandbox traded for a day; syncing again (only what changed is fetched).")
                failures += _run_pass(
                    "Incremental sync after a day of trading", job, instance, stack.config.instance_keys
                )
                failures += _build_warehouse(warehouse, instance, stack.database_url)
                if zoho is not None and not failures:
                    failures += _export_to_zoho("Zoho Analytics export after a day of trading", zoho, instance,
                                                stack.zoho_sandbox)
                if stack.automation_sandbox is not None and not failures:
                    failures += play_order_cycle(defs, instance, stack.config, stack.database_url,
                                                 stack.automation_sandbox)
                    print("\nTrading partner EDI: a retailer's purchase order through to its ASN and invoice")
                    play = run_partner_demo(stack.config, stack.database_url,
                                            stack.automation_sandbox.root / "partner-demo", say=print)
                    failures += 0 if play.ok else 1
        print(f"\nThe demo's data stays in database {local_state.current().database} (psql \"$(.venv/bin/gp-pipelines "
              f"db url)\") and its runs in {stack.dagster_home}: open them with `.venv/bin/gp-pipelines dev "
              "--inspect`. The next `make demo` or `make dev` starts a new sandbox world and clears both.")
    print(f"demo finished in {time.monotonic() - started:.1f}s")
    return 1 if failures else 0


def _run_pass(title: str, job, instance: dg.DagsterInstance, instance_keys: list[str]) -> int:
    rows, failures, totals = [], 0, {"api_calls": 0, "rows": 0}
    for key in instance_keys:
        result = job.execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_LOGS
        )
        if not result.success:
            failures += 1
            rows.append((key, "RUN FAILED", "", "", "", "", result.run_id))
        for event in result.get_asset_materialization_events():
            meta = {name: value.value for name, value in event.materialization.metadata.items()}
            changed = int(meta.get("inserted", 0)) + int(meta.get("updated", 0))
            totals["api_calls"] += int(meta.get("api_calls", 0))
            totals["rows"] += changed
            rows.append(
                (
                    key,
                    event.materialization.asset_key.path[-1],
                    str(meta.get("inserted", 0)),
                    str(meta.get("updated", 0)),
                    str(meta.get("deleted", 0)),
                    str(meta.get("api_calls", 0)),
                    f"{float(meta.get('seconds', 0)):.2f}",
                )
            )
        for check in result.get_asset_check_evaluations():
            if not check.passed:
                failures += 1
                rows.append((key, f"CHECK FAILED {check.asset_key.path[-1]}.{check.check_name}", "", "", "", "", ""))
    print(f"\n{title}")
    _print_table(("instance", "entity", "inserted", "updated", "deleted", "API calls", "seconds"), rows)
    print(f"total: {totals['rows']} rows written, {totals['api_calls']} API calls")
    return failures


def _build_warehouse(job, instance: dg.DagsterInstance, database_url: str) -> int:
    """Build rates, warehouse and views (incrementally after the first time); print the reconciliation."""
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_LOGS)
    failed_checks = [c for c in result.get_asset_check_evaluations() if not c.passed and c.severity.value == "ERROR"]
    built = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    print(f"\nWarehouse: {len(built)} assets built, {len(result.get_asset_check_evaluations())} checks run")
    for check in failed_checks:
        print(f"CHECK FAILED {check.asset_key.to_user_string()}.{check.check_name}: {check.description}")
    print("Reconciliation of the warehouse against the cache (document currency, exact to the cent):")
    print(reconciliation_summary(database_url).markdown)
    return (0 if result.success else 1) + len(failed_checks)


def _export_to_zoho(title: str, job, instance: dg.DagsterInstance, sandbox) -> int:
    """Run the export job; print per table what was sent, what it cost, and the read-back beside the warehouse."""
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_LOGS)
    exported = {
        e.materialization.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    checks = {c.asset_key.path[-1]: c for c in result.get_asset_check_evaluations() if c.check_name == CHECK_NAME}
    for gate in result.get_asset_check_evaluations():
        if gate.check_name == GATE_CHECK and not gate.passed:
            print(f"GATE FAILED {gate.asset_key.to_user_string()}: {gate.description}")
    rows, failures, units = [], 0, 0
    for view, spec in EXPORT_SPECS.items():
        meta, check = exported.get(view), checks.get(view)
        if meta is None and check is None:
            continue
        figures = {k: v.value for k, v in check.metadata.items()} if check is not None else {}
        primary = spec.primary_sum or ""
        status = "ok" if check is not None and check.passed else "FAILED"
        failures += status != "ok"
        if meta:
            units += int(meta.get("units_spent", 0))
        if meta is None:
            sent = "EXPORT FAILED"
        elif meta.get("import_type") not in (None, "none"):
            sent = f"{meta['import_type']} {meta['rows_sent']}"
        else:
            sent = "nothing"
        rows.append((
            view, sent, str(meta.get("plan", "")) if meta else "", str(meta.get("units_spent", "")) if meta else "",
            str(figures.get("rows_warehouse", "")), str(figures.get("rows_zoho", "")),
            f"{figures.get('groups_compared', '')}/{figures.get('groups_differing', '')}",
            primary, _money(figures.get(f"sum_{primary}_warehouse")), _money(figures.get(f"sum_{primary}_zoho")),
            status,
        ))
    print(f"\n{title}: each table read back from Zoho and compared with the warehouse per instance and month")
    _print_table(("table", "sent", "why", "units", "rows (warehouse)", "rows (Zoho)", "groups/differing",
                  "summed column", "sum (warehouse)", "sum (Zoho)", "check"), rows)
    for event in result.all_events:
        if event.is_step_failure:
            failures += 1
            print(f"STEP FAILED {event.step_key}: {event.event_specific_data.error.message.strip()}")
    if exported:
        spent_today = max(int(m["units_spent_today"]) for m in exported.values())
        budget = int(next(iter(exported.values()))["daily_unit_budget"])
        counted = sandbox.state()["units_used"] if sandbox is not None else "?"
        print(f"API units: {units} spent by this export; {spent_today} spent today (ledger), "
              f"{max(0, budget - spent_today)} of the daily budget of {budget} left; the sandbox counted {counted}")
    return failures


def _money(value) -> str:
    return "" if value is None else f"{float(value):,.2f}"


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    print(line.format(*header))
    print(line.format(*("-" * width for width in widths)))
    for row in rows:
        print(line.format(*row))
