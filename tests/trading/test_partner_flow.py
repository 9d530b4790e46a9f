"""A PO played through against the sandboxes: the retailer sends an 850, Cin7 Core gets the sale (once), and
every 855, 856, 810 and 846 we build passes the retailer's strict intake; what is wrong is rejected with a 997
that names it."""

from __future__ import annotations

import io
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gp_pipelines.automation import trading
from gp_pipelines.automation.exchange import envelope_for
from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.ack import functional_acks
from gp_pipelines.edi.models import FunctionalAck, InventoryAdvice, Invoice, InvoiceLine, PurchaseOrder, ShipNotice
from gp_pipelines.edi.writer import read_documents
from gp_pipelines.sandbox.partner import PartnerSandbox, items_from_products
from tests.trading.conftest import GS1_PREFIX, Vendor, get, partner_config, post

LOCATION = "Main Warehouse"


@pytest.fixture(scope="module")
def cin7_data(api: httpx.Client) -> dict[str, Any]:
    products = get(api, "product", "Products")
    stock = get(api, "ref/productavailability", "ProductAvailabilityList")
    available = trading.available_quantities(stock, partner_config(), location=LOCATION)
    # What the retailer carries, ordered by barcode: well stocked products, so the sandbox lets us pick them.
    carried = [p for p in products if available.get(p["ID"], 0) >= 30][:8]
    return {
        "products": products,
        "customers": get(api, "customer", "CustomerList"),
        "stock": stock,
        "available": available,
        "items": items_from_products(carried, "Wholesale"),
        "carried_skus": [p["SKU"] for p in carried],
    }


def receive_po(retailer: PartnerSandbox, vendor: Vendor, **options: Any) -> PurchaseOrder:
    """The retailer sends one 850; we read it and answer its group with a 997, as the inbound pipeline does."""
    (sent,) = retailer.send_purchase_orders(1, vendor.items, **options)
    path = retailer.out_dir / f"850_{sent.po_number}.x12"
    data = path.read_bytes()
    (po,) = read_documents(data)
    acks = [ack for _, ack in functional_acks(io.BytesIO(data))]
    assert [ack.status for ack in acks] == ["A"]
    assert vendor.send(f"997_{po.po_number}.x12", acks).accepted
    return po


def create_sale(api: httpx.Client, draft: trading.SaleDraft) -> dict[str, Any]:
    """What the inbound pipeline does with a draft: one sale per PO (ExternalID), authorised."""
    existing = trading.existing_sale_for_po(get(api, "saleList", "SaleList", ExternalID=draft.po_number),
                                            draft.po_number)  # fmt: skip
    if existing is not None:
        return get(api, "sale", "", ID=existing["SaleID"])
    sale = post(api, "sale", draft.sale)
    post(api, "sale/order", draft.order_body(sale["ID"]))
    return get(api, "sale", "", ID=sale["ID"])


def ship_in_two_boxes(api: httpx.Client, sale: dict[str, Any]) -> dict[str, Any]:
    sale_id = sale["ID"]
    post(api, "sale/fulfilment/pick", {"TaskID": sale_id, "AutoPickMode": "AUTOPICK"})
    boxes = [{"ProductID": line["ProductID"], "Box": "Box 1" if n == 0 else "Box 2"}
             for n, line in enumerate(sale["Order"]["Lines"])]  # fmt: skip
    post(api, "sale/fulfilment/pack", {"TaskID": sale_id, "Status": "AUTHORISED", "Lines": boxes})
    post(
        api,
        "sale/fulfilment/ship",
        {
            "TaskID": sale_id,
            "Status": "AUTHORISED",
            "Lines": [
                {"Carrier": "Sendle", "Box": "Box 1, Box 2", "TrackingNumber": "SNDL4006123456", "IsShipped": True}
            ],
        },
    )
    return get(api, "sale", "", ID=sale_id)


@pytest.fixture
def vendor(retailer: PartnerSandbox, cin7_data: dict[str, Any]) -> Vendor:
    vendor = Vendor(retailer, partner_config(inventory={"skus": cin7_data["carried_skus"]}))
    vendor.items = cin7_data["items"]
    return vendor


