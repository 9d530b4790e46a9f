"""Relocating a sale: change the location a Cin7 Core sale is fulfilled from, keeping every amount and status.

The Cin7 Core API has no "move this order" call: the header `Location` may change only while the order is not
authorised, an authorised sale can be undone only without payments, and an invoice can be undone only without
payments. So a relocation unwinds the sale, moves it and winds it back up, in these steps (only those that
apply to the sale are planned):

    remove_payments → undo_invoices → undo_sale → set_location → authorise_order → authorise_invoices
    → add_payments → verify

- **Before**, it refuses (nothing changed): a sale that does not exist, is VOIDED or CREDITED, has shipped
  anything (a fulfilment whose Ship is AUTHORISED or PARTIALLY AUTHORISED) or has an authorised pick or pack
  (the goods are already off the shelf at the old location), an unknown, deprecated or unchanged target. It
  reports lines the target cannot cover from stock (`require_stock=True` refuses them; otherwise the order
  is re-authorised BACKORDERED there).
- **Snapshot**: the sale document and its payments, written to the journal before the first change.
- **After** (`verify`): location changed; order lines and totals, invoice lines, dates, totals and statuses,
  and the payments (amount, date, account, reference, rate; and their sum) equal to the snapshot to the cent.

Crash safety: `automation.relocations` (one row per instance, sale and target location) journals the snapshot
and each completed step. Work on the sale holds the order lock for the whole run. A rerun after a crash or a
failed step resumes from the first step not done, and every step re-reads Cin7 Core before acting, so nothing
is done twice: payments are re-added by counting what is there against the snapshot (and a duplicate left by a
retried call is deleted), a call that failed but whose effect landed counts as done. A failed step stops the
run with a `RelocationStepError` naming the step and the steps left; the journal row shows the same.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation.locks import order_lock, order_lock_name
from gp_pipelines.automation.schema import AUTOMATION_SCHEMA, dumps_json, ensure_automation_schema, record_audit
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.errors import Cin7Error, Cin7RequestError

RELOCATIONS_TABLE = f"{AUTOMATION_SCHEMA}.relocations"
STEPS = ("remove_payments", "undo_invoices", "undo_sale", "set_location", "authorise_order",
         "authorise_invoices", "add_payments", "verify")
SHIPPED = ("AUTHORISED", "PARTIALLY AUTHORISED")
INVOICE_LIVE = ("AUTHORISED", "PAID")

_ORDER_LINE_FIELDS = ("ProductID", "SKU", "Name", "Quantity", "Price", "Discount", "Tax", "TaxRule", "Total",
                      "Comment", "DropShip")
_INVOICE_LINE_FIELDS = ("ProductID", "SKU", "Name", "Quantity", "Price", "Discount", "Tax", "TaxRule", "Total",
                        "Account", "Comment")
_CENT = Decimal("0.01")
_log = logging.getLogger(__name__)

# ---------------------------------------------------------------- errors and results


class RelocationError(RuntimeError):
    """The relocation was refused or cannot go on; the message says why and what to do."""


class RelocationLockedError(RelocationError):
    """Another worker holds the order lock."""


class AlreadyAtLocationError(RelocationError):
    """The sale is at the target location already (`location` is its name as Cin7 Core spells it)."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class RelocationStepError(RelocationError):
    """A step failed: `step` failed, `done` were completed before it, `remaining` (from `step` on) are left."""

    def __init__(self, message: str, step: str, done: Sequence[str], remaining: Sequence[str]) -> None:
        super().__init__(message)
        self.step = step
        self.done = list(done)
        self.remaining = list(remaining)


@dataclass(frozen=True)
class Shortfall:
    sku: str
    product_id: str
    needed: float
    available: float


@dataclass
class RelocationPlan:
    """What a relocation will do (or, resuming, what is left); `describe()` is the dry-run report."""

    instance: str
    sale_id: str
    order_number: str
    source_location: str
    target_location: str
    target_location_id: str
    steps: list[str]
    steps_done: list[str] = field(default_factory=list)
    step_notes: dict[str, str] = field(default_factory=dict)
    validations: list[str] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resuming: bool = False

    @property
    def remaining(self) -> list[str]:
        return [step for step in self.steps if step not in self.steps_done]

    def describe(self) -> list[str]:
        head = "Resume relocating" if self.resuming else "Relocate"
        lines = [f"{head} sale {self.order_number} ({self.sale_id}) in {self.instance}: "
                 f"{self.source_location} -> {self.target_location}"]
        lines += [f"  ok: {text}" for text in self.validations]
        if self.shortfalls:
            lines += [f"  short at {self.target_location}: {s.sku} needs {s.needed:g}, available {s.available:g}"
                      for s in self.shortfalls]
        lines.append("  plan:")
        for number, step in enumerate(self.steps, 1):
            mark = "done" if step in self.steps_done else "todo"
            lines.append(f"    {number}. [{mark}] {step}: {self.step_notes.get(step, '')}".rstrip(": "))
        lines += [f"  warning: {text}" for text in self.warnings]
        return lines


