"""810 Invoice: lines with their allowances/charges, TDS totals (implied decimals), summary SAC loop."""

from __future__ import annotations

from gp_pipelines.edi.mapping.common import (
    PartyReader,
    Row,
    allowance_charge_row,
    decimal_or_zero,
    description_row,
    format_decimal,
    from_implied,
    pair_values,
    pairs,
    party_rows,
    read_allowance_charge,
    read_terms,
    terms_row,
    to_implied,
)
from gp_pipelines.edi.models import Invoice, InvoiceLine
from gp_pipelines.edi.reader import Segment


def read_invoice(segments: list[Segment]) -> Invoice:
    invoice = Invoice(invoice_number="", invoice_date="")
    party_reader = PartyReader()
    after_totals = False
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, invoice.parties if not invoice.lines else None):
            continue
        if tag == "BIG":
            invoice.invoice_date, invoice.invoice_number, invoice.po_date, invoice.po_number = (
                segment[1], segment[2], segment[3], segment[4]
            )  # fmt: skip
        elif tag == "ITD" and not invoice.lines:
            invoice.terms.append(read_terms(segment))
        elif tag == "IT1":
            invoice.lines.append(
                InvoiceLine(
                    segment[1], decimal_or_zero(segment[2]), segment[3], decimal_or_zero(segment[4]), pairs(segment, 6)
                )
            )
        elif tag == "PID" and invoice.lines and not after_totals:
            invoice.lines[-1].description = segment[5]
        elif tag == "SAC":
            item = read_allowance_charge(segment)
            if after_totals:
                invoice.allowances_charges.append(item)
            elif invoice.lines:
                invoice.lines[-1].allowances_charges.append(item)
        elif tag == "TDS":
            after_totals = True
            invoice.total_amount = from_implied(segment[1]) or decimal_or_zero("")
            invoice.amount_subject_to_discount = from_implied(segment[2])
            invoice.discounted_amount = from_implied(segment[3])
            invoice.terms_discount_amount = from_implied(segment[4])
    return invoice


def write_invoice(invoice: Invoice) -> list[Row]:
    # Order of the 810 spec: BIG, N1-loop, ITD*, IT1-loop (PID, SAC-loop), TDS, summary SAC-loop, CTT.
    rows: list[Row] = [["BIG", invoice.invoice_date, invoice.invoice_number, invoice.po_date, invoice.po_number]]
    rows.extend(party_rows(invoice.parties))
    rows.extend(terms_row(terms) for terms in invoice.terms)
    for line in invoice.lines:
        rows.append(
            [
                "IT1",
                line.line_number,
                format_decimal(line.quantity),
                line.uom,
                format_decimal(line.unit_price),
                "",
                *pair_values(line.product_ids),
            ]
        )
        rows.extend(description_row(line.description))
        rows.extend(allowance_charge_row(item) for item in line.allowances_charges)
    rows.append(
        [
            "TDS",
            to_implied(invoice.total_amount),
            to_implied(invoice.amount_subject_to_discount),
            to_implied(invoice.discounted_amount),
            to_implied(invoice.terms_discount_amount),
        ]
    )
    rows.extend(allowance_charge_row(item) for item in invoice.allowances_charges)
    rows.append(["CTT", str(len(invoice.lines))])
    return rows
