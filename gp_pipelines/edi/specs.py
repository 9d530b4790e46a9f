"""The eight 004010 transaction sets as data: segment order, loops, repeats, element rules, totals.

Structures are written in a small notation, one string per set: `TAG` mandatory once, `TAG?` optional,
`TAG*` optional and repeating, `TAG+` mandatory and repeating, `TAG{0,10}` explicit bounds; `[TRIGGER ...]`
is a loop whose first segment starts each iteration, with the same suffixes. Element rules are one string
per segment: `M|O TYPE MIN/MAX [CODE,CODE...]` separated by `;` (`-` skips a position). Partner guides
narrow these down; the base standard is kept permissive where real files disagree with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

UNBOUNDED = 1_000_000_000


@dataclass(frozen=True)
class ElementRule:
    position: int
    required: bool
    data_type: str  # AN, ID, DT, TM, R, N0..N9
    min_length: int
    max_length: int
    codes: frozenset[str] | None = None


@dataclass(frozen=True)
class SegmentNode:
    tag: str
    min_use: int
    max_use: int


@dataclass(frozen=True)
class LoopNode:
    name: str
    min_use: int
    max_use: int
    children: tuple[SegmentNode | LoopNode, ...]

    @property
    def trigger(self) -> str:
        return self.children[0].tag

    @cached_property
    def child_tags(self) -> tuple[str, ...]:
        return tuple(child.trigger if isinstance(child, LoopNode) else child.tag for child in self.children)

    @cached_property
    def positions(self) -> dict[str, tuple[int, ...]]:
        """Child indices by the tag that starts them (a tag may appear at several places)."""
        found: dict[str, list[int]] = {}
        for index, tag in enumerate(self.child_tags):
            found.setdefault(tag, []).append(index)
        return {tag: tuple(indices) for tag, indices in found.items()}

    @cached_property
    def required(self) -> tuple[int, ...]:
        return tuple(index for index, child in enumerate(self.children) if child.min_use > 0)


@dataclass(frozen=True)
class TotalRule:
    """`target` (tag, position) must equal the sum of `sources` (tag, position) over the set."""

    target: tuple[str, int]
    sources: tuple[tuple[str, int], ...]
    code: str = "TOTAL_MISMATCH"


@dataclass(frozen=True)
class SetSpec:
    set_id: str
    functional_id: str
    name: str
    root: LoopNode
    ctt_counts: str | None = None  # CTT01 = number of these segments
    ctt_hash_sources: tuple[tuple[str, int], ...] = ()  # CTT02 = sum of any one of these
    totals: tuple[TotalRule, ...] = ()
    hierarchical: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)


_TOKEN = re.compile(r"\[|\]|[A-Z][A-Z0-9]{1,2}|\?|\*|\+|\{\d+,\d*\}")


def _bounds(tokens: list[str], index: int, default: tuple[int, int]) -> tuple[tuple[int, int], int]:
    if index < len(tokens):
        suffix = tokens[index]
        if suffix == "?":
            return (0, 1), index + 1
        if suffix == "*":
            return (0, UNBOUNDED), index + 1
        if suffix == "+":
            return (1, UNBOUNDED), index + 1
        if suffix.startswith("{"):
            low, high = suffix[1:-1].split(",")
            return (int(low), int(high) if high else UNBOUNDED), index + 1
    return default, index


def parse_structure(text: str, name: str = "root") -> LoopNode:
    tokens = _TOKEN.findall(text)

    def parse_children(index: int) -> tuple[list, int]:
        children: list[SegmentNode | LoopNode] = []
        while index < len(tokens) and tokens[index] != "]":
            token = tokens[index]
            if token == "[":
                inner, index = parse_children(index + 1)
                index += 1  # the closing bracket
                (low, high), index = _bounds(tokens, index, (1, 1))
                children.append(LoopNode(inner[0].tag, low, high, tuple(inner)))
            else:
                (low, high), index = _bounds(tokens, index + 1, (1, 1))
                children.append(SegmentNode(token, low, high))
        return children, index

    children, _ = parse_children(0)
    return LoopNode(name, 1, 1, tuple(children))


def parse_elements(text: str) -> tuple[ElementRule, ...]:
    rules = []
    for position, part in enumerate(text.split(";"), start=1):
        words = part.split()
        if not words or words == ["-"]:
            continue
        low, high = (int(n) for n in words[2].split("/"))
        codes = frozenset(words[3].split(",")) if len(words) > 3 else None
        rules.append(ElementRule(position, words[0] == "M", words[1], low, high, codes))
    return tuple(rules)


def _all_tags(node: LoopNode) -> frozenset[str]:
    tags = set()
    for child in node.children:
        tags |= _all_tags(child) if isinstance(child, LoopNode) else {child.tag}
    return frozenset(tags)


# Element rules for the segments the platform reads; other segments are checked for structure only.
ELEMENT_RULES: dict[str, tuple[ElementRule, ...]] = {
    tag: parse_elements(text)
    for tag, text in {
        "ST": "M ID 3/3; M AN 4/9; O AN 1/35",
        "SE": "M N0 1/10; M AN 4/9",
        "BEG": "M ID 2/2 00,01,04,05,06,07,22; M ID 2/2; M AN 1/22; O AN 1/30; M DT 6/8",
        "BAK": "M ID 2/2; M ID 2/2; M AN 1/22; M DT 6/8",
        "BSN": "M ID 2/2; M AN 2/30; M DT 6/8; M TM 4/8; O ID 4/4",
        "BIA": "M ID 2/2; M ID 2/2; M AN 1/30; M DT 6/8; O TM 4/8",
        "BIG": "M DT 6/8; M AN 1/22; O DT 6/8; O AN 1/22",
        "W05": "M ID 1/1; M AN 1/22; O AN 1/22",
        "W06": "M ID 1/1; O AN 1/22; O DT 6/8; O AN 1/30; O AN 1/30; O AN 1/22",
        "AK1": "M ID 2/2; M N0 1/9",
        "AK2": "M ID 3/3; M AN 4/9",
        "AK3": "M ID 2/3; M N0 1/6; O ID 1/6; O ID 1/3",
        "AK5": "M ID 1/1 A,E,M,R,W,X",
        "AK9": "M ID 1/1 A,E,M,P,R,W,X; M N0 1/6; M N0 1/6; M N0 1/6",
        "HL": "M AN 1/12; O AN 1/12; M ID 1/2; O ID 1/1 0,1",
        "PO1": "O AN 1/20; O R 1/15; O ID 2/2; O R 1/17",
        "IT1": "O AN 1/20; O R 1/10; O ID 2/2; O R 1/17",
        "ACK": "M ID 2/2; O R 1/15; O ID 2/2",
        "LIN": "O AN 1/20; M ID 2/2; M AN 1/48",
        "SN1": "O AN 1/20; M R 1/10; M ID 2/2",
        "QTY": "M ID 2/2; O R 1/15",
        "W01": "M R 1/10; M ID 2/2",
        "W12": "M ID 2/2; O R 1/9; O R 1/9; O R 1/9; O ID 2/2",
        "W76": "M R 1/10",
        "W03": "M R 1/10",
        "CTT": "M N0 1/6; O R 1/10",
        "TDS": "M N2 1/15",
        "N1": "M ID 2/3; O AN 1/60; O ID 1/2; O AN 2/80",
        "DTM": "M ID 3/3; O DT 6/8; O TM 4/8",
        "G62": "O ID 2/2; O DT 6/8",
    }.items()
}

_N1_LOOP = "[N1 N2* N3* N4? NX2* REF* PER* SI* DMG? FOB? QTY* DTM* SCH* TD1* TD5* TD3* TD4* PKG* G61?]"
_SAC_LOOP = "[SAC CUR? CTP? TXI*]"
_PID_LOOP = "[PID MEA*]"
_N9_LOOP = "[N9 DTM* MSG* MEA*]"
_LM_LOOP = "[LM LQ+]"

_ORDER_HEADER = (
    "CUR? REF* PER* TAX* FOB* CTP* PAM* CSH* TC2* {sac}* ITD* DIS* INC? DTM* LDT* LIN* SI* {pid}* MEA* PWK* PKG* "
    "TD1* TD5* TD3* TD4* MAN* PCT* CTB* TXI* [AMT REF* DTM? PCT*]* {n9}* {n1}* {lm}* [SPI REF* DTM* MSG*]* "
    "[ADV DTM* MTX*]*"
)
_ORDER_LINE = (
    "LIN* SI* CUR? CN1* PO3* [CTP CUR?]* MEA* {pid}* PWK* PO4* REF* PER* {sac}* IT8? CSH* ITD* DIS* INC? "
    "TAX* FOB* SDQ* IT3* DTM* TC2* TD1* TD5* TD3* TD4* PCT* MAN* MSG* SPI* TXI* CTB* [QTY SI*]* {ack} "
    "[SCH TD1* TD5* TD3* TD4* REF*]* [PKG MEA*]* LS? [LDT QTY* MSG* REF*]* LE? {n9}* {n1}* "
    "[SLN MSG* SI* PID* PO3* TC2* ADV? DTM* CTP* PAM* PO4? TAX* {n9}* {sac}* [QTY SI*]* {n1}*]* "
    "[AMT DTM? REF*]* {lm}*"
)


def _fill(template: str, **extra: str) -> str:
    return template.format(sac=_SAC_LOOP, pid=_PID_LOOP, n9=_N9_LOOP, n1=_N1_LOOP, lm=_LM_LOOP, **extra)


_STRUCTURES = {
    "850": _fill("ST BEG " + _ORDER_HEADER + " [PO1 " + _ORDER_LINE + "]+ [CTT AMT?]? AMT? SE", ack=""),
    "855": _fill("ST BAK " + _ORDER_HEADER + " [PO1 " + _ORDER_LINE + "]* [CTT AMT?]? SE", ack="[ACK DTM* ]{0,104}"),
    "856": _fill(
        "ST BSN DTM* [HL LIN? SN1? SLN* PRF? PO4? PID* MEA* PWK* PKG* TD1* TD5* TD3* TD4* TSD? REF* PER* "
        "CLD* MAN* DTM* FOB? PAL? {n1}* SDQ* ETD? CUR? {sac}* GF? YNQ* {lm}* [V1 R4* DTM*]*]+ CTT? SE"
    ),
    "846": _fill(
        "ST BIA CUR? REF* PER* MEA* PSC* DTM* {n1}* {lm}* [LIN SI* PID* MEA* PWK* PKG* TD1? TD5* TD3* TD4* "
        "REF* PER* SDQ* DTM* CTP* PO4* CUR? {sac}* MAN* UIT* [QTY UIT? SCH* DTM*]* {n1}* {lm}*]+ CTT? SE"
    ),
    "810": _fill(
        "ST BIG NTE* CUR? REF* YNQ* PER* {n1}* ITD* DTM* FOB? PID* MEA* PWK* PKG* L7? BAL* INC? PAM* {lm}* "
        "[N9 MSG+]* [V1 R4* DTM*]* [IT1 CRC? QTY* CUR? IT3* TXI* CTP* PAM* MEA* {pid}* PWK* PKG* PO4? ITD* "
        "REF* YNQ* PER* IT8? DTM* CAD* L7* SR? {sac}* [SLN MSG* PID* REF* DTM*]* {n1}* {lm}*]* "
        "TDS TXI* CAD? AMT* {sac}* [ISS PID?]* CTT? SE"
    ),
    "940": _fill(
        "ST W05 {n1}{{0,10}} N9* G61? G62* NTE* W09* W66? W6* R2* BNX? {lm}* "
        "[LX MAN* SDQ* N1? G62* [W01 G69* N9* NTE* W20? W19? QTY* AMT* G62* MAN* N1*]+]* "
        "[W01 G69* N9* NTE* W20? QTY* AMT* G62* MAN*]* W76? SE"
    ),
    "945": _fill(
        "ST W06 {n1}{{0,10}} N9* G61? G62* NTE* W27 W28? W10* [G72 G73?]* {lm}* "
        "[LX MAN* PAL? N9* [W12 G69* N9* G62* QTY* MEA* AMT* R4* W27? N1* G72* MAN* LM*]+]* "
        "[W12 G69* N9* G62* QTY* MEA* AMT*]* W03 SE"
    ),
    "997": "ST AK1 [AK2 [AK3 AK4{0,99}]* AK5]* AK9 SE",
}


def _spec(set_id: str, functional_id: str, name: str, **rules) -> SetSpec:
    root = parse_structure(_STRUCTURES[set_id])
    return SetSpec(set_id, functional_id, name, root, tags=_all_tags(root), **rules)


SET_SPECS: dict[str, SetSpec] = {
    spec.set_id: spec
    for spec in (
        _spec("850", "PO", "Purchase Order", ctt_counts="PO1", ctt_hash_sources=(("PO1", 2),)),
        _spec(
            "855", "PR", "Purchase Order Acknowledgment", ctt_counts="PO1", ctt_hash_sources=(("PO1", 2), ("ACK", 2))
        ),
        _spec("856", "SH", "Ship Notice/Manifest", ctt_counts="HL", ctt_hash_sources=(("SN1", 2),), hierarchical=True),
        _spec("846", "IB", "Inventory Inquiry/Advice", ctt_counts="LIN", ctt_hash_sources=(("QTY", 2),)),
        _spec("810", "IN", "Invoice", ctt_counts="IT1", ctt_hash_sources=(("IT1", 2),)),
        _spec("940", "OW", "Warehouse Shipping Order", totals=(TotalRule(("W76", 1), (("W01", 1),)),)),
        _spec("945", "SW", "Warehouse Shipping Advice", totals=(TotalRule(("W03", 1), (("W12", 3),)),)),
        _spec("997", "FA", "Functional Acknowledgment"),
    )
}

# GS01 for every set id the platform may meet, supported or not (for the GS01 against ST01 check).
FUNCTIONAL_IDS: dict[str, str] = {
    **{spec.set_id: spec.functional_id for spec in SET_SPECS.values()},
    "999": "FA", "837": "HC", "835": "HP", "820": "RA", "860": "PC", "865": "CA", "830": "PS", "862": "SS",
    "944": "RE", "943": "AR", "947": "AW", "824": "AG", "864": "TX", "214": "QM", "204": "SM", "990": "GF",
    "210": "IM", "852": "PD", "816": "OC", "832": "SC", "753": "GF", "754": "RT", "270": "HS", "271": "HB",
}  # fmt: skip

KNOWN_ISA_VERSIONS = frozenset(
    ["00200", "00201", "00204", "00300", "00301", "00302", "00303", "00304", "00305", "00306", "00307",
     "00400", "00401", "00402", "00403", "00404", "00405", "00406", "00500", "00501", "00502", "00503",
     "00504", "00505", "00600", "00601", "00602", "00603", "00604", "00605", "00700", "00701", "00800", "00801"]
)  # fmt: skip
