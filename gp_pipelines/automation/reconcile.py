"""The one reconciler (DESIGN.md §6): the next action for a sale is computed from its durable state.

`advance_sale` holds the order's lock and repeats: read the sale's rows (sale, fulfilments, shipments, their
outbox items), write the states they imply (with history), ask `next_step` what to do, do it. It stops when
the next step is to wait (for a retry that is not due yet, a 945, stock, a person). Every caller lands here:
the routing run (which may also plan), the partner-file run after it recorded shipments, and the outbox retry
after it retried what was due (`reconcile_open_sales`). So no follow-up depends on which path ran first: the
940 follows the Cin7 fulfilment, the Cin7 shipment follows the 945, the tracking follows the shipment.

`next_step`, `shipment_state`, `fulfilment_state` and `sale_state` are pure functions of the rows, tested
without a database. The order of steps per fulfilment: create the Cin7 task → (3PL) write and send the 940 →
book each recorded shipment in Cin7 Core, in the order they were recorded, each only after the one before →
post each booked shipment's tracking to the web store the sale came from.

`take_routing_offer` is the routing run's entry: it takes the offer (a lease and an attempt count on the sale's
row, so a run that fails or dies lets the sale be offered again with a new run key), then advances the sale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from gp_pipelines.automation import outbox
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.locks import order_lock
from gp_pipelines.automation.orders import (
    admit_sale,
    fulfilment_key,
    plan_sale,
    queue_warehouse_order,
    send_key,
)
from gp_pipelines.automation.schema import record_audit
from gp_pipelines.automation.shipping import queue_shipment, queue_tracking, ship_key, tracking_key
from gp_pipelines.automation.state import FULFILMENT, SALE, SALE_FINAL, SHIPMENT, rows, transition

_log = logging.getLogger(__name__)
ACCEPTED_ACKS = ("accepted", "accepted_with_errors")
MAX_STEPS = 60  # far more than any sale needs (a step per outside action): a guard against a loop, not a limit


# ---------------------------------------------------------------- the rows, as the pure functions see them


@dataclass(frozen=True)
class Item:
    """An outbox item's state; `due` when a run may take it now."""

    key: str
    state: str
    due: bool
    last_error: str | None = None
    kind: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def given_up(self) -> bool:
        return self.state == "given_up"


@dataclass(frozen=True)
class ShipmentView:
    row: Mapping[str, Any]
    ship: Item | None
    tracking: Item | None
    tracking_wanted: bool


@dataclass(frozen=True)
class FulfilmentView:
    row: Mapping[str, Any]
    create: Item | None
    send: Item | None
    ack_state: str | None
    shipments: tuple[ShipmentView, ...] = ()


