"""The reconciler's pure rules: the next step and the states, from rows alone (no database, no server)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gp_pipelines.automation.reconcile import (
    FulfilmentView,
    Item,
    SaleView,
    ShipmentView,
    fulfilment_state,
    next_step,
    sale_state,
    shipment_state,
)


def sale_row(state="planned", backordered=(), reason=None):
    return {"instance": "au", "sale_id": "S1", "state": state, "reason": reason, "backordered": list(backordered)}


def fulfilment_row(seq=1, partner="acme", task_id="T1", edi_file_id=None, quantity="2"):
    return {"seq": seq, "partner": partner, "task_id": task_id, "edi_file_id": edi_file_id,
            "depositor_order": f"SO-1-{seq}", "lines": [{"sku": "A", "quantity": quantity, "product_id": "P"}]}


def done(key):
    return Item(key, "done", False)


def shipment(id_, quantity="1", *, ship=None, tracking=None, wanted=False, final=False, number="1Z"):
    row = {"id": id_, "lines": {"A": quantity}, "final": final, "tracking_number": number, "state": "recorded"}
    return ShipmentView(row, ship, tracking, wanted)


def test_a_new_sale_is_planned_only_where_planning_is_allowed():
    view = SaleView(sale_row("new"))
    assert next_step(view, allow_planning=True).action == "plan"
    assert next_step(view, allow_planning=False).action == "wait"


def test_a_created_fulfilment_for_a_3pl_gets_its_940_whoever_finished_the_creation():
    # The outbox retry created the task after an outage: the 940 still follows, from the state alone.
    view = SaleView(sale_row(), (FulfilmentView(fulfilment_row(), done("create"), None, None),))
    assert next_step(view, allow_planning=False).action == "queue_940"


def test_a_creation_waiting_for_its_retry_holds_that_fulfilment_only():
    failing = Item("create1", "failed", due=False, last_error="Cin7ServerError: down")
    other = FulfilmentView(fulfilment_row(2, edi_file_id=7), done("create2"), Item("send2", "pending", True), None)
    view = SaleView(sale_row(), (FulfilmentView(fulfilment_row(1, task_id=None), failing, None, None), other))
    step = next_step(view, allow_planning=False)
    assert (step.action, step.key) == ("run", "send2")
    idle = SaleView(sale_row(), (FulfilmentView(fulfilment_row(1, task_id=None), failing, None, None),))
    assert next_step(idle, allow_planning=False).action == "wait"
    assert "retrying create1" in sale_state(idle)[1]


def test_shipments_are_booked_in_order_and_tracking_follows_each_booking():
    first = shipment(1, ship=Item("ship1", "failed", due=False, last_error="down"))
    second = shipment(2)
    f = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), "accepted", (first, second))
    assert next_step(SaleView(sale_row(), (f,)), allow_planning=False).action == "wait"
    booked = shipment(1, ship=done("ship1"), wanted=True)
    f = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), "accepted", (booked, second))
    step = next_step(SaleView(sale_row(), (f,)), allow_planning=False)
    assert (step.action, step.shipment_id) == ("queue_tracking", 1)  # booked: its tracking goes out
    posting = shipment(1, ship=done("ship1"), tracking=Item("t1", "failed", due=False), wanted=True)
    f = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), "accepted", (posting, second))
    step = next_step(SaleView(sale_row(), (f,)), allow_planning=False)
    assert (step.action, step.shipment_id) == ("queue_shipment", 2)  # a slow web store does not hold Cin7 back


def test_fulfilment_and_sale_states_follow_the_bookings():
    partial = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), "accepted",
                             (shipment(1, ship=done("x")),))
    assert fulfilment_state(partial) == "partially_shipped"
    complete = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), "accepted",
                              (shipment(1, ship=done("x")), shipment(2, ship=done("y"), wanted=True)))
    assert fulfilment_state(complete) == "shipped"  # the second shipment's tracking is not posted yet
    assert shipment_state(complete.shipments[1]) == "shipped_in_cin7"
    short = FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), None,
                           (shipment(1, ship=done("x"), final=True),))
    assert fulfilment_state(short) == "done"  # final and no tracking wanted: nothing more will happen
    sent = FulfilmentView(fulfilment_row(2, edi_file_id=4), done("c2"), done("s2"), None)
    in_house = FulfilmentView(fulfilment_row(3, partner=None), done("c3"), None, None)
    assert fulfilment_state(sent) == "sent" and fulfilment_state(in_house) == "handed_over"
    assert sale_state(SaleView(sale_row(), (sent, in_house)))[0] == "sent_to_3pl"
    assert sale_state(SaleView(sale_row(), (partial, sent)))[0] == "partially_shipped"
    assert sale_state(SaleView(sale_row(backordered=[{"sku": "A", "quantity": "1"}]), (short, in_house)))[0] \
        == "waiting_for_stock"
    assert sale_state(SaleView(sale_row(), (short, in_house)))[0] == "done"
    given_up = FulfilmentView(fulfilment_row(4, edi_file_id=5), done("c4"), Item("s4", "given_up", False, "nope"), None)
    assert sale_state(SaleView(sale_row(), (sent, given_up))) == ("given_up", "given up: s4: nope")


def test_a_backordered_remainder_is_planned_again_when_a_routing_run_looks():
    view = SaleView(sale_row("sent_to_3pl", backordered=[{"sku": "A", "quantity": "1"}]),
                    (FulfilmentView(fulfilment_row(edi_file_id=3), done("c"), done("s"), None),))
    assert next_step(view, allow_planning=True).action == "plan"
    assert next_step(view, allow_planning=False).action == "wait"


_items = st.one_of(st.none(), st.builds(
    Item, key=st.sampled_from(["k1", "k2", "k3"]), state=st.sampled_from(["pending", "running", "failed", "done",
                                                                          "given_up"]), due=st.booleans()))


@given(st.lists(st.tuples(_items, _items, st.booleans()), max_size=4), _items, _items, st.booleans())
def test_the_next_step_never_runs_what_is_not_due_nor_books_a_shipment_out_of_order(shipments, create, send,
                                                                                    has_file):
    views = tuple(shipment(i + 1, ship=ship, tracking=track, wanted=wanted)
                  for i, (ship, track, wanted) in enumerate(shipments))
    f = FulfilmentView(fulfilment_row(edi_file_id=9 if has_file else None), create, send, None, views)
    step = next_step(SaleView(sale_row(), (f,)), allow_planning=False)
    everything = [create, send, *(s.ship for s in views), *(s.tracking for s in views)]
    if step.action == "run":
        assert any(item is not None and item.key == step.key and item.due and not item.done for item in everything)
    if step.action == "queue_shipment":
        index = next(i for i, s in enumerate(views) if s.row["id"] == step.shipment_id)
        assert all(s.ship is not None and s.ship.done for s in views[:index])
        assert views[index].ship is None
    if step.action in ("queue_940", "queue_shipment", "queue_tracking"):
        assert create is None or create.done