def test_a_po_plays_through_to_its_asn_and_invoice(api, cin7_data, retailer, vendor):
    config = vendor.config
    po = receive_po(retailer, vendor, unknown_item=True, lines=2)
    customer = trading.find_customer(cin7_data["customers"], trading.customer_reference(po, config))
    draft = trading.sale_from_purchase_order(po, config, customer, cin7_data["products"],
                                             available=cin7_data["available"])  # fmt: skip
    assert [d.status for d in draft.decisions] == ["accepted", "accepted", "rejected"]

    sale = create_sale(api, draft)
    assert create_sale(api, draft)["ID"] == sale["ID"]  # the same PO twice: one sale
    assert len(get(api, "saleList", "SaleList", ExternalID=po.po_number)) == 1
    assert (sale["ExternalID"], sale["CustomerReference"], sale["Order"]["Status"]) == (po.po_number, po.po_number,
                                                                                        "AUTHORISED")  # fmt: skip
    assert [line["Price"] for line in sale["Order"]["Lines"]] == [float(line.unit_price) for line in po.lines[:2]]

    receipt = vendor.send("855.x12", [trading.build_855(po, draft.decisions, sale["Order"]["SaleOrderNumber"])])
    assert (receipt.set_id, receipt.accepted, receipt.problems) == ("855", True, [])
    assert retailer.book.acknowledged[po.po_number] == "AC"

    sale = ship_in_two_boxes(api, sale)
    task = sale["Fulfilments"][0]
    asn = trading.build_856(sale, task, config, po.po_number, [101, 102], po=po)
    packs = asn.orders[0].packs
    assert [p.sscc for p in packs] == [trading.sscc18(0, GS1_PREFIX, 101), trading.sscc18(0, GS1_PREFIX, 102)]
    assert all(trading.valid_sscc18(p.sscc) for p in packs)
    assert (asn.shipment.carrier_scac, asn.shipment.tracking_number) == ("SNDL", "SNDL4006123456")
    shipped = {item.product_ids["EN"]: item.quantity_shipped for p in packs for item in p.items}
    picked = {p["Barcode"]: Decimal(str(line["Quantity"])) for line in task["Pick"]["Lines"]
              for p in cin7_data["products"] if p["ID"] == line["ProductID"]}  # fmt: skip
    assert shipped == picked
    receipt = vendor.send("856.x12", [asn])
    assert (receipt.set_id, receipt.accepted, receipt.problems) == ("856", True, [])
    assert receipt.ack_file and read_documents((retailer.out_dir / receipt.ack_file).read_bytes())[0].status == "A"

    post(api, "sale/invoice", {"SaleID": sale["ID"], "Status": "AUTHORISED"})
    sale = get(api, "sale", "", ID=sale["ID"])
    cin7_invoice = sale["Invoices"][0]
    invoice = trading.build_810(sale, cin7_invoice, po.po_number, po=po)
    assert invoice.total_amount == Decimal(str(cin7_invoice["Total"])).quantize(Decimal("0.01"))
    assert invoice.computed_total() == invoice.total_amount
    assert any(ac.code == "H850" and ac.amount == Decimal(str(cin7_invoice["Tax"])) for ac in
               invoice.allowances_charges)  # fmt: skip
    receipt = vendor.send("810.x12", [invoice])
    assert (receipt.set_id, receipt.accepted, receipt.problems) == ("810", True, [])

    # The same SSCCs on a second ASN are refused: a label identifies one carton for ever.
    again = vendor.send("856-again.x12", [trading.build_856(sale, task, config, po.po_number, [101, 102], po=po)])
    assert not again.accepted and any("already used" in p or "ships" in p for p in again.problems)