@dataclass
class RelocationResult:
    plan: RelocationPlan
    outcome: str  # "relocated" | "resumed_and_relocated" | "already_relocated" | "dry_run"
    steps_run: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    api_calls: int = 0

    def describe(self) -> list[str]:
        lines = [*self.plan.describe(), f"  outcome: {self.outcome} ({self.api_calls} API calls)"]
        lines += [f"  verified: {text}" for text in self.checks]
        lines += [f"  warning: {text}" for text in self.warnings if text not in self.plan.warnings]
        return lines

    def as_metadata(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "instance": self.plan.instance, "sale_id": self.plan.sale_id,
                "order_number": self.plan.order_number, "from": self.plan.source_location,
                "to": self.plan.target_location, "steps_run": ", ".join(self.steps_run),
                "shortfalls": len(self.plan.shortfalls), "api_calls": self.api_calls}


# ---------------------------------------------------------------- amounts and comparisons


def cents(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _day(value: Any) -> str:
    return str(value or "")[:10]


def payment_signature(payment: Mapping[str, Any], task_id: str | None = None) -> tuple[str, ...]:
    """What makes two payments the same payment (their ids differ once re-added)."""
    return ((task_id or str(payment.get("TaskID") or "")).lower(), str(cents(payment.get("Amount"))),
            _day(payment.get("DatePaid")), str(payment.get("Account") or ""), str(payment.get("Reference") or ""),
            f"{float(payment.get('CurrencyRate') or 0):.6f}")


def _live_invoices(sale: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [i for i in sale.get("Invoices") or [] if i.get("Status") in INVOICE_LIVE]


def _find_invoice(sale: Mapping[str, Any], task_id: str) -> dict[str, Any] | None:
    return next((i for i in sale.get("Invoices") or [] if str(i.get("TaskID", "")).lower() == task_id.lower()),
                None)


def _line_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    return (str(line.get("ProductID")), float(line.get("Quantity") or 0), cents(line.get("Price")),
            float(line.get("Discount") or 0), cents(line.get("Tax")), cents(line.get("Total")))


def verify_relocation(snapshot: Mapping[str, Any], sale: Mapping[str, Any], payments: Sequence[Mapping[str, Any]],
                      target_location: str, invoice_map: Mapping[str, str] | None = None,
                      ) -> tuple[list[str], list[str], list[str]]:
    """Compare the relocated sale with its snapshot: (problems, checks passed, warnings). Pure."""
    invoice_map = {k.lower(): v for k, v in (invoice_map or {}).items()}
    before = snapshot["sale"]
    problems: list[str] = []
    checks: list[str] = []
    warnings: list[str] = []

    def check(ok: bool, passed: str, failed: str) -> None:
        (checks if ok else problems).append(passed if ok else failed)

    check(sale.get("Location") == target_location, f"location is {target_location}",
          f"location is {sale.get('Location')!r}, expected {target_location!r}")
    check(sale["Order"]["Status"] == before["Order"]["Status"], f"order status {before['Order']['Status']}",
          f"order status {sale['Order']['Status']}, expected {before['Order']['Status']}")
    lines_now = [_line_key(line) for line in sale["Order"].get("Lines") or []]
    lines_then = [_line_key(line) for line in before["Order"].get("Lines") or []]
    check(lines_now == lines_then, f"{len(lines_then)} order line(s) equal",
          f"order lines differ: {lines_now} != {lines_then}")
    for key in ("TotalBeforeTax", "Tax", "Total"):
        now, then = cents(sale["Order"].get(key)), cents(before["Order"].get(key))
        check(now == then, f"order {key} {then}", f"order {key} is {now}, expected {then}")

    for old in before.get("Invoices") or []:
        if old.get("Status") == "VOIDED":
            continue
        task = invoice_map.get(old["TaskID"].lower(), old["TaskID"])
        new = _find_invoice(sale, task)
        label = f"invoice {old.get('InvoiceNumber')}"
        if new is None:
            problems.append(f"{label} ({task}) is missing")
            continue
        if new.get("InvoiceNumber") != old.get("InvoiceNumber"):
            warnings.append(f"{label} was re-created as {new.get('InvoiceNumber')}")
        check(new.get("Status") == old.get("Status"), f"{label} status {old.get('Status')}",
              f"{label} status {new.get('Status')}, expected {old.get('Status')}")
        for key in ("TotalBeforeTax", "Tax", "Total", "Paid"):
            now, then = cents(new.get(key)), cents(old.get(key))
            check(now == then, f"{label} {key} {then}", f"{label} {key} is {now}, expected {then}")
        for key in ("InvoiceDate", "InvoiceDueDate"):
            check(_day(new.get(key)) == _day(old.get(key)), f"{label} {key} {_day(old.get(key))}",
                  f"{label} {key} is {_day(new.get(key))}, expected {_day(old.get(key))}")
        same_lines = [_line_key(x) for x in new.get("Lines") or []] == [_line_key(x) for x in old.get("Lines") or []]
        check(same_lines, f"{label} lines equal", f"{label} lines differ")

    expected = Counter(payment_signature(p, invoice_map.get(str(p["TaskID"]).lower())) for p in snapshot["payments"])
    found = Counter(payment_signature(p) for p in payments)
    check(found == expected, f"{sum(expected.values())} payment(s) equal (amount, date, account, reference, rate)",
          f"payments differ: missing {sorted((expected - found).elements())}, "
          f"unexpected {sorted((found - expected).elements())}")
    total_then = sum((cents(p.get("Amount")) for p in snapshot["payments"]), Decimal(0))
    total_now = sum((cents(p.get("Amount")) for p in payments), Decimal(0))
    check(total_now == total_then, f"payment sum {total_then}", f"payment sum is {total_now}, expected {total_then}")

    for key in ("CombinedInvoiceStatus", "CombinedPaymentStatus"):
        check(sale.get(key) == before.get(key), f"{key} {before.get(key)}",
              f"{key} is {sale.get(key)}, expected {before.get(key)}")
    if sale.get("Status") != before.get("Status"):
        if {sale.get("Status"), before.get("Status")} == {"ORDERED", "BACKORDERED"}:
            warnings.append(f"sale status is {sale.get('Status')} at {target_location} "
                            f"(was {before.get('Status')}): stock differs there")
        else:
            problems.append(f"sale status is {sale.get('Status')}, expected {before.get('Status')}")
    else:
        checks.append(f"sale status {before.get('Status')}")
    return problems, checks, warnings


# ---------------------------------------------------------------- the journal


def ensure_relocation_table(conn: psycopg.Connection) -> None:
    """The journal is part of the platform's schema (gp_pipelines/schema/automation.py): make sure it is current."""
    ensure_automation_schema(conn)


def _journal_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RELOCATIONS_TABLE,)).fetchone()[0]