@dataclass(frozen=True)
class SaleView:
    row: Mapping[str, Any]
    fulfilments: tuple[FulfilmentView, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return self.row["instance"], self.row["sale_id"]

    def items(self) -> list[Item]:
        found = []
        for f in self.fulfilments:
            found += [item for item in (f.create, f.send) if item is not None]
            for s in f.shipments:
                found += [item for item in (s.ship, s.tracking) if item is not None]
        return found


@dataclass(frozen=True)
class Step:
    action: str  # plan | run | queue_940 | queue_shipment | queue_tracking | wait
    key: str = ""
    seq: int = 0
    shipment_id: int = 0
    why: str = ""


def next_step(view: SaleView, *, allow_planning: bool) -> Step:
    """What to do next for this sale (see the module docstring)."""
    sale = view.row
    plannable = sale["state"] in ("new", "held") or (
        sale["backordered"] and sale["state"] not in ("cancelled", "given_up"))
    if allow_planning and plannable:
        return Step("plan", why="routing: plan what no fulfilment covers yet")
    for f in view.fulfilments:
        seq = f.row["seq"]
        if f.create is not None and not f.create.done:
            if f.create.due:
                return Step("run", f.create.key, seq, why="create the Cin7 fulfilment")
            continue  # its retry is not due yet, or it was given up: nothing else of this fulfilment can go
        if f.row["partner"] and f.row["task_id"]:
            if f.row["edi_file_id"] is None:
                return Step("queue_940", seq=seq, why="write the 940 for the 3PL")
            if f.send is not None and not f.send.done and f.send.due:
                return Step("run", f.send.key, seq, why="send the 940")
        for shipment in f.shipments:
            if shipment.ship is None:
                return Step("queue_shipment", seq=seq, shipment_id=shipment.row["id"], why="book the shipment")
            if not shipment.ship.done:
                if shipment.ship.due:
                    return Step("run", shipment.ship.key, seq, shipment.row["id"], why="ship in Cin7 Core")
                break  # later shipments wait until this one is booked
            if shipment.tracking_wanted:
                if shipment.tracking is None:
                    return Step("queue_tracking", seq=seq, shipment_id=shipment.row["id"], why="post the tracking")
                if not shipment.tracking.done and shipment.tracking.due:
                    return Step("run", shipment.tracking.key, seq, shipment.row["id"], why="post the tracking")
    return Step("wait", why=_waiting_for(view))


def _waiting_for(view: SaleView) -> str:
    pending = [item for item in view.items() if not item.done]
    given_up = [item for item in pending if item.given_up]
    if given_up:
        return f"given up: {given_up[0].key}: {given_up[0].last_error}"
    failing = [item for item in pending if item.last_error]
    if failing:
        return f"retrying {failing[0].key}: {failing[0].last_error}"
    if pending:
        return f"{len(pending)} action(s) in progress"
    return ""


def shipment_state(shipment: ShipmentView) -> str:
    if any(item is not None and item.given_up for item in (shipment.ship, shipment.tracking)):
        return "given_up"
    if shipment.ship is None or not shipment.ship.done:
        return "recorded"
    if not shipment.tracking_wanted:
        return "no_tracking_needed"
    return "tracking_posted" if shipment.tracking is not None and shipment.tracking.done else "shipped_in_cin7"


def fulfilment_state(f: FulfilmentView) -> str:
    items = [f.create, f.send, *(s.ship for s in f.shipments), *(s.tracking for s in f.shipments)]
    if any(item is not None and item.given_up for item in items):
        return "given_up"
    if f.row["task_id"] is None:
        return "planned"
    if not f.row["partner"]:
        return "handed_over"  # in-house: the warehouse ships it in Cin7 Core itself
    booked = [s for s in f.shipments if s.ship is not None and s.ship.done]
    if booked:
        ordered = {line["sku"]: Decimal(line["quantity"]) for line in f.row["lines"]}
        shipped: dict[str, Decimal] = {}
        for s in booked:
            for sku, quantity in s.row["lines"].items():
                shipped[sku] = shipped.get(sku, Decimal(0)) + Decimal(quantity)
        complete = all(shipped.get(sku, Decimal(0)) >= quantity for sku, quantity in ordered.items())
        final = any(s.row["final"] for s in booked)
        if not (complete or final):
            return "partially_shipped"
        if all(shipment_state(s) in ("tracking_posted", "no_tracking_needed") for s in f.shipments):
            return "done"
        return "shipped" if complete else "short_shipped"
    if f.ack_state in ACCEPTED_ACKS:
        return "acknowledged"
    return "sent" if f.send is not None and f.send.done else "created"


_STAGE = {"planned": 0, "created": 1, "sent": 2, "acknowledged": 3, "partially_shipped": 4, "shipped": 5,
          "short_shipped": 5, "done": 6}  # fmt: skip
_SALE_STAGE = ("planned", "fulfilments_created", "sent_to_3pl", "acknowledged", "partially_shipped", "shipped")


def sale_state(view: SaleView) -> tuple[str, str]:
    """(state, reason) the sale's rows imply. A sale without fulfilments keeps what planning decided."""
    sale = view.row
    backordered = sale["backordered"] or []
    remainder = f"{len(backordered)} line(s) backordered" if backordered else ""
    if sale["state"] == "cancelled" or not view.fulfilments:
        return sale["state"], sale["reason"] or ""
    states = [fulfilment_state(f) for f in view.fulfilments]
    waiting = _waiting_for(view)
    if "given_up" in states:
        return "given_up", waiting
    # In-house fulfilments are handed to the warehouse: they neither hold a sale back nor make it shipped.
    stages = [_STAGE[state] for state in states if state not in ("handed_over", "cancelled")] or [6]
    if min(stages) == 6:
        if backordered:
            return "waiting_for_stock", f"shipped what was in stock; {remainder}"
        return "done", ""
    reason = "; ".join(part for part in (waiting, remainder) if part)
    if min(stages) < 4 <= max(stages):
        return "partially_shipped", reason
    return _SALE_STAGE[min(stages)], reason


# ---------------------------------------------------------------- reading the rows


def _item(row: Mapping[str, Any] | None, now: datetime) -> Item | None:
    if row is None:
        return None
    due = (row["state"] in ("pending", "failed") and row["next_attempt_at"] <= now) or (
        row["state"] == "running" and row["lease_until"] is not None and row["lease_until"] < now)
    return Item(row["key"], row["state"], due, row["last_error"], row["kind"])


def load_sale(conn: psycopg.Connection, context: AutomationContext, instance: str, sale_id: str) -> SaleView | None:
    found = rows(conn, "SELECT *, now() AS read_at FROM automation.sales WHERE instance = %s AND sale_id = %s",
                 (instance, sale_id))
    if not found:
        return None
    sale = found[0]
    now = sale["read_at"]
    fulfilments = rows(conn, """
        SELECT f.*, (SELECT i.state FROM automation.edi_interchanges i
                      WHERE i.file_id = f.edi_file_id AND i.direction = 'out' ORDER BY i.id DESC LIMIT 1) AS ack_state
          FROM automation.fulfilments f WHERE f.instance = %s AND f.sale_id = %s ORDER BY f.seq""",
                       (instance, sale_id))  # fmt: skip
    shipments = rows(conn, "SELECT * FROM automation.shipments WHERE instance = %s AND sale_id = %s ORDER BY seq, id",
                     (instance, sale_id))
    items = {row["key"]: row for row in rows(
        conn, "SELECT key, kind, state, next_attempt_at, lease_until, last_error FROM automation.outbox "
              "WHERE instance = %s AND subject = %s", (instance, sale_id))}  # fmt: skip
    stores = {store.key for store in context.config.automation.shopify} if context.shopify is not None else set()
    wants_tracking = bool(sale["store_key"] in stores and sale["store_order_id"])
    views = []
    for f in fulfilments:
        own = []
        for s in (s for s in shipments if s["seq"] == f["seq"]):
            wanted = wants_tracking and bool(s["tracking_number"])
            ship = items.get(ship_key(instance, f["task_id"], s)) if f["task_id"] else None
            track = items.get(tracking_key(sale["store_key"], sale["store_order_id"], s["tracking_number"])) \
                if wanted else None
            own.append(ShipmentView(s, _item(ship, now), _item(track, now), wanted))
        send = items.get(send_key(f["partner"], f["depositor_order"])) if f["partner"] else None
        views.append(FulfilmentView(f, _item(items.get(fulfilment_key(instance, sale_id, f["seq"])), now),
                                    _item(send, now), f["ack_state"], tuple(own)))
    return SaleView(sale, tuple(views))


def _write_states(conn: psycopg.Connection, context: AutomationContext, view: SaleView, cause: str) -> str:
    """Persist the states the rows imply (history for each change); returns the sale's state."""
    instance, sale_id = view.key
    for f in view.fulfilments:
        for s in f.shipments:
            state = shipment_state(s)
            if state != s.row["state"]:
                transition(conn, SHIPMENT, (s.row["id"],), state, cause=cause, actor=context.actor)
        state = fulfilment_state(f)
        if state != f.row["state"]:
            transition(conn, FULFILMENT, (instance, sale_id, f.row["seq"]), state, cause=cause, actor=context.actor)
    state, reason = sale_state(view)
    waiting = state in ("waiting_for_stock", "held") or bool(view.row["backordered"])
    changes: dict[str, Any] = {"reason": reason or None}
    if waiting and view.row["waiting_since"] is None:
        changes["waiting_since"] = view.row["read_at"]
    elif not waiting and view.row["waiting_since"] is not None:
        changes.update(waiting_since=None, waiting_notified_at=None)
    if state != view.row["state"] or changes["reason"] != view.row["reason"] or len(changes) > 1:
        transition(conn, SALE, view.key, state, cause=cause, actor=context.actor, changes=changes)
    return state


# ---------------------------------------------------------------- advancing one sale


@dataclass
class SaleProgress:
    instance: str
    sale_id: str
    state: str  # the sale's state afterwards, or 'locked' / 'unknown' / 'taken_elsewhere'
    reason: str = ""
    order_number: str = ""
    steps: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {"instance": self.instance, "sale": self.order_number or self.sale_id, "state": self.state,
                "reason": self.reason, "steps": len(self.steps)}


def advance_sale(conn: psycopg.Connection, context: AutomationContext, instance: str, sale_id: str, *,
                 allow_planning: bool, cause: str) -> SaleProgress:
    """Advance one sale as far as its state allows now (see the module docstring). `conn` is autocommit.
    Planning (which reads Cin7 Core) happens at most once per call and only with `allow_planning`."""
    with order_lock(conn, instance, sale_id, wait_seconds=context.lock_wait_seconds) as held:
        if not held:
            return SaleProgress(instance, sale_id, "locked", "another run holds this order's lock")
        steps: list[str] = []
        last = cause
        for _ in range(MAX_STEPS):
            view = load_sale(conn, context, instance, sale_id)
            if view is None:
                return SaleProgress(instance, sale_id, "unknown", "the automation has not taken this sale on")
            _write_states(conn, context, view, last)
            step = next_step(view, allow_planning=allow_planning)
            if step.action == "wait":
                break
            last = _perform(conn, context, view, step)
            steps.append(last)
            if step.action == "plan":
                allow_planning = False
        else:  # pragma: no cover - the guard itself
            _log.error("sale %s/%s: still stepping after %d steps; left for the next pass", instance, sale_id,
                       MAX_STEPS)
        final = rows(conn, "SELECT state, reason, order_number FROM automation.sales WHERE instance = %s AND "
                           "sale_id = %s", (instance, sale_id))[0]  # fmt: skip
        return SaleProgress(instance, sale_id, final["state"], final["reason"] or "", final["order_number"], steps)


def _perform(conn: psycopg.Connection, context: AutomationContext, view: SaleView, step: Step) -> str:
    instance, sale_id = view.key
    if step.action == "plan":
        return f"routing: {plan_sale(conn, context, instance, sale_id)}"
    if step.action == "run":
        item = context.run(conn, step.key, next((i.kind for i in view.items() if i.key == step.key), None))
        detail = f": {item.last_error}" if item.outcome in (outbox.FAILED, outbox.GAVE_UP) else ""
        return f"{step.why}: {item.key} {item.outcome}{detail}"
    fulfilment = next(f for f in view.fulfilments if f.row["seq"] == step.seq)
    if step.action == "queue_940":
        return f"{step.why}: {queue_warehouse_order(conn, context, instance, sale_id, step.seq)} queued"
    index = next(i for i, s in enumerate(fulfilment.shipments) if s.row["id"] == step.shipment_id)
    shipment = fulfilment.shipments[index].row
    if step.action == "queue_shipment":
        earlier = [s.row for s in fulfilment.shipments[:index]]
        return f"{step.why}: {queue_shipment(conn, context, fulfilment.row, shipment, earlier)} queued"
    if step.action == "queue_tracking":
        return f"{step.why}: {queue_tracking(conn, context, view.row, shipment)} queued"
    raise ValueError(f"unknown step {step.action!r}")


def reconcile_open_sales(conn: psycopg.Connection, context: AutomationContext, *, cause: str,
                         limit: int = 500) -> list[SaleProgress]:
    """Advance every sale with fulfilments that is not finished (no planning: routing runs plan). One sale
    that fails is logged and left for the next pass; it does not stop the others."""
    open_sales = conn.execute(
        f"""SELECT a.instance, a.sale_id FROM automation.sales a
             WHERE a.state NOT IN ({", ".join(f"'{s}'" for s in SALE_FINAL)})
               AND EXISTS (SELECT 1 FROM automation.fulfilments f WHERE f.instance = a.instance
                             AND f.sale_id = a.sale_id)
             ORDER BY a.updated_at LIMIT %s""", (limit,)).fetchall()  # fmt: skip
    progress = []
    for instance, sale_id in open_sales:
        try:
            progress.append(advance_sale(conn, context, instance, sale_id, allow_planning=False, cause=cause))
        except Exception as exc:  # one sale's trouble must not hide the others'
            _log.warning("sale %s/%s could not be advanced: %s", instance, sale_id, outbox.describe_error(exc))
            progress.append(SaleProgress(instance, sale_id, "error", outbox.describe_error(exc)))
    return progress


@dataclass
class RetryPass:
    retried: list[outbox.OutboxItem]
    advanced: list[SaleProgress]
    long_waits: list[dict[str, Any]]


def retry_pass(conn: psycopg.Connection, context: AutomationContext, *, cause: str) -> RetryPass:
    """What the outbox retry does each time: run the due outside actions, advance every open sale from its
    state (the follow-ups a retry made possible), notify about long waits."""
    retried = context.retry_due(conn)
    advanced = reconcile_open_sales(conn, context, cause=cause)
    return RetryPass(retried, advanced, notify_long_waiting(conn, context))


# ---------------------------------------------------------------- routing offers


def take_routing_offer(conn: psycopg.Connection, context: AutomationContext, instance: str, sale_id: str,
                       attempt: int, *, admitted_by: str = "start_line", why: str = "new") -> SaleProgress:
    """A routing run's whole work for one offer: admit the sale if it is new to us, take the offer (only the run
    whose `attempt` matches the sale's count takes it), advance the sale with planning allowed, and release the
    offer. A failure (e.g. Cin7 Core down) is recorded on the sale with the next attempt time, then raised, so
    the run fails visibly and the sale is offered again after the back-off. A negative `attempt` (a run an
    operator launched by hand) takes whatever the sale's count is now."""
    if attempt < 0:
        known = conn.execute("SELECT attempts FROM automation.sales WHERE instance = %s AND sale_id = %s",
                             (instance, sale_id)).fetchone()
        attempt = known[0] if known else 0
    if attempt == 0:
        cause = ("authorised and ordered on or after the routing start line" if admitted_by == "start_line"
                 else f"admitted by {admitted_by}")  # fmt: skip
        admit_sale(conn, instance, sale_id, admitted_by=admitted_by, cause=cause, actor=context.actor)
    lease = context.run_lease
    with conn.transaction():
        taken = conn.execute(
            """UPDATE automation.sales SET attempts = attempts + 1, lease_until = now() + %s, updated_at = now()
                WHERE instance = %s AND sale_id = %s AND attempts = %s AND (lease_until IS NULL OR lease_until < now())
                RETURNING attempts""",
            (lease, instance, sale_id, attempt),
        ).fetchone()
    if taken is None:
        return SaleProgress(instance, sale_id, "taken_elsewhere", "another run took this offer")
    try:
        progress = advance_sale(conn, context, instance, sale_id, allow_planning=True,
                                cause=f"routing offer {taken[0]} ({why})")
    except Exception as exc:
        error = outbox.describe_error(exc)
        delay = context.policy.delay(taken[0])
        with conn.transaction():
            conn.execute("UPDATE automation.sales SET lease_until = NULL, last_error = %s, "
                         "next_attempt_at = now() + %s, updated_at = now() WHERE instance = %s AND sale_id = %s",
                         (error, delay, instance, sale_id))
            record_audit(conn, "routing.failed", actor=context.actor, instance=instance, subject=sale_id,
                         detail={"attempt": taken[0], "error": error, "retry_in_seconds": delay.total_seconds()})
        raise
    with conn.transaction():
        conn.execute("UPDATE automation.sales SET lease_until = NULL, last_error = NULL, updated_at = now() "
                     "WHERE instance = %s AND sale_id = %s", (instance, sale_id))
    return progress


# ---------------------------------------------------------------- long waits


def notify_long_waiting(conn: psycopg.Connection, context: AutomationContext,
                        now: datetime | None = None) -> list[dict[str, Any]]:
    """Notify once per waiting spell about sales that waited (for stock or a person) longer than
    `automation.notify_waiting_after_minutes`; returns them."""
    threshold = timedelta(minutes=context.config.automation.notify_waiting_after_minutes)
    at = now or datetime.now(UTC)
    late = rows(conn, """SELECT instance, sale_id, order_number, state, reason, waiting_since, backordered
                           FROM automation.sales
                          WHERE waiting_since < %s AND waiting_notified_at IS NULL ORDER BY waiting_since""",
                (at - threshold,))  # fmt: skip
    for sale in late:
        if context.notifier is not None:
            what = sale["order_number"] or sale["sale_id"]
            context.notifier.notify(
                f"Order {what} ({sale['instance']}) has waited {_hours(at - sale['waiting_since'])}",
                f"Sale {what} of instance {sale['instance']} is {sale['state']} since "
                f"{sale['waiting_since']:%Y-%m-%d %H:%M} UTC: {sale['reason'] or 'waiting'}.\n"
                f"Backordered: {_lines(sale['backordered']) or 'nothing'}.\n"
                "It is offered to routing again when the cache shows stock for it (or, when held, when it changes "
                "in Cin7 Core).",
                key=f"sale.waiting:{sale['instance']}:{sale['sale_id']}:{sale['waiting_since'].isoformat()}",
                conn=conn)  # fmt: skip
        conn.execute("UPDATE automation.sales SET waiting_notified_at = %s WHERE instance = %s AND sale_id = %s",
                     (at, sale["instance"], sale["sale_id"]))
    return late


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours >= 2 else f"{delta.total_seconds() / 60:.0f} minutes"


def _lines(lines: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{line['sku']} ×{line['quantity']}" for line in lines or [])
