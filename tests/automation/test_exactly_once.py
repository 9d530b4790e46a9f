"""The order automation under real-world faults, against fresh stand-ins (real HTTP, SFTP and PostgreSQL).

Each test plays one scenario of `gp_pipelines/sandbox/scenario_plays.py` in a world of its own and asserts two
things: what the stand-ins show afterwards (shipments in Cin7, tracking on the Shopify order, 940s the 3PL
received, files left in the inbox) equals what should be there, and the states every order and file went
through, in order."""

from __future__ import annotations

import uuid

import pytest

from gp_pipelines import database
from gp_pipelines.sandbox.scenario_plays import WORLD_OPTIONS, play
from gp_pipelines.sandbox.scenarios import ScenarioWorld

pytestmark = pytest.mark.slow

ROUTED = ["new", "planned", "fulfilments_created", "sent_to_3pl"]


@pytest.fixture
def run(pg_server_url, tmp_path):
    worlds = []

    def run_scenario(name: str):
        database_name = f"t_scenario_{uuid.uuid4().hex[:10]}"
        url = database.ensure_database(pg_server_url, database_name)
        world = ScenarioWorld(tmp_path / name, url, **WORLD_OPTIONS.get(name, {})).start()
        worlds.append((world, database_name))
        result = play(name, world)
        assert result.observed == result.expected, result.as_dict()
        return result

    yield run_scenario
    for world, name in worlds:
        world.stop()
        database.drop_database(pg_server_url, name)


def _sale(result):
    return next(states for key, states in result.histories.items() if key.startswith("sale "))


def _files(result, prefix=""):
    return {key.split(" #")[0].removeprefix("file "): states for key, states in result.histories.items()
            if key.startswith(f"file {prefix}")}


def test_cin7_down_while_creating_the_fulfilment_sends_the_940_once(run):
    result = run("cin7_down_creating_the_fulfilment")
    assert _sale(result) == ROUTED
    assert result.histories["fulfilment 1"] == ["planned", "created", "sent"]


def test_a_routing_run_killed_after_the_pick_is_finished_by_the_retry(run):
    result = run("routing_run_dies_after_the_pick")
    assert _sale(result) == ROUTED
    assert result.histories["fulfilment 1"] == ["planned", "created", "sent"]


def test_a_crash_between_the_cin7_shipment_and_the_outbox_posts_tracking_once(run):
    result = run("crash_between_the_shipment_and_the_outbox")
    # The 997 for its 940 moves it to acknowledged when read before the 945 (both come from the same pass).
    assert _sale(result) in ([*ROUTED, "acknowledged", "shipped", "done"], [*ROUTED, "shipped", "done"])
    [shipment] = [states for key, states in result.histories.items() if key.startswith("shipment")]
    assert shipment == ["recorded", "shipped_in_cin7", "tracking_posted"]
    # The file had done its part (the shipment recorded) before the Cin7 call the process died in.
    [advice] = [states for name, states in _files(result, "945").items()]
    assert advice == ["taken", "processed"]


def test_the_same_945_bytes_under_two_names_ship_once_with_their_partial_quantity(run):
    result = run("the_same_945_under_two_names")
    assert _sale(result)[-1] == "partially_shipped"
    [shipment] = [states for key, states in result.histories.items() if key.startswith("shipment")]
    assert shipment == ["recorded", "no_tracking_needed"]
    # Whichever of the two is read first applies; the other is the duplicate.
    assert sorted(_files(result, "945").values()) == [["taken", "duplicate"], ["taken", "processed"]]


def test_a_sale_waiting_for_stock_is_routed_when_the_stock_arrives(run):
    result = run("stock_arrives_later")
    assert _sale(result) == ["new", "waiting_for_stock", "planned", "fulfilments_created", "sent_to_3pl"]


def test_a_945_uploaded_in_two_slow_halves_is_booked_once_when_complete(run):
    result = run("a_945_uploaded_in_two_slow_halves")
    runs = [states for name, states in result.histories.items() if name.startswith("file 945_slow")]
    # The half file was looked at (once, or again after its back-off) and left; the whole one was booked.
    assert runs == [["taken", "incomplete", "superseded"], ["taken", "processed"]] or \
        runs == [["taken", "incomplete", "taken", "incomplete", "superseded"], ["taken", "processed"]], runs


def test_one_bad_file_name_does_not_block_the_good_files(run):
    result = run("one_bad_name_among_good_files")
    files = _files(result)
    assert files["945_\\xff\\xfe_odd name.x12"] == ["taken", "processed"]
    assert all(states[-1] in ("processed", "duplicate") for states in files.values()), files


def test_text_html_utf16_binary_and_nul_files_are_quarantined_and_notified(run):
    result = run("files_that_are_not_x12")
    quarantined = {name: states for name, states in _files(result).items() if not name.startswith("997")}
    assert quarantined == {name: ["taken", "quarantined"] for name in result.expected["quarantined"]}


def test_the_first_switch_on_routes_nothing_before_the_start_line(run):
    result = run("first_switch_on_with_history")
    assert _sale(result) == ROUTED


def test_cin7_down_at_the_routing_runs_first_call_routes_it_after_it_returns(run):
    result = run("cin7_down_at_the_routing_runs_first_call")
    assert _sale(result) == ROUTED  # the failed offer changed no state: the sale stayed new until routed


def test_a_dripping_answer_gives_up_at_the_calls_deadline(run):
    run("a_cin7_answer_dripping_one_byte_every_10_seconds")
