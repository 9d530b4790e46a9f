"""Relocating a sale against the Cin7 sandbox over HTTP, journaled in the embedded PostgreSQL: the happy path,
refusals, a crash and a failed step resumed, payments never doubled, the order lock, the job and the CLI."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gp_pipelines.automation.locks import order_lock
from gp_pipelines.automation.relocate import (
    RELOCATIONS_TABLE,
    AlreadyAtLocationError,
    RelocationError,
    RelocationLockedError,
    RelocationStepError,
    payment_signature,
    relocate_sale,
    verify_relocation,
)
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.sandbox.cin7 import SandboxServer
from tests.cache.helpers import FAST_RETRY, client_for, control, options


class Crash(Exception):
    """Stands for the process dying between two steps."""


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(options(seed=42, rate_limit=100_000)) as started:  # the config caps calls_per_minute
        yield started


@pytest.fixture
def client(server: SandboxServer) -> Iterator[Cin7Client]:
    with client_for(server) as c:
        yield c


@pytest.fixture
def conn(module_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(module_database_url, autocommit=True) as c:
        yield c


# ---------------------------------------------------------------- building sales in the sandbox


def locations(client: Cin7Client) -> tuple[str, str]:
    names = [row["Name"] for row in client.get("ref/location")["LocationList"] if not row["IsDeprecated"]]
    return names[0], names[1]


def available(client: Cin7Client, product_id: str, location: str) -> float:
    rows = client.get("ref/productavailability", {"ID": product_id, "Location": location})["ProductAvailabilityList"]
    return sum(r["Available"] for r in rows)


def products_in_both(client: Cin7Client, source: str, target: str, quantity: float, count: int = 2) -> list[str]:
    active = {p["ID"] for p in client.get("product", {"Limit": 1000})["Products"]}
    free = []
    for location in (source, target):
        rows = client.get("ref/productavailability", {"Location": location, "Limit": 1000})["ProductAvailabilityList"]
        free.append({r["ID"] for r in rows if r["Available"] >= quantity + 5 and r["ID"] in active})
    return sorted(free[0] & free[1])[:count]


def make_sale(client: Cin7Client, *, invoice: bool = True, payments: tuple[float, ...] = (10.0, 5.55),
              quantity: float = 3) -> dict[str, Any]:
    """An authorised sale at the first location with two lines, invoiced and partly paid."""
    source, target = locations(client)
    customer = client.get("customer")["CustomerList"][0]
    sale = client.post("sale", {"CustomerID": customer["ID"], "Location": source})
    lines = [{"ProductID": pid, "Quantity": quantity, "Price": 12.35, "Discount": 5}
             for pid in products_in_both(client, source, target, quantity)]
    client.post("sale/order", {"SaleID": sale["ID"], "Status": "AUTHORISED", "Lines": lines})
    if invoice:
        invoices = client.post("sale/invoice", {"SaleID": sale["ID"], "Status": "AUTHORISED",
                                                "InvoiceDate": "2026-11-18", "InvoiceDueDate": "2026-12-18"})
        task_id = invoices["Invoices"][0]["TaskID"]
        for n, amount in enumerate(payments, 1):
            client.post("sale/payment", {"SaleID": sale["ID"], "TaskID": task_id, "Amount": amount,
                                         "DatePaid": f"2026-11-{18 + n}", "Account": f"11{n:02d}",
                                         "Reference": f"EFT {n}", "CurrencyRate": 1 + n / 100})
    return client.get("sale", {"ID": sale["ID"]})


def payments_of(client: Cin7Client, sale_id: str) -> list[dict[str, Any]]:
    return client.get("sale/payment", {"SaleID": sale_id})


def journal(conn: psycopg.Connection, sale_id: str) -> dict[str, Any] | None:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        exists = cur.execute("SELECT to_regclass(%s) AS t", (RELOCATIONS_TABLE,)).fetchone()["t"]
        if exists is None:
            return None
        return cur.execute(f"SELECT * FROM {RELOCATIONS_TABLE} WHERE sale_id = %s", (sale_id.lower(),)).fetchone()


def assert_restored(client: Cin7Client, before: dict[str, Any], paid_before: list[dict[str, Any]],
                    target: str) -> dict[str, Any]:
    after = client.get("sale", {"ID": before["ID"]})
    paid_after = payments_of(client, before["ID"])
    problems, _, _ = verify_relocation({"sale": before, "payments": paid_before}, after, paid_after, target)
    assert problems == []
    assert Counter(payment_signature(p) for p in paid_after) == Counter(payment_signature(p) for p in paid_before)
    assert after["Location"] == target and after["Order"]["Status"] == "AUTHORISED"
    return after


# ---------------------------------------------------------------- tests


def test_relocates_an_invoiced_partly_paid_sale(client: Cin7Client, conn: psycopg.Connection) -> None:
    source, target = locations(client)
    sale = make_sale(client)
    paid = payments_of(client, sale["ID"])
    product = sale["Order"]["Lines"][0]["ProductID"]
    free_at_target = available(client, product, target)
    assert sale["CombinedPaymentStatus"] == "PARTIALLY PAID" and len(paid) == 2

    result = relocate_sale(client, conn, "au", sale["ID"], target.upper())  # names match case-insensitively
    assert result.outcome == "relocated"
    assert result.steps_run == ["remove_payments", "undo_invoices", "undo_sale", "set_location", "authorise_order",
                                "authorise_invoices", "add_payments", "verify"]
    after = assert_restored(client, sale, paid, target)
    assert sum(p["Amount"] for p in payments_of(client, sale["ID"])) == pytest.approx(15.55)
    assert after["Invoices"][0]["InvoiceNumber"] == sale["Invoices"][0]["InvoiceNumber"]
    assert available(client, product, target) == free_at_target - 3  # now allocated at the target
    row = journal(conn, sale["ID"])
    assert row["state"] == "done" and row["steps_done"] == result.steps_run and row["source_location"] == source
    assert any("payment sum 15.55" in check for check in result.checks)

    again = relocate_sale(client, conn, "au", sale["ID"], target)  # a rerun of a finished relocation
    assert again.outcome == "already_relocated" and len(payments_of(client, sale["ID"])) == 2
    back = relocate_sale(client, conn, "au", sale["ID"], source)  # and it can move back
    assert back.outcome == "relocated"
    assert_restored(client, sale, paid, source)


def test_dry_run_reports_the_plan_and_changes_nothing(client: Cin7Client, conn: psycopg.Connection) -> None:
    _, target = locations(client)
    sale = make_sale(client, quantity=2)
    result = relocate_sale(client, conn, "au", sale["ID"], target, dry_run=True)
    assert result.outcome == "dry_run" and result.steps_run == []
    text = "\n".join(result.describe())
    assert "1. [todo] remove_payments: delete 2 payment(s) totalling 15.55" in text and "8. [todo] verify" in text
    assert f"-> {target}" in text
    assert client.get("sale", {"ID": sale["ID"]}) == sale
    assert journal(conn, sale["ID"]) is None


def test_refuses_shipped_unknown_and_unchanged(client: Cin7Client, conn: psycopg.Connection) -> None:
    source, target = locations(client)
    shipped = make_sale(client, invoice=False)
    client.post("sale/fulfilment/pick", {"TaskID": shipped["ID"], "AutoPickMode": "AUTOPICK"})
    client.post("sale/fulfilment/pack", {"TaskID": shipped["ID"], "Status": "AUTHORISED"})
    client.post("sale/fulfilment/ship", {"TaskID": shipped["ID"], "Status": "AUTHORISED"})
    before = client.get("sale", {"ID": shipped["ID"]})
    with pytest.raises(RelocationError, match=r"fulfilment 1 is shipped \(Ship AUTHORISED\)"):
        relocate_sale(client, conn, "au", shipped["ID"], target)
    assert client.get("sale", {"ID": shipped["ID"]}) == before  # nothing changed
    assert journal(conn, shipped["ID"]) is None

    sale = make_sale(client, payments=())
    with pytest.raises(RelocationError, match=r"location 'Atlantis' not found in Cin7 Core \(known: "):
        relocate_sale(client, conn, "au", sale["ID"], "Atlantis")
    with pytest.raises(AlreadyAtLocationError, match=f"already at {source}"):
        relocate_sale(client, conn, "au", sale["ID"], source)
    with pytest.raises(RelocationError, match="sale nope not found in instance au"):
        relocate_sale(client, conn, "au", "nope", target)
    assert client.get("sale", {"ID": sale["ID"]}) == sale


def test_stock_shortfall_is_reported_and_can_refuse(client: Cin7Client, conn: psycopg.Connection) -> None:
    source, target = locations(client)
    product = products_in_both(client, source, target, 1, count=1)[0]
    wanted = available(client, product, target) + 1  # one more than the target has free
    customer = client.get("customer")["CustomerList"][0]
    sale = client.post("sale", {"CustomerID": customer["ID"], "Location": source})
    client.post("sale/order", {"SaleID": sale["ID"], "Status": "AUTHORISED",
                               "Lines": [{"ProductID": product, "Quantity": wanted, "Price": 2}]})
    plan = relocate_sale(client, conn, "au", sale["ID"], target, dry_run=True).plan
    [shortfall] = plan.shortfalls
    assert (shortfall.product_id, shortfall.needed, shortfall.available) == (product, wanted, wanted - 1)
    assert "short at " + target in "\n".join(plan.describe())
    with pytest.raises(RelocationError, match=f"{target} cannot cover sale .*needs {wanted:g}, available"):
        relocate_sale(client, conn, "au", sale["ID"], target, require_stock=True)
    result = relocate_sale(client, conn, "au", sale["ID"], target)  # allowed: backordered at the target
    assert result.outcome == "relocated" and any("BACKORDERED" in w for w in result.warnings)
    assert client.get("sale", {"ID": sale["ID"]})["Status"] == "BACKORDERED"


def test_draft_order_only_changes_the_header(client: Cin7Client, conn: psycopg.Connection) -> None:
    source, target = locations(client)
    customer = client.get("customer")["CustomerList"][0]
    sale = client.post("sale", {"CustomerID": customer["ID"], "Location": source})
    product = products_in_both(client, source, target, 1, count=1)[0]
    client.post("sale/order", {"SaleID": sale["ID"], "Status": "DRAFT",
                               "Lines": [{"ProductID": product, "Quantity": 1, "Price": 2}]})
    result = relocate_sale(client, conn, "au", sale["ID"], target)
    assert result.steps_run == ["set_location", "verify"]
    after = client.get("sale", {"ID": sale["ID"]})
    assert after["Location"] == target and after["Order"]["Status"] == "DRAFT"


def test_crash_after_undo_then_rerun_completes_and_pays_once(client: Cin7Client, conn: psycopg.Connection) -> None:
    _, target = locations(client)
    sale = make_sale(client)
    paid = payments_of(client, sale["ID"])

    def crash_after_undo(step: str) -> None:
        if step == "undo_sale":
            raise Crash

    with pytest.raises(Crash):
        relocate_sale(client, conn, "au", sale["ID"], target, on_step=crash_after_undo)
    row = journal(conn, sale["ID"])
    assert row["state"] == "running" and row["steps_done"] == ["remove_payments", "undo_invoices", "undo_sale"]
    assert payments_of(client, sale["ID"]) == []

    for dry_run in (True, False):  # not elsewhere while half done
        with pytest.raises(RelocationError, match="unfinished relocation to"):
            relocate_sale(client, conn, "au", sale["ID"], locations(client)[0], dry_run=dry_run)
    plan = relocate_sale(client, conn, "au", sale["ID"], target, dry_run=True).plan
    assert plan.resuming and plan.remaining[0] == "set_location"
    result = relocate_sale(client, conn, "au", sale["ID"], target)
    assert result.outcome == "resumed_and_relocated" and result.steps_run[0] == "set_location"
    assert_restored(client, sale, paid, target)
    assert len(payments_of(client, sale["ID"])) == 2
    assert journal(conn, sale["ID"])["runs"] == 2


def test_payment_added_before_a_crash_is_not_added_again(client: Cin7Client, conn: psycopg.Connection) -> None:
    """The crash hits between "payment posted" and "step journaled", and a retried write even landed twice."""
    _, target = locations(client)
    sale = make_sale(client)
    paid = payments_of(client, sale["ID"])
    first = paid[0]

    def post_then_crash(step: str) -> None:
        if step == "authorise_invoices":
            body = {key: first[key] for key in ("SaleID", "TaskID", "Amount", "DatePaid", "Account", "Reference",
                                                "CurrencyRate")}
            client.post("sale/payment", body)
            client.post("sale/payment", body)
            raise Crash

    with pytest.raises(Crash):
        relocate_sale(client, conn, "au", sale["ID"], target, on_step=post_then_crash)
    assert len(payments_of(client, sale["ID"])) == 2  # the first payment, twice
    result = relocate_sale(client, conn, "au", sale["ID"], target)
    assert result.steps_run == ["add_payments", "verify"]
    assert_restored(client, sale, paid, target)
    assert len(payments_of(client, sale["ID"])) == 2
    detail = journal(conn, sale["ID"])["details"]["add_payments"]
    assert len(detail["duplicates_removed"]) == 1 and detail["added"] == [paid[1]["ID"]]


def test_failed_step_stops_with_a_clear_error_and_resumes(server: SandboxServer, client: Cin7Client,
                                                          conn: psycopg.Connection) -> None:
    _, target = locations(client)
    sale = make_sale(client)
    paid = payments_of(client, sale["ID"])

    def outage_after_undo(step: str) -> None:
        if step == "undo_sale":  # the next step's every attempt meets a 500
            control(server, "faults/next", {"fault": "error500", "count": FAST_RETRY.max_attempts})

    with pytest.raises(RelocationStepError) as caught:
        relocate_sale(client, conn, "au", sale["ID"], target, on_step=outage_after_undo)
    error = caught.value
    assert error.step == "set_location"
    assert error.remaining == ["set_location", "authorise_order", "authorise_invoices", "add_payments", "verify"]
    assert "stopped at step 'set_location'" in str(error) and "Left to do: set_location, authorise_order" in str(error)
    row = journal(conn, sale["ID"])
    assert row["state"] == "failed" and "set_location" in row["last_error"]
    result = relocate_sale(client, conn, "au", sale["ID"], target)
    assert result.outcome == "resumed_and_relocated"
    assert_restored(client, sale, paid, target)


def test_the_order_lock_refuses_or_waits(module_database_url: str, client: Cin7Client,
                                         conn: psycopg.Connection) -> None:
    _, target = locations(client)
    sale = make_sale(client, payments=(3.0,))
    release = threading.Event()
    held = threading.Event()

    def other_worker() -> None:
        with psycopg.connect(module_database_url, autocommit=True) as other, \
                order_lock(other, "au", sale["ID"].lower()) as got:
            assert got
            held.set()
            release.wait(10)

    worker = threading.Thread(target=other_worker)
    worker.start()
    assert held.wait(10)
    with pytest.raises(RelocationLockedError, match="being worked on by another worker"):
        relocate_sale(client, conn, "au", sale["ID"], target)
    assert journal(conn, sale["ID"]) is None and client.get("sale", {"ID": sale["ID"]}) == sale
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    result = relocate_sale(client, conn, "au", sale["ID"], target, lock_wait_seconds=10)
    assert result.outcome == "relocated" and time.monotonic() - started >= 0.25  # it waited for the lock
    worker.join(10)


def test_the_dagster_job_relocates(server: SandboxServer, module_database_url: str, client: Cin7Client) -> None:
    from gp_pipelines.jobs.relocate import relocate_order
    from gp_pipelines.resources.cin7 import Cin7ApplicationKey, Cin7Resource
    from gp_pipelines.resources.database import PostgresResource

    _, target = locations(client)
    sale = make_sale(client, payments=(4.0,))
    inst = next(i for i in server.instances if i.key == "au")
    database = PostgresResource(url=module_database_url)
    cin7 = Cin7Resource(database=database, application_keys=[Cin7ApplicationKey(
        instance="au", account_id=inst.account_id, base_url=server.base_url,
        application_key=inst.application_keys[1], calls_per_minute=100_000)])
    config = {"ops": {"relocate_sale_op": {"config": {"instance": "au", "sale_id": sale["ID"], "location": target}}}}
    result = relocate_order.execute_in_process(run_config=config, resources={"cin7": cin7, "gp_database": database})
    assert result.success and result.output_for_node("relocate_sale_op")["outcome"] == "relocated"
    assert client.get("sale", {"ID": sale["ID"]})["Location"] == target
    failed = relocate_order.execute_in_process(
        run_config={"ops": {"relocate_sale_op": {"config": {"instance": "au", "sale_id": sale["ID"],
                                                            "location": "Atlantis"}}}},
        resources={"cin7": cin7, "gp_database": database}, raise_on_error=False)
    assert not failed.success


def test_cli_dry_run(server: SandboxServer, module_database_url: str, client: Cin7Client, tmp_path,
                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gp_pipelines import cli
    from gp_pipelines.sandbox.local import sandbox_key_environment, write_sandbox_config

    _, target = locations(client)
    sale = make_sale(client, payments=())
    config_path = tmp_path / "gp.yaml"
    write_sandbox_config(config_path, server, 42)
    for name, value in sandbox_key_environment(server.instances).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GP_CONFIG", str(config_path))
    monkeypatch.setenv("GP_DATABASE_URL", module_database_url)
    code = cli.main(["relocate", "--instance", "au", "--sale", sale["ID"], "--location", target, "--dry-run"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "set_location: PUT sale Location = " + target in out.out and "outcome: dry_run" in out.out
    assert client.get("sale", {"ID": sale["ID"]})["Location"] != target
    assert cli.main(["relocate", "--instance", "au", "--sale", "nope", "--location", target]) == 1
    assert "sale nope not found" in capsys.readouterr().err


def test_verify_finds_a_cent_of_difference() -> None:
    line = {"ProductID": "p1", "Quantity": 2, "Price": 5, "Discount": 0, "Tax": 1, "Total": 10}
    invoice = {"TaskID": "t1", "InvoiceNumber": "INV-1", "Status": "AUTHORISED", "InvoiceDate": "2026-11-01T00:00:00",
               "InvoiceDueDate": "2026-12-01T00:00:00", "Lines": [line], "Total": 11, "Tax": 1,
               "TotalBeforeTax": 10, "Paid": 5}
    sale = {"Location": "B", "Status": "INVOICED", "CombinedInvoiceStatus": "INVOICED",
            "CombinedPaymentStatus": "PARTIALLY PAID", "Invoices": [invoice],
            "Order": {"Status": "AUTHORISED", "Lines": [line], "Total": 11, "Tax": 1, "TotalBeforeTax": 10}}
    payment = {"ID": "x", "TaskID": "t1", "Amount": 5, "DatePaid": "2026-11-02T00:00:00", "Account": "1100",
               "Reference": "R", "CurrencyRate": 1}
    snapshot = {"sale": {**sale, "Location": "A"}, "payments": [payment]}
    assert verify_relocation(snapshot, sale, [{**payment, "ID": "y"}], "B")[0] == []
    problems = verify_relocation(snapshot, sale, [{**payment, "Amount": 4.99}], "B")[0]
    assert any("payments differ" in p for p in problems) and any("payment sum is 4.99" in p for p in problems)
    assert verify_relocation(snapshot, {**sale, "Location": "A"}, [payment], "B")[0] == [
        "location is 'A', expected 'B'"]
