"""Reliability: the cache equals the sandbox's truth after syncs under seeded fault schedules, after a sync
process is killed with SIGKILL at random points and run again, and when two syncs start together."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import httpx
import pytest

from gp_pipelines import database
from gp_pipelines.cin7.entities import ENTITIES, entity
from gp_pipelines.cin7.store import SYNC_PENDING
from gp_pipelines.cin7.sync import MODES, sync_entity
from gp_pipelines.sandbox.cin7 import SandboxServer
from gp_pipelines.sandbox.local import sandbox_environment

from .helpers import assert_cache_equals_truth, client_for, control, options

SEED = 11
SCHEDULES = {
    "throttles": "throttle429=0.06,throttle503=0.06,throttle400=0.06",
    "outages": "error500=0.08,error503=0.06,slow=0.04",
    "bad_bodies": "truncated=0.08,error200=0.06,html200=0.06",
    "moving_pages": "modify_during_paging=0.35",
    "hard_deletes": "hard_delete=0.06,throttle=0.03,error500=0.03",
    "everything": "throttle=0.03,error500=0.03,slow=0.02,truncated=0.03,error200=0.02,html200=0.02,"
                  "modify_during_paging=0.1",
}
# The guarantee is "every change made before the sync's last request": the faults that change data do so as
# a side effect of our own requests, so a schedule mixing hard deletes (seen only by the reconcile's final
# Total check) with edits on list requests (seen only by a confirming walk) could always change data with
# whichever request comes last. Each is therefore exercised with the other faults, not with each other.
# Small pages, so walks span many pages and records move between them while they are walked.
SMALL_PAGES = [dataclasses.replace(e, page_size=7) if e.paged else e for e in ENTITIES.values()]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_cache_equals_truth_after_syncs_under_a_fault_schedule(name, pg_server_url):
    spec = SCHEDULES[name]
    db_name = f"t_cache_faults_{name}"
    database.drop_database(pg_server_url, db_name)
    url = database.ensure_database(pg_server_url, db_name)
    with SandboxServer(options(seed=SEED, faults=spec, slow_seconds=0.25)) as server:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            for round_number in (1, 2):
                # Hard deletes leave no trace in a change feed: only the full reconcile can see them.
                mode = "reconcile" if "hard_delete" in spec and round_number == 2 else "incremental"
                with client_for(server, "au", keys=2, timeout=0.12) as client:
                    for item in SMALL_PAGES:
                        sync_entity(url, client, "au", item, mode=mode)
                        if item.name != "me":  # the truth of `me` is read over HTTP, after the faults
                            assert_cache_equals_truth(db, server, "au", [item])
                control(server, "advance", {"days": 1})
            served = httpx.get(f"{server.root_url}/sandbox/stats").json()["faults"]
            assert sum(served.values()) >= 10, served
            control(server, "faults", {"spec": ""})
            assert_cache_equals_truth(db, server, "au", [entity("me")])
            assert db.execute(f"SELECT count(*) FROM {SYNC_PENDING}").fetchone()[0] == 0
    database.drop_database(pg_server_url, db_name)


def _cli(server: SandboxServer, url: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "GP_CONFIG"}
    env.update(sandbox_environment(server.instances, server.port, SEED))
    env["GP_DATABASE_URL"] = url
    return subprocess.Popen(
        [sys.executable, "-m", "gp_pipelines.cin7.sync_cli", "--calls-per-minute", "1000000", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def slow_server():
    # Every request a little slow, so a sync takes seconds and a kill lands anywhere in it.
    with SandboxServer(options(seed=SEED, faults="slow=0.35", slow_seconds=0.03)) as server:
        yield server


@pytest.mark.slow
def test_a_sync_killed_at_random_points_then_rerun_equals_the_truth(slow_server, module_database_url, db):
    rng = random.Random(20261122)
    kills = 0
    for _ in range(5):
        process = _cli(slow_server, module_database_url, "--instance", "au", "--mode", rng.choice(MODES))
        # Let it finish a random number of entities, then kill it a random moment into the next one.
        for _line in range(rng.randrange(len(ENTITIES) - 1)):
            if not process.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate(timeout=60)
        if rng.random() < 0.5:
            control(slow_server, "advance", {"days": 0.5})  # the world moves on between attempts
    assert kills >= 3
    final = _cli(slow_server, module_database_url, "--instance", "au")
    out, err = final.communicate(timeout=180)
    assert final.returncode == 0, err
    assert "au/sales" in out
    assert_cache_equals_truth(db, slow_server, "au")
    for item in ENTITIES.values():
        total, distinct = db.execute(
            f"SELECT count(*), count(DISTINCT (instance, id)) FROM erp_cache.{item.table}").fetchone()
        assert total == distinct
    assert db.execute(f"SELECT count(*) FROM {SYNC_PENDING}").fetchone()[0] == 0


def test_two_syncs_of_the_same_instance_started_together_serialise(slow_server, module_database_url, db):
    first = _cli(slow_server, module_database_url, "--instance", "nz", "--entity", "sales", "--json", "--sweep", "0")
    second = _cli(slow_server, module_database_url, "--instance", "nz", "--entity", "sales", "--json",
                  "--sweep", "0")
    results = []
    for process in (first, second):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    sales = len(slow_server.sandbox.stores["nz"].collections["sales"])
    # One did the work; the other waited for the lock and then found nothing to read or write.
    assert sorted(r["inserted"] for r in results) == [0, sales]
    assert sorted(r["detail_calls"] for r in results) == [0, sales]
    assert_cache_equals_truth(db, slow_server, "nz", [entity("sales")])
    # With --no-wait, a sync finding the lock held skips instead of waiting.
    import psycopg

    with psycopg.connect(module_database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended('gp.sync:nz:sales', 0))")
        skipped = _cli(slow_server, module_database_url, "--instance", "nz", "--entity", "sales", "--json",
                       "--no-wait")
        out, err = skipped.communicate(timeout=60)
    assert skipped.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["skipped_locked"] is True
    with client_for(slow_server, "nz") as client:
        assert sync_entity(module_database_url, client, "nz", entity("sales"), sweep=0).detail_calls == 0