def test_846_quantities_equal_the_cache_less_the_buffer(cin7_data, retailer, vendor):
    retailer.add_items(vendor.items)
    config = partner_config(inventory={**vendor.config.inventory.model_dump(), "safety_buffer": "10%",
                                       "locations": [LOCATION]})  # fmt: skip
    advice = trading.build_846(cin7_data["stock"], config, cin7_data["products"])
    by_sku = {p["SKU"]: p["ID"] for p in cin7_data["products"]}
    expected = {}
    for row in cin7_data["stock"]:
        if row["Location"] == LOCATION:
            expected[row["ID"]] = expected.get(row["ID"], Decimal(0)) + Decimal(str(row["Available"]))
    assert len(advice.items) == len(config.inventory.skus) == len(vendor.items) == 8
    for item in advice.items:
        available = expected.get(by_sku[item.product_ids["VN"]], Decimal(0))
        (offered,) = item.quantities
        assert offered.qualifier == "33"
        assert offered.quantity == max(int(available - available * Decimal("0.1")), 0)
    receipt = vendor.send("846.x12", [advice])
    assert (receipt.set_id, receipt.accepted, receipt.problems) == ("846", True, [])


def test_846_naming_items_the_retailer_does_not_carry_is_rejected(cin7_data, retailer, vendor):
    retailer.add_items(vendor.items)
    advice = trading.build_846(cin7_data["stock"], partner_config(), cin7_data["products"])  # every product
    receipt = vendor.send("846-all.x12", [advice])
    assert not receipt.accepted and any("is not in our catalogue" in p for p in receipt.problems)
    (ack,) = receipt.acks
    assert ack.status == "R" and ack.sets[0].segments[0].segment_id == "LIN"


def test_a_malformed_file_is_rejected_with_a_997_naming_the_problem(api, cin7_data, retailer, vendor):
    po = receive_po(retailer, vendor, lines=1)
    customer = trading.find_customer(cin7_data["customers"], trading.customer_reference(po, vendor.config))
    draft = trading.sale_from_purchase_order(po, vendor.config, customer, cin7_data["products"])
    sale = ship_in_two_boxes(api, create_sale(api, draft))
    text = vendor.text([trading.build_856(sale, sale["Fulfilments"][0], vendor.config, po.po_number, [7], po=po)])

    good_label = trading.sscc18(0, GS1_PREFIX, 7)
    bad_label = good_label[:-1] + str((int(good_label[-1]) + 1) % 10)
    receipt = vendor.deliver("856-bad-label.x12", text.replace(good_label, bad_label))
    assert not receipt.accepted
    assert any("valid GS1 check digit" in problem for problem in receipt.problems), receipt.problems
    (ack,) = read_documents((retailer.out_dir / receipt.ack_file).read_bytes())
    assert isinstance(ack, FunctionalAck) and (ack.functional_id, ack.status) == ("SH", "R")
    (error,) = ack.sets[0].segments
    assert (error.segment_id, error.elements[0].position, error.elements[0].code, error.elements[0].bad_value) == (
        "MAN",
        "2",
        "7",
        bad_label,
    )

    # An envelope that does not add up (SE01) is rejected by the X12 validation itself.
    broken = vendor.text([trading.build_856(sale, sale["Fulfilments"][0], vendor.config, po.po_number, [8], po=po)])
    se = next(line for line in broken.splitlines() if line.startswith("SE*"))
    receipt = vendor.deliver("856-bad-count.x12", broken.replace(se, "SE*99*" + se.split("*")[2]))
    assert not receipt.accepted and any("SE_COUNT_MISMATCH" in problem for problem in receipt.problems)
    assert receipt.acks[0].sets[0].codes == ["4"]  # AK502 4: number of included segments does not match

    # Sent as production to a partner in test, or addressed to someone else: the whole group is refused.
    receipt = vendor.deliver("855-wrong-usage.x12", vendor.text([trading.build_855(po, draft.decisions, "SO")])
                             .replace("*0*T*>~", "*0*P*>~", 1))  # fmt: skip
    assert not receipt.accepted and any("ISA15 usage indicator is 'P'" in p for p in receipt.problems)
    assert (receipt.acks[0].status, receipt.acks[0].group_codes) == ("R", ["1"])

    # Not X12 at all: nothing to acknowledge, the file is still taken out of the inbox and reported.
    receipt = vendor.deliver("notes.txt", b"hello")
    assert not receipt.accepted and receipt.ack_file is None and "not readable as X12" in receipt.problems[0]
    assert sorted(p.name for p in retailer.processed_dir.iterdir())[-1] == "notes.txt"
    assert not any(retailer.in_dir.glob("*.x12"))