def _open_journal(conn: psycopg.Connection, instance: str, sale_key: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM {RELOCATIONS_TABLE} WHERE instance = %s AND sale_id = %s "
                           "AND state <> 'done' ORDER BY started_at LIMIT 1", (instance, sale_key)).fetchone()


def _done_journal(conn: psycopg.Connection, instance: str, sale_key: str, target: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM {RELOCATIONS_TABLE} WHERE instance = %s AND sale_id = %s "
                           "AND target_location = %s AND state = 'done'", (instance, sale_key, target)).fetchone()


class _Journal:
    """One row of `automation.relocations`; every write commits at once (the connection is autocommit)."""

    def __init__(self, conn: psycopg.Connection, row: Mapping[str, Any]) -> None:
        self.conn = conn
        self.key = (row["instance"], row["sale_id"], row["target_location"])
        self.snapshot: dict[str, Any] = row["snapshot"]
        self.steps_done: list[str] = list(row["steps_done"])
        self.details: dict[str, Any] = dict(row["details"] or {})

    def _update(self, assignments: str, values: Sequence[Any]) -> None:
        self.conn.execute(f"UPDATE {RELOCATIONS_TABLE} SET {assignments}, updated_at = now() "
                          "WHERE instance = %s AND sale_id = %s AND target_location = %s", (*values, *self.key))

    def step_done(self, step: str, detail: Mapping[str, Any]) -> None:
        self.steps_done.append(step)
        self.details[step] = dict(detail)
        self._update("steps_done = array_append(steps_done, %s), details = details || %s, last_error = NULL",
                     (step, Jsonb({step: dict(detail)}, dumps=dumps_json)))

    def record(self, step: str, detail: Mapping[str, Any]) -> None:
        """Progress inside a step (e.g. each payment re-added), kept even if the step fails later."""
        self.details[step] = {**self.details.get(step, {}), **detail}
        self._update("details = details || %s", (Jsonb({step: self.details[step]}, dumps=dumps_json),))

    def failed(self, message: str) -> None:
        self._update("state = 'failed', last_error = %s", (message,))

    def finished(self) -> None:
        self._update("state = 'done', finished_at = now()", ())


# ---------------------------------------------------------------- reading Cin7 Core


def _read_sale(client: Cin7Client, sale_id: str) -> dict[str, Any]:
    sale = client.get("sale", {"ID": sale_id})
    if not isinstance(sale, dict) or "Order" not in sale:
        raise RelocationError(f"sale {sale_id}: Cin7 Core answered without a sale document")
    return sale


def _read_payments(client: Cin7Client, sale_id: str, *, every_type: bool = False) -> list[dict[str, Any]]:
    """The sale's invoice payments (`every_type`: prepayments and refunds too)."""
    rows = client.get("sale/payment", {"SaleID": sale_id}) or []
    if not isinstance(rows, list):
        raise RelocationError(f"sale {sale_id}: sale/payment did not answer with a list")
    return [row for row in rows if every_type or str(row.get("Type") or "PAYMENT").upper() == "PAYMENT"]


