"""Jobs and schedules that keep the cache fresh, one run per instance partition.

Cadence (all schedules start STOPPED: turn them on in the UI under Automation once the instances are right;
the crons live in assets/freshness.py, which derives each cache asset's freshness policy from them):
- documents (sales, purchases: the change feed plus one detail call per changed document): every 15 minutes;
- master data and stock (everything else): hourly;
- a full re-read with deletion reconcile of every entity: nightly at 02:30 UTC.
"""

import dagster as dg

from gp_pipelines.assets.cache import cache_asset_key
from gp_pipelines.assets.freshness import DOCUMENTS, FULL_RECONCILE, MASTER_DATA, is_document
from gp_pipelines.cin7.entities import ENTITIES, Entity
from gp_pipelines.config import PlatformConfig


def _job(name: str, entities: list[Entity], description: str, mode: str = "incremental"):
    op_config = {"ops": {"__".join(cache_asset_key(e).path): {"config": {"mode": mode}} for e in entities}}
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*(cache_asset_key(e) for e in entities)),
        description=description,
        config=op_config if mode != "incremental" else None,
        tags={"gp/cadence": name},
    )


def _per_instance_schedule(job, cron: str, config: PlatformConfig, description: str):
    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        # A schedule's run keys are scoped to its tick: a retried tick never launches an instance twice.
        for key in config.instance_keys:
            yield dg.RunRequest(run_key=key, partition_key=key, tags={"gp/instance": key})

    return _schedule


def build_cache_jobs(config: PlatformConfig) -> tuple[list, list]:
    documents = [e for e in ENTITIES.values() if is_document(e)]
    master = [e for e in ENTITIES.values() if not is_document(e)]
    documents_job = _job("cache_documents", documents, "Sales and purchases: changes since the watermark.")
    master_job = _job("cache_master_data", master, "Master data, stock and reference books.")
    reconcile_job = _job(
        "cache_full_reconcile",
        list(ENTITIES.values()),
        "Every entity's whole list walked; records gone from Cin7 Core get deleted_at (a walk that would delete "
        "more than cache.max_delete_share refuses). Documents are re-read by the rolling verification, not here.",
        mode="reconcile",
    )
    schedules = [
        _per_instance_schedule(documents_job, DOCUMENTS.cron, config, "Every 15 minutes, per instance."),
        _per_instance_schedule(master_job, MASTER_DATA.cron, config, "Hourly at :05, per instance."),
        _per_instance_schedule(reconcile_job, FULL_RECONCILE.cron, config, "Nightly at 02:30 UTC, per instance."),
    ]
    return [documents_job, master_job, reconcile_job], schedules