def test_the_retailer_checks_business_rules_of_each_set(cin7_data, retailer, vendor):
    po = receive_po(retailer, vendor, lines=2)
    # An 855 for a PO the retailer never sent, and one whose quantities do not add up.
    stranger = PurchaseOrder("PO-NOT-OURS", po.po_date, lines=po.lines)
    draft = trading.sale_from_purchase_order(po, vendor.config, {"Name": "x", "ID": "y"}, cin7_data["products"])
    receipt = vendor.send("855-stranger.x12", [trading.build_855(stranger, draft.decisions, "SO-1")])
    assert not receipt.accepted and any("PO-NOT-OURS is not a purchase order we sent" in p for p in receipt.problems)
    ack = trading.build_855(po, draft.decisions, "SO-1")
    ack.lines[0].statuses[0].quantity += 1
    receipt = vendor.send("855-short.x12", [ack])
    assert not receipt.accepted and any("ACK quantities add up to" in p for p in receipt.problems)

    # An 810 whose TDS01 is a cent off its lines, and one that bills a price the PO did not agree.
    invoice = Invoice("INV-T1", po.po_date, po_number=po.po_number, lines=[], total_amount=Decimal("0.01"))
    receipt = vendor.send("810-cent.x12", [invoice])
    assert not receipt.accepted and any("TDS01 says 0.01 but" in p for p in receipt.problems)
    line = po.lines[0]
    dear = Invoice(
        "INV-T2",
        po.po_date,
        po_number=po.po_number,
        total_amount=line.quantity * (line.unit_price + 1),
        lines=[InvoiceLine(line.line_number, line.quantity, "EA", line.unit_price + 1, line.product_ids)],
    )
    receipt = vendor.send("810-price.x12", [dear])
    assert not receipt.accepted and any("bills" in p and "agreed" in p for p in receipt.problems)

    # A 997 from us for a group the retailer never sent.
    stray = FunctionalAck("PO", "999", "A", 1, 1, 1)
    receipt = vendor.send("997-stray.x12", [stray])
    assert not receipt.accepted and receipt.ack_file is None and "never sent" in receipt.problems[0]
    assert isinstance(receipt.documents[0], FunctionalAck)


def test_background_polling(cin7_data, retailer, vendor):
    po = receive_po(retailer, vendor, lines=1)
    draft = trading.sale_from_purchase_order(po, vendor.config, {"Name": "x", "ID": "y"}, cin7_data["products"])
    with retailer.start(interval_seconds=0.05):
        (retailer.in_dir / "855.x12").write_text(vendor.text([trading.build_855(po, draft.decisions, "SO-9")]))
        deadline = time.monotonic() + 5
        while len(retailer.received()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [(r.set_id, r.accepted) for r in retailer.received()] == [("997", True), ("855", True)]


def test_outbound_types_are_the_models_the_writer_knows():
    assert {ShipNotice.SET_ID, Invoice.SET_ID, InventoryAdvice.SET_ID} == {"856", "810", "846"}


def test_an_interchange_sent_twice_is_refused_the_second_time(cin7_data, retailer, vendor):
    po = receive_po(retailer, vendor, lines=1)
    draft = trading.sale_from_purchase_order(po, vendor.config, {"Name": "x", "ID": "y"}, cin7_data["products"])
    text = vendor.text([trading.build_855(po, draft.decisions, "SO-5")])
    assert vendor.deliver("855-first.x12", text).accepted
    again = vendor.deliver("855-again.x12", text)
    assert not again.accepted
    assert any("interchange control number" in p and "duplicate" in p for p in again.problems), again.problems
    assert again.acks[0].status == "R"


def test_the_sandbox_describes_its_own_partner_entry(retailer):
    entry = retailer.partner_entry("retail", "au", customer="Wattle Co-op 8", gs1_company_prefix=GS1_PREFIX)
    config = PartnerConfig(**entry)
    envelope = envelope_for(config)
    assert (envelope.sender_id, envelope.receiver_id, envelope.usage) == ("GPPIPELINES", "RETAILSBX", "T")
    assert config.transport.root == str(retailer.root)