def _resolve_location(client: Cin7Client, wanted: str) -> dict[str, Any]:
    key = wanted.strip().lower()
    known: list[dict[str, Any]] = [row for page in client.paginate("ref/location", "LocationList") for row in page]
    found = next((row for row in known if key in (str(row.get("ID", "")).lower(), str(row["Name"]).lower())), None)
    if found is None:
        names = ", ".join(sorted(row["Name"] for row in known if not row.get("IsDeprecated")))
        raise RelocationError(f"location {wanted!r} not found in Cin7 Core (known: {names})")
    if found.get("IsDeprecated"):
        raise RelocationError(f"location {found['Name']!r} is deprecated")
    return found


def _shortfalls(client: Cin7Client, sale: Mapping[str, Any], location: str) -> list[Shortfall]:
    needed: dict[str, float] = {}
    skus: dict[str, str] = {}
    for line in sale["Order"].get("Lines") or []:
        needed[line["ProductID"]] = needed.get(line["ProductID"], 0.0) + float(line.get("Quantity") or 0)
        skus[line["ProductID"]] = line.get("SKU", "")
    out = []
    for product_id, quantity in needed.items():
        body = client.get("ref/productavailability", {"ID": product_id, "Location": location, "Limit": 1000})
        rows = [r for r in (body or {}).get("ProductAvailabilityList") or []
                if str(r.get("Location", "")).lower() == location.lower()]
        available = sum(float(r.get("Available") or 0) for r in rows)
        if available < quantity - 1e-9:
            out.append(Shortfall(skus[product_id], product_id, quantity, available))
    return out


# ---------------------------------------------------------------- planning


def _refusals(sale: Mapping[str, Any]) -> list[str]:
    problems = []
    if sale.get("Status") == "VOIDED":
        problems.append("the sale is VOIDED")
    if sale.get("Status") == "CREDITED" or any(c.get("Status") != "VOIDED" for c in sale.get("CreditNotes") or []):
        problems.append("the sale has a credit note")
    for task in sale.get("Fulfilments") or []:
        if task.get("FulFilmentStatus") == "VOIDED":
            continue
        number = task.get("FulfillmentNumber", "?")
        if task["Ship"].get("Status") in SHIPPED:
            problems.append(f"fulfilment {number} is shipped (Ship {task['Ship']['Status']})")
        elif task["Pick"].get("Status") == "AUTHORISED" or task["Pack"].get("Status") == "AUTHORISED":
            problems.append(f"fulfilment {number} is picked at {sale.get('Location')} (undo the fulfilment first)")
    if sale["Order"].get("Status") not in ("AUTHORISED", "DRAFT", "NOT AVAILABLE"):
        problems.append(f"the order is {sale['Order'].get('Status')}")
    return problems


def _plan_steps(sale: Mapping[str, Any], payments: Sequence[Mapping[str, Any]]) -> list[str]:
    if sale["Order"].get("Status") != "AUTHORISED":
        return ["set_location", "verify"]  # nothing holds stock yet: the header may change as it is
    steps = []
    if payments:
        steps.append("remove_payments")
    if _live_invoices(sale):
        steps.append("undo_invoices")
    steps += ["undo_sale", "set_location", "authorise_order"]
    if _live_invoices(sale):
        steps.append("authorise_invoices")
    if payments:
        steps.append("add_payments")
    return [*steps, "verify"]


def _step_notes(sale: Mapping[str, Any], payments: Sequence[Mapping[str, Any]], target: str) -> dict[str, str]:
    paid = sum((cents(p.get("Amount")) for p in payments), Decimal(0))
    invoices = ", ".join(f"{i.get('InvoiceNumber')} ({i.get('Status')} {cents(i.get('Total'))})"
                         for i in _live_invoices(sale))
    return {
        "remove_payments": f"delete {len(payments)} payment(s) totalling {paid}",
        "undo_invoices": f"undo {invoices} (back to DRAFT)",
        "undo_sale": "undo the sale: the order goes back to DRAFT and its stock is released",
        "set_location": f"PUT sale Location = {target}",
        "authorise_order": f"re-authorise the order with its {len(sale['Order'].get('Lines') or [])} line(s) "
                           f"(total {cents(sale['Order'].get('Total'))}), allocating at {target}",
        "authorise_invoices": f"re-authorise {invoices} with the same lines and dates",
        "add_payments": f"re-add {len(payments)} payment(s) totalling {paid} (same dates, accounts, references, "
                        "rates)",
        "verify": "compare the sale with the snapshot to the cent",
    }


