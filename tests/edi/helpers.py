"""Builders for the project's own X12 fixtures (generated in code; nothing copied from the sample corpus)."""

from __future__ import annotations

import io

from gp_pipelines.edi.report import parse_report
from gp_pipelines.edi.validator import iter_event_issues, iter_events

ISA_TEMPLATE = [
    "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ", "RECEIVER".ljust(15),
    "240115", "1430", "U", "00401", "000000001", "0", "P", ">",
]  # fmt: skip

PO_BODY = [
    "BEG*00*SA*PO123**20240115",
    "REF*DP*038",
    "DTM*002*20240201",
    "N1*ST*ACME STORE*92*0042",
    "N3*1 MAIN ST",
    "N4*SPRINGFIELD*IL*62701*US",
    "PO1*1*12*EA*9.25*PE*UP*012345678905*VN*AB-1",
    "PID*F****SMALL WIDGET",
    "PO1*2*3*CA*20*PE*VN*CD-2",
    "CTT*2*15",
]

ASN_BODY = [
    "BSN*00*ASN1*20240116*1200*0001",
    "HL*1**S*1",
    "TD1*CTN*2****G*10*LB",
    "TD5**2*UPSN*M",
    "REF*BM*BOL1",
    "DTM*011*20240116",
    "N1*ST*ACME STORE*92*0042",
    "HL*2*1*O*1",
    "PRF*PO123***20240115",
    "HL*3*2*P*1",
    "MAN*GM*00000715670002152360",
    "HL*4*3*I*0",
    "LIN*1*UP*012345678905",
    "SN1**12*EA",
    "HL*5*2*P*1",
    "MAN*GM*00000715670002152377",
    "HL*6*5*I*0",
    "LIN*2*VN*CD-2",
    "SN1**3*CA",
    "CTT*6*15",
]

SHIPPING_ORDER_BODY = [
    "W05*N*SO-1*PO123",
    "N1*ST*ACME STORE*92*0042",
    "N4*SPRINGFIELD*IL*62701",
    "G62*10*20240120",
    "W66*PP*M***UPS GROUND*****UPSN",
    "LX*1",
    "W01*12*EA*012345678905*VN*AB-1",
    "G69*SMALL WIDGET",
    "LX*2",
    "W01*3*CA**VN*CD-2",
    "W76*15",
]

SHIPPING_ADVICE_BODY = [
    "W06*F*SO-1*20240121*SHIP-9**PO123",
    "N1*ST*ACME STORE*92*0042",
    "W27*M*UPSN*GROUND*PP",
    "LX*1",
    "W12*CC*12*12*0*EA**VN*AB-1",
    "LX*2",
    "W12*CP*3*2*1*CA**VN*CD-2",
    "W03*14*30*LB",
]

INVENTORY_BODY = [
    "BIA*00*SI*INV-1*20240115",
    "N1*WH*MAIN WAREHOUSE*92*WH1",
    "LIN*1*UP*012345678905",
    "QTY*33*100*EA",
    "LIN*2*VN*CD-2",
    "QTY*33*5*CA",
    "QTY*17*7*CA",
    "CTT*2*112",
]

INVOICE_BODY = [
    "BIG*20240120*INV-7*20240115*PO123",
    "N1*RE*VENDOR CO*92*V1",
    "IT1*1*12*EA*9.25**UP*012345678905",
    "IT1*2*3*CA*20**VN*CD-2",
    "TDS*17100",
    "CTT*2",
]

PO_ACK_BODY = [
    "BAK*00*AC*PO123*20240115****20240116",
    "PO1*1*12*EA*9.25*PE*UP*012345678905",
    "ACK*IA*12*EA",
    "PO1*2*3*CA*20*PE*VN*CD-2",
    "ACK*IB*3*CA*068*20240130",
    "CTT*2",
]

FUNCTIONAL_ACK_BODY = [
    "AK1*PO*1",
    "AK2*850*0001",
    "AK5*A",
    "AK9*A*1*1*1",
]

BODIES = {
    "850": ("PO", PO_BODY),
    "855": ("PR", PO_ACK_BODY),
    "856": ("SH", ASN_BODY),
    "846": ("IB", INVENTORY_BODY),
    "810": ("IN", INVOICE_BODY),
    "940": ("OW", SHIPPING_ORDER_BODY),
    "945": ("SW", SHIPPING_ADVICE_BODY),
    "997": ("FA", FUNCTIONAL_ACK_BODY),
}


def isa(element: str = "*", component: str = ">", control: str = "000000001", version: str = "00401",
        isa11: str = "U") -> str:  # fmt: skip
    fields = list(ISA_TEMPLATE)
    fields[11], fields[12], fields[13], fields[16] = isa11, version, control, component
    return element.join(fields)


def interchange(
    groups: list[tuple[str, list[tuple[str, list[str]]]]],
    element: str = "*",
    terminator: str = "~",
    suffix: str = "\n",
    control: str = "000000001",
    version: str = "00401",
    isa11: str = "U",
    component: str = ">",
) -> str:
    """One interchange with exact counts: `groups` = [(GS01, [(ST01, body segments written with '*'), ...])]."""
    lines = [isa(element, component, control, version, isa11)]
    for group_number, (functional_id, sets) in enumerate(groups, start=1):
        lines.append(f"GS*{functional_id}*SENDER*RECEIVER*20240115*1430*{group_number}*X*004010")
        for set_number, (set_id, body) in enumerate(sets, start=1):
            st_control = f"{group_number}{set_number:03d}"
            lines.append(f"ST*{set_id}*{st_control}")
            lines.extend(body)
            lines.append(f"SE*{len(body) + 2}*{st_control}")
        lines.append(f"GE*{len(sets)}*{group_number}")
    lines.append(f"IEA*{len(groups)}*{control}")
    out = []
    for line in lines:
        text = line if line.startswith("ISA") else line.replace("*", element)
        out.append(text + terminator + suffix)
    return "".join(out)


def single(set_id: str, body: list[str] | None = None, **options) -> str:
    functional_id, default_body = BODIES[set_id]
    return interchange([(functional_id, [(set_id, default_body if body is None else body)])], **options)


def issues_of(data: str | bytes) -> list:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return [issue for event in iter_events(io.BytesIO(raw)) for issue in iter_event_issues(event)]


def error_codes(data: str | bytes) -> list[str]:
    return [issue.code for issue in issues_of(data) if issue.is_error]


def report_of(data: str | bytes) -> dict:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return parse_report(io.BytesIO(raw))
