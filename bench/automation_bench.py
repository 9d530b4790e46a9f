"""Order automation benchmark: every reliability scenario against fresh stand-ins, and the memory a 100 MB partner
file costs.

`gp-pipelines bench automation --json` prints one JSON object:

- `scenarios`: per scenario (`gp_pipelines/sandbox/scenario_plays.py`), what an independent read of the
  stand-ins shows (shipments per fulfilment in Cin7, fulfillments with tracking on the Shopify order, 940s the
  3PL received, files left in the inbox, ...) beside what was expected, and the seconds it took. Each plays in a
  world of its own: a fresh Cin7 sandbox, SFTP server, 3PL, Shopify store and database.
- `large_file`: a partner file of `LARGE_FILE_MB` MB (valid 945s, one group, for orders we never sent, so it is
  quarantined after a full streaming read, store and validation) processed by `process_partner_file` in a
  child process, which reports its own peak resident memory (VmHWM) and, as the baseline measured in the same
  run, its resident memory after processing a 1-set file of the same kind first (imports, connections, pools).
  `large_invalid_file`: the same with an error in every set (a 997 rejecting them all, a capped reason).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from gp_pipelines import database
from gp_pipelines.config import config_to_yaml
from gp_pipelines.sandbox.scenario_plays import SCENARIOS, WORLD_OPTIONS, play
from gp_pipelines.sandbox.scenarios import ScenarioWorld

LARGE_FILE_MB = 100
_SET = ("ST*945*{n:09d}~W06*F*NOSUCH-{n}*20261122*SHIP{n}~N1*ST*Customer*92*{n1}~W27*M*UPSN~"
        "LX*1~W12*CC*1*1*0*EA**VN*SKU-{n}~W03*1~SE*8*{n:09d}~")

# The child: process a small file (the baseline), then the large one, and report its own memory.
_CHILD = """
import json, os, sys, psycopg, yaml
from gp_pipelines.automation.context import context_from_environment
from gp_pipelines.automation.inbound import process_partner_file
from gp_pipelines.config import parse_config

def status(field):
    return int(next(l for l in open('/proc/self/status') if l.startswith(field + ':')).split()[1]) // 1024

config = parse_config(yaml.safe_load(open(sys.argv[1])), sys.argv[1])
partner = config.partner(sys.argv[2])
url = os.environ['GP_DATABASE_URL']
out = {}
with context_from_environment(config, url, actor='bench', environ=os.environ) as context, \\
        psycopg.connect(url, autocommit=True) as conn:
    small = process_partner_file(conn, context, partner, sys.argv[3])
    out['baseline_rss_mb'] = status('VmRSS')
    out['baseline_hwm_mb'] = status('VmHWM')
    import time
    started = time.perf_counter()
    large = process_partner_file(conn, context, partner, sys.argv[4])
    out['seconds'] = round(time.perf_counter() - started, 1)
    out['states'] = [small.state, large.state]
    out['reason'] = large.reason[:160]
out['peak_rss_mb'] = status('VmHWM')
print(json.dumps(out))
"""


def _log(as_json: bool, message: str) -> None:
    if not as_json:
        print(message, flush=True)


def _fresh_database(server_url: str) -> tuple[str, str]:
    name = f"gp_bench_automation_{uuid.uuid4().hex[:8]}"
    return name, database.ensure_database(server_url, name)


def interchange(settings: Any, sets: int, *, valid: bool = True) -> bytes:
    """One interchange from the 3PL with `sets` 945s in one group (each with an error when not `valid`: N104 one
    character long)."""
    isa = (f"ISA*00*          *00*          *{settings.sender_qualifier}*{settings.sender_id:<15}*"
           f"{settings.receiver_qualifier}*{settings.receiver_id:<15}*261122*1200*U*00401*000000001*0*T*>~")
    body = "".join(_SET.format(n=n, n1="C1" if valid else "1") for n in range(1, sets + 1))
    return (f"{isa}GS*SW*{settings.sender_id}*{settings.receiver_id}*20261122*1200*1*X*004010~{body}"
            f"GE*{sets}*1~IEA*1*000000001~").encode()


def _large_file(world: ScenarioWorld, as_json: bool, *, valid: bool) -> dict[str, Any]:
    settings = world.automation.warehouses[world.partner].settings
    per_set = len(_SET.format(n=100_000, n1="C1"))
    sets = LARGE_FILE_MB * 1024 * 1024 // per_set
    world.drop_file("945_small.x12", interchange(settings, 1, valid=valid))
    world.drop_file("945_large.x12", interchange(settings, sets, valid=valid))
    size_mb = (world.inbox / "945_large.x12").stat().st_size / 1024 / 1024
    _log(as_json, f"large file ({'valid sets' if valid else 'every set invalid'}): {size_mb:.0f} MB, {sets} sets; "
                  "processing in a child process")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(config_to_yaml(world.config))
    env = {**os.environ, **world.automation.environment(), "GP_DATABASE_URL": world.database_url}
    child = subprocess.run([sys.executable, "-c", _CHILD, handle.name, world.partner, "945_small.x12",
                            "945_large.x12"], env=env, capture_output=True, text=True, check=False)
    Path(handle.name).unlink()
    if child.returncode != 0:
        raise RuntimeError(f"the large-file child failed: {child.stderr[-3000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures.update(file_mb=round(size_mb, 1), sets=sets,
                   mb_per_s=round(size_mb / figures["seconds"], 1) if figures["seconds"] else None)
    return figures


LARGE_FILES = {"large_file": True, "large_invalid_file": False}


def main(as_json: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    server_url = database.ensure_embedded_server().url() if not os.environ.get(database.DATABASE_URL_ENV) else \
        os.environ[database.DATABASE_URL_ENV]
    results: dict[str, Any] = {"scenarios": {}}
    _log(as_json, "== automation benchmark: scenarios against fresh stand-ins ==")
    with tempfile.TemporaryDirectory(prefix="gp-bench-automation-", dir=database.project_home()) as root:
        for name in [*SCENARIOS, *LARGE_FILES]:
            db_name, url = _fresh_database(server_url)
            world = ScenarioWorld(Path(root) / name, url, **WORLD_OPTIONS.get(name, {})).start()
            try:
                if name in LARGE_FILES:
                    results[name] = _large_file(world, as_json, valid=LARGE_FILES[name])
                    _log(as_json, f"{name}: {results[name]}")
                    continue
                result = play(name, world)
                results["scenarios"][name] = {k: v for k, v in result.as_dict().items() if k != "name"}
                _log(as_json, f"{'ok  ' if result.ok else 'FAIL'} {name} ({result.seconds:.1f} s)\n"
                              f"     expected {result.expected}\n     observed {result.observed}"
                     + "".join(f"\n     {note}" for note in result.notes))
            finally:
                world.stop()
                database.drop_database(server_url, db_name)
    results["scenarios_ok"] = sum(s["ok"] for s in results["scenarios"].values())
    results["scenarios_total"] = len(results["scenarios"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(f"{results['scenarios_ok']} of {results['scenarios_total']} scenarios as expected; "
              f"{results['seconds']} s")
    return results