def _build_plan(instance: str, sale: Mapping[str, Any], payments: Sequence[Mapping[str, Any]],
                location: Mapping[str, Any], shortfalls: list[Shortfall]) -> RelocationPlan:
    target = location["Name"]
    plan = RelocationPlan(instance, sale["ID"], sale["Order"].get("SaleOrderNumber", ""), sale.get("Location", ""),
                          target, location["ID"], _plan_steps(sale, payments),
                          step_notes=_step_notes(sale, payments, target), shortfalls=shortfalls)
    plan.validations = ["sale exists", f"status {sale.get('Status')} (not VOIDED or CREDITED)",
                        "nothing shipped or picked", f"location {target} exists and differs from "
                        f"{sale.get('Location')}"]
    if not shortfalls:
        plan.validations.append(f"every line is in stock at {target}")
    else:
        plan.warnings.append(f"{len(shortfalls)} line(s) short at {target}: the order will be BACKORDERED there")
    for task in sale.get("Fulfilments") or []:
        if task.get("FulFilmentStatus") != "VOIDED" and task["Pick"].get("Lines"):
            plan.warnings.append(f"fulfilment {task.get('FulfillmentNumber')} has a DRAFT pick naming "
                                 f"{sale.get('Location')}: re-pick it at {target}")
    return plan


def plan_relocation(client: Cin7Client, instance: str, sale_id: str, location: str, *,
                    require_stock: bool = False) -> tuple[RelocationPlan, dict[str, Any]]:
    """Validate a relocation and plan it (read-only): the plan and the snapshot it was made from.

    Raises `RelocationError` naming what is wrong when the relocation must be refused."""
    if not sale_id.strip() or not location.strip():
        raise RelocationError("a relocation needs a sale id and a target location")
    try:
        sale = _read_sale(client, sale_id.strip())
    except Cin7RequestError as exc:
        raise RelocationError(f"sale {sale_id} not found in instance {instance}: {exc}") from exc
    problems = _refusals(sale)
    if problems:
        raise RelocationError(f"sale {sale['Order'].get('SaleOrderNumber')} ({sale['ID']}) of {instance} cannot be "
                              f"relocated: {'; '.join(problems)}")
    target = _resolve_location(client, location)
    if target["Name"] == sale.get("Location"):
        raise AlreadyAtLocationError(f"sale {sale['Order'].get('SaleOrderNumber')} ({sale['ID']}) is already at "
                                     f"{target['Name']}", target["Name"])
    every_payment = _read_payments(client, sale["ID"], every_type=True)
    payments = [p for p in every_payment if str(p.get("Type") or "PAYMENT").upper() == "PAYMENT"]
    if len(payments) != len(every_payment):
        # Prepayments sit on the order, not on an invoice: re-adding them faithfully is not supported.
        raise RelocationError(f"sale {sale['Order'].get('SaleOrderNumber')} ({sale['ID']}) has prepayments or "
                              "refunds; relocate it by hand")
    shortfalls = _shortfalls(client, sale, target["Name"])
    if shortfalls and require_stock:
        short = "; ".join(f"{s.sku} needs {s.needed:g}, available {s.available:g}" for s in shortfalls)
        raise RelocationError(f"{target['Name']} cannot cover sale {sale['Order'].get('SaleOrderNumber')}: {short}")
    plan = _build_plan(instance, sale, payments, target, shortfalls)
    return plan, {"sale": sale, "payments": payments}


# ---------------------------------------------------------------- the steps


class _Run:
    """The steps of one relocation, each re-reading Cin7 Core before it acts."""

    def __init__(self, client: Cin7Client, journal: _Journal, target: str) -> None:
        self.client = client
        self.journal = journal
        self.target = target
        self.snapshot = journal.snapshot
        self.sale_id = self.snapshot["sale"]["ID"]

    def sale(self) -> dict[str, Any]:
        return _read_sale(self.client, self.sale_id)

    def payments(self) -> list[dict[str, Any]]:
        return _read_payments(self.client, self.sale_id)

    def ensure(self, act: Callable[[], Any], landed: Callable[[], bool]) -> None:
        """Act; a call that failed but whose effect is there (a retried write answering "already done") is fine."""
        try:
            act()
        except Cin7Error:
            if not landed():
                raise

    def invoice_map(self) -> dict[str, str]:
        """Snapshot invoice TaskID (lower) -> the TaskID it has now (differs only for a re-created invoice)."""
        return dict(self.journal.details.get("authorise_invoices", {}).get("invoice_map", {}))

    # -- unwinding

    def remove_payments(self) -> dict[str, Any]:
        ours = {str(p["ID"]).lower() for p in self.snapshot["payments"]}
        removed = []
        for payment in self.payments():
            payment_id = str(payment["ID"])
            if payment_id.lower() not in ours:
                raise RelocationError(f"payment {payment_id} ({payment.get('Amount')}) is not in the snapshot: "
                                      "someone added it during the relocation; remove or keep it by hand")
            self.ensure(lambda pid=payment_id: self.client.delete("sale/payment", {"ID": pid}),
                        lambda pid=payment_id: all(str(p["ID"]) != pid for p in self.payments()))
            removed.append(payment_id)
        return {"removed": removed}

    def undo_invoices(self) -> dict[str, Any]:
        ours = {i["TaskID"].lower() for i in _live_invoices(self.snapshot["sale"])}
        undone = []
        for invoice in _live_invoices(self.sale()):
            task_id = invoice["TaskID"]
            if task_id.lower() not in ours:
                continue
            self.ensure(lambda t=task_id: self.client.delete("sale/invoice", {"TaskID": t, "Void": False}),
                        lambda t=task_id: (_find_invoice(self.sale(), t) or {}).get("Status") == "DRAFT")
            undone.append(invoice.get("InvoiceNumber"))
        return {"undone": undone}

    def undo_sale(self) -> dict[str, Any]:
        if self.sale()["Order"].get("Status") != "AUTHORISED":
            return {"undone": False}
        self.ensure(lambda: self.client.delete("sale", {"ID": self.sale_id, "Void": False}),
                    lambda: self.sale()["Order"].get("Status") != "AUTHORISED")
        return {"undone": True}

    # -- moving and winding back up

    def set_location(self) -> dict[str, Any]:
        if self.sale().get("Location") == self.target:
            return {"changed": False}
        self.ensure(lambda: self.client.put("sale", {"ID": self.sale_id, "Location": self.target}),
                    lambda: self.sale().get("Location") == self.target)
        return {"changed": True}

    def authorise_order(self) -> dict[str, Any]:
        if self.sale()["Order"].get("Status") == "AUTHORISED":
            return {"authorised": False}
        order = self.snapshot["sale"]["Order"]
        body = {"SaleID": self.sale_id, "Status": "AUTHORISED", "Memo": order.get("Memo", ""),
                "Lines": [{k: line[k] for k in _ORDER_LINE_FIELDS if k in line} for line in order.get("Lines") or []],
                "AdditionalCharges": order.get("AdditionalCharges") or []}
        self.ensure(lambda: self.client.post("sale/order", body),
                    lambda: self.sale()["Order"].get("Status") == "AUTHORISED")
        return {"authorised": True}

    def authorise_invoices(self) -> dict[str, Any]:
        invoice_map = self.invoice_map()
        authorised = []
        for old in _live_invoices(self.snapshot["sale"]):
            sale = self.sale()
            task_id = invoice_map.get(old["TaskID"].lower(), old["TaskID"])
            current = _find_invoice(sale, task_id)
            body = {"SaleID": self.sale_id, "Status": "AUTHORISED", "InvoiceDate": old.get("InvoiceDate"),
                    "InvoiceDueDate": old.get("InvoiceDueDate"), "Memo": old.get("Memo", ""),
                    "CurrencyConversionRate": old.get("CurrencyConversionRate"),
                    "Lines": [{k: x[k] for k in _INVOICE_LINE_FIELDS if k in x} for x in old.get("Lines") or []],
                    "AdditionalCharges": old.get("AdditionalCharges") or []}
            if current is not None and current.get("Status") in INVOICE_LIVE:
                continue
            if current is not None and current.get("Status") == "DRAFT":
                self.ensure(lambda b={**body, "TaskID": current["TaskID"]}: self.client.post("sale/invoice", b),
                            lambda t=current["TaskID"]: (_find_invoice(self.sale(), t) or {}).get("Status")
                            in INVOICE_LIVE)
            else:
                # Voided or gone (Cin7 may void rather than undo): invoice the same lines and dates again.
                new_task = self._recreate_invoice(old, body, invoice_map)
                invoice_map[old["TaskID"].lower()] = new_task
                self.journal.record("authorise_invoices", {"invoice_map": invoice_map})
            authorised.append(old.get("InvoiceNumber"))
        return {"authorised": authorised, "invoice_map": invoice_map}

    def _recreate_invoice(self, old: Mapping[str, Any], body: Mapping[str, Any], invoice_map: Mapping[str, str]) -> str:
        def twin() -> dict[str, Any] | None:
            # An invoice a crashed earlier attempt created: not in the snapshot, not mapped, same lines and date.
            taken = {i["TaskID"].lower() for i in self.snapshot["sale"].get("Invoices") or []}
            taken |= {v.lower() for v in invoice_map.values()}
            lines = [_line_key(x) for x in old.get("Lines") or []]
            return next((i for i in self.sale().get("Invoices") or []
                         if i["TaskID"].lower() not in taken and i.get("Status") != "VOIDED"
                         and _day(i.get("InvoiceDate")) == _day(old.get("InvoiceDate"))
                         and [_line_key(x) for x in i.get("Lines") or []] == lines), None)

        found = twin()
        if found is None:
            self.ensure(lambda: self.client.post("sale/invoice", dict(body)), lambda: twin() is not None)
            found = twin()
        if found is None:
            raise RelocationError(f"invoice {old.get('InvoiceNumber')} could not be re-created")
        if found.get("Status") == "DRAFT":
            self.client.post("sale/invoice", {**body, "TaskID": found["TaskID"]})
        return found["TaskID"]

    def add_payments(self) -> dict[str, Any]:
        invoice_map = self.invoice_map()

        def task_of(payment: Mapping[str, Any]) -> str:
            return invoice_map.get(str(payment["TaskID"]).lower(), str(payment["TaskID"]))

        wanted = Counter(payment_signature(p, task_of(p)) for p in self.snapshot["payments"])
        added = list(self.journal.details.get("add_payments", {}).get("added", []))
        for payment in self.snapshot["payments"]:
            signature = payment_signature(payment, task_of(payment))
            there = Counter(payment_signature(p) for p in self.payments())
            if there[signature] >= wanted[signature]:
                continue  # already re-added (by this run or one before it)
            body = {"SaleID": self.sale_id, "TaskID": task_of(payment), "Type": "PAYMENT",
                    "Amount": payment["Amount"], "DatePaid": payment.get("DatePaid"),
                    "Account": payment.get("Account"), "Reference": payment.get("Reference"),
                    "CurrencyRate": payment.get("CurrencyRate")}
            count = there[signature]
            self.ensure(lambda b=body: self.client.post("sale/payment", b),
                        lambda s=signature, c=count: Counter(payment_signature(p) for p in self.payments())[s] > c)
            added.append(str(payment["ID"]))
            self.journal.record("add_payments", {"added": added})
        removed = self._remove_duplicates(wanted)
        return {"added": added, "duplicates_removed": removed}

    def _remove_duplicates(self, wanted: Counter[tuple[str, ...]]) -> list[str]:
        """A write the client retried after a lost answer can land twice: keep exactly the snapshot's count."""
        seen: Counter[tuple[str, ...]] = Counter()
        removed = []
        for payment in self.payments():
            signature = payment_signature(payment)
            seen[signature] += 1
            if seen[signature] > wanted[signature] and wanted[signature] > 0:
                self.client.delete("sale/payment", {"ID": payment["ID"]})
                removed.append(str(payment["ID"]))
        return removed

    def verify(self) -> dict[str, Any]:
        problems, checks, warnings = verify_relocation(self.snapshot, self.sale(), self.payments(), self.target,
                                                       self.invoice_map())
        if problems:
            raise RelocationError("the relocated sale differs from its snapshot: " + "; ".join(problems))
        return {"checks": checks, "warnings": warnings}


# ---------------------------------------------------------------- the entry point


def relocate_sale(
    client: Cin7Client,
    conn: psycopg.Connection,
    instance: str,
    sale_id: str,
    location: str,
    *,
    dry_run: bool = False,
    require_stock: bool = False,
    lock_wait_seconds: float | None = 0,
    on_step: Callable[[str], None] | None = None,
    actor: str | None = None,
) -> RelocationResult:
    """Move sale `sale_id` of `instance` to `location` (a name or ID), or resume an unfinished move of it.

    `conn` must be in autocommit mode: it holds the order lock (waiting up to `lock_wait_seconds`; None waits
    as long as it takes) and every journal write commits at once. `dry_run` validates and returns the plan
    without changing anything. `on_step(step)` is called after each step is journaled (tests inject crashes
    there). Raises `RelocationError` (refused), `RelocationLockedError`, or `RelocationStepError`.
    """
    if not conn.autocommit:
        raise ValueError("relocate_sale needs a connection with autocommit=True (it holds a session lock)")
    sale_key = sale_id.strip().lower()
    calls_before = client.stats.calls
    if dry_run:
        open_row = _open_journal(conn, instance, sale_key) if _journal_exists(conn) else None
        if open_row is not None:
            _require_same_target(open_row, location)
            plan = _plan_from_journal(open_row, instance)
        else:
            plan, _ = plan_relocation(client, instance, sale_id, location, require_stock=require_stock)
        return RelocationResult(plan, "dry_run", api_calls=client.stats.calls - calls_before)
    with order_lock(conn, instance, sale_key, wait_seconds=lock_wait_seconds) as held:
        if not held:
            raise RelocationLockedError(f"order {sale_id} of {instance} is being worked on by another worker "
                                        f"(lock {order_lock_name(instance, sale_key)!r}); try again later")
        ensure_relocation_table(conn)
        result = _relocate_locked(client, conn, instance, sale_key, location, require_stock, on_step, actor)
    result.api_calls = client.stats.calls - calls_before
    return result


def _require_same_target(open_row: Mapping[str, Any], location: str) -> None:
    """A half-done relocation must be finished first: the sale is unwound and only its journal can wind it up."""
    wanted = location.strip().lower()
    if wanted not in (open_row["target_location"].lower(), open_row["target_location_id"].lower()):
        raise RelocationError(
            f"sale {open_row['order_number']} ({open_row['sale_id']}) has an unfinished relocation to "
            f"{open_row['target_location']!r} (done: {', '.join(open_row['steps_done']) or 'nothing'}); run that "
            f"relocation again to finish it before moving the sale to {location!r}")


def _plan_from_journal(row: Mapping[str, Any], instance: str, resuming: bool = True) -> RelocationPlan:
    snapshot = row["snapshot"]
    sale, payments = snapshot["sale"], snapshot["payments"]
    plan = RelocationPlan(instance, sale["ID"], row["order_number"], row["source_location"], row["target_location"],
                          row["target_location_id"], list(row["plan_steps"]), list(row["steps_done"]),
                          _step_notes(sale, payments, row["target_location"]), resuming=resuming)
    plan.validations = [("validated and snapshotted when the relocation started" if resuming
                         else f"relocated already (finished {row['finished_at']:%Y-%m-%d %H:%M} UTC)")]
    if row.get("last_error"):
        plan.warnings.append(f"the last run stopped with: {row['last_error']}")
    return plan


def _relocate_locked(client: Cin7Client, conn: psycopg.Connection, instance: str, sale_key: str, location: str,
                     require_stock: bool, on_step: Callable[[str], None] | None, actor: str | None,
                     ) -> RelocationResult:
    open_row = _open_journal(conn, instance, sale_key)
    if open_row is not None:
        _require_same_target(open_row, location)
        plan = _plan_from_journal(open_row, instance)
        conn.execute(f"UPDATE {RELOCATIONS_TABLE} SET state = 'running', runs = runs + 1, updated_at = now() "
                     "WHERE instance = %s AND sale_id = %s AND target_location = %s",
                     (instance, sale_key, open_row["target_location"]))
        journal = _Journal(conn, open_row)
        outcome = "resumed_and_relocated"
    else:
        try:
            plan, snapshot = plan_relocation(client, instance, sale_key, location, require_stock=require_stock)
        except AlreadyAtLocationError as exc:
            done = _done_journal(conn, instance, sale_key, exc.location)
            if done is None:
                raise
            return RelocationResult(_plan_from_journal(done, instance, resuming=False), "already_relocated")
        journal = _start_journal(conn, instance, sale_key, plan, snapshot)
        outcome = "relocated"
    subject = {"instance": instance, "subject": plan.sale_id, "actor": actor}
    record_audit(conn, "relocation.started" if outcome == "relocated" else "relocation.resumed", **subject,
                 detail={"to": plan.target_location, "from": plan.source_location, "steps": plan.remaining})
    result = RelocationResult(plan, outcome)
    run = _Run(client, journal, plan.target_location)
    for step in plan.remaining:
        try:
            detail = getattr(run, step)()
        except Exception as exc:
            left = plan.steps[plan.steps.index(step):]
            message = (f"relocation of sale {plan.order_number} ({plan.sale_id}) in {instance} to "
                       f"{plan.target_location} stopped at step '{step}': {exc}. Done: "
                       f"{', '.join(journal.steps_done) or 'nothing'}. Left to do: {', '.join(left)}. The journal "
                       f"{RELOCATIONS_TABLE} keeps the snapshot; fix the cause and run the same relocation again "
                       "to resume.")
            journal.failed(message)
            record_audit(conn, "relocation.failed", **subject, detail={"step": step, "error": str(exc)})
            raise RelocationStepError(message, step, journal.steps_done, left) from exc
        journal.step_done(step, detail)
        plan.steps_done.append(step)
        result.steps_run.append(step)
        _log.info("relocation %s/%s -> %s: %s done", instance, plan.sale_id, plan.target_location, step)
        if on_step is not None:
            on_step(step)
    journal.finished()
    verified = journal.details.get("verify", {})
    result.checks = list(verified.get("checks", []))
    result.warnings = [*plan.warnings, *verified.get("warnings", [])]
    record_audit(conn, "relocation.done", **subject, detail={"to": plan.target_location, "steps": result.steps_run})
    return result


def _start_journal(conn: psycopg.Connection, instance: str, sale_key: str, plan: RelocationPlan,
                   snapshot: Mapping[str, Any]) -> _Journal:
    """Write the snapshot before the first change. A finished row for the same target (the sale went there
    before and was moved away since) starts over."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"""INSERT INTO {RELOCATIONS_TABLE} (instance, sale_id, target_location, target_location_id,
                    source_location, order_number, state, plan_steps, snapshot)
                VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s)
                ON CONFLICT (instance, sale_id, target_location) DO UPDATE SET
                    source_location = EXCLUDED.source_location, order_number = EXCLUDED.order_number,
                    state = 'running', plan_steps = EXCLUDED.plan_steps, steps_done = '{{}}',
                    snapshot = EXCLUDED.snapshot, details = '{{}}'::jsonb, runs = {RELOCATIONS_TABLE}.runs + 1,
                    last_error = NULL, started_at = now(), updated_at = now(), finished_at = NULL
                RETURNING *""",
            (instance, sale_key, plan.target_location, plan.target_location_id, plan.source_location,
             plan.order_number, plan.steps, Jsonb(dict(snapshot), dumps=dumps_json)),
        ).fetchone()
    return _Journal(conn, row)
