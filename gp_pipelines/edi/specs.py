"""The eight 004010 transaction sets as data: segment order, loops, repeats, element rules, syntax notes, totals.

Structures are written in a small notation, one string per set: `TAG` mandatory once, `TAG?` optional,
`TAG*` optional and repeating, `TAG+` mandatory and repeating, `TAG{0,10}` explicit bounds; `[TRIGGER ...]`
is a loop whose first segment starts each iteration, with the same suffixes.

Segments are one string each: the elements in order, separated by `;`, each `M|O|X TYPE MIN/MAX [CODES]`
(M mandatory, O optional, X conditional: optional unless a syntax note says otherwise; TYPE is AN, ID, DT, TM,
R, N0..N9 or C for a composite), then after `|` the syntax notes as X12 writes them: `P0304` paired (all or
none), `R0203` at least one, `C0605` if the first then all others, `L010203` if the first then at least one
other, `E0102` at most one. CODES is `A,B,C` (a closed list: anything else is an error), `~A,B,C` (an open list:
the codes the platform knows; anything else is a warning, since partners use codes this table does not hold)
or `@NAME` for a shared list of `CODE_LISTS`. Partner guides narrow these down; the base standard is kept
permissive where real files disagree with it.
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
    data_type: str  # AN, ID, DT, TM, R, N0..N9, C (composite: presence and length only)
    min_length: int
    max_length: int
    codes: frozenset[str] | None = None
    closed: bool = True  # a value outside a closed list is an error, outside an open list a warning


@dataclass(frozen=True)
class SyntaxNote:
    """An X12 relational condition between elements of one segment (P, R, C, L or E)."""

    kind: str
    positions: tuple[int, ...]

    def __str__(self) -> str:
        return self.kind + "".join(f"{position:02d}" for position in self.positions)

    def violated(self, present: set[int]) -> bool:
        used = [position in present for position in self.positions]
        if self.kind == "P":
            return any(used) and not all(used)
        if self.kind == "R":
            return not any(used)
        if self.kind == "C":
            return used[0] and not all(used[1:])
        if self.kind == "L":
            return used[0] and not any(used[1:])
        return sum(used) > 1  # E


@dataclass(frozen=True)
class SegmentSpec:
    tag: str
    elements: tuple[ElementRule, ...]  # one rule per position, 1..n
    notes: tuple[SyntaxNote, ...] = ()

    @property
    def max_elements(self) -> int:
        return len(self.elements)


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

    @cached_property
    def required_after_trigger(self) -> tuple[int, ...]:
        return tuple(index for index in self.required if index > 0)

    @cached_property
    def max_uses(self) -> tuple[int, ...]:
        return tuple(child.max_use for child in self.children)

    @cached_property
    def is_loop(self) -> tuple[bool, ...]:
        return tuple(isinstance(child, LoopNode) for child in self.children)

    @cached_property
    def transitions(self) -> dict[tuple[int, str, bool], tuple[int, tuple[int, ...]]]:
        """Memo of the structure engine: (last child matched, tag, is root) -> (child index or -1, the required
        children skipped to get there)."""
        return {}


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

    @cached_property
    def watched_tags(self) -> frozenset[str]:
        """Segments the totals and the HL rules read after the structure pass."""
        watched = {"CTT", "BSN", "HL", "TDS", "IT1", "SAC"} if self.hierarchical or self.set_id == "810" else {"CTT"}
        watched |= {tag for tag, _ in self.ctt_hash_sources} | ({self.ctt_counts} if self.ctt_counts else set())
        for rule in self.totals:
            watched |= {rule.target[0], *(tag for tag, _ in rule.sources)}
        return frozenset(watched)


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


def _all_tags(node: LoopNode) -> frozenset[str]:
    tags = set()
    for child in node.children:
        tags |= _all_tags(child) if isinstance(child, LoopNode) else {child.tag}
    return frozenset(tags)


# -- element dictionary --------------------------------------------------------------------------------------
# Shared code lists (X12 element number in the comment). Open lists (`~`) hold the codes the platform and its
# partners commonly use; the full X12 lists run to hundreds or thousands of codes.
CODE_LISTS: dict[str, str] = {
    # 353 transaction set purpose (BEG01, BAK01, BSN01, BIA01, BIG08)
    "PURPOSE": "00,01,02,03,04,05,06,07,08,10,11,12,13,14,15,16,17,18,19,20,21,22,24,25,26,27,28,30,31,32,33,"
    "34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,77,CN,CO,EX,GR,PR,RH,RV,SU,ZZ",
    # 355 unit or basis of measurement
    "UOM": "~AM,BA,BD,BE,BG,BI,BK,BL,BO,BR,BX,CA,CC,CF,CG,CH,CI,CL,CM,CN,CQ,CR,CS,CT,CU,CY,DA,DH,DR,DZ,EA,FP,FT,"
    "GA,GM,GR,GS,GT,HR,HU,IN,JR,KE,KG,KT,LB,LF,LO,LR,LT,ME,MI,ML,MM,MR,MT,OZ,PA,PC,PD,PF,PH,PK,PL,PN,PR,PT,PY,QT,"
    "RE,RL,RM,RO,SF,SH,SJ,SL,SO,SP,SQ,SS,ST,SX,SY,TB,TK,TN,TO,TS,TY,UN,VI,WE,YD,Z3",
    # 235 product/service id qualifier
    "PRODUCT_ID": "~A1,A2,AB,B8,BL,BO,BP,CB,CH,CN,CT,EN,EO,FS,GS,GT,HD,IB,IN,IT,IZ,LT,MF,MG,MN,ND,NU,PD,PI,PL,PN,"
    "PR,PU,RC,SH,SK,SM,SN,ST,SZ,TP,UA,UC,UI,UK,UN,UP,UX,VA,VC,VE,VN,VP,VS,ZZ,N4,N5,N6,"
    "B3,B4,B6,BI",  # NDC formats and book-trade codes seen in partner files
    # 98 entity identifier
    "ENTITY": "~1P,40,41,BS,BT,BY,CA,CN,DE,II,LW,MA,MF,MI,N1,OB,PF,PR,PW,RE,RI,RL,SE,SF,SH,SN,SO,ST,SU,TP,UC,"
    "VN,WH,Z7,ZZ",
    # 66 identification code qualifier
    "ID_QUALIFIER": "~1,2,3,4,8,9,10,11,12,14,15,20,21,91,92,93,94,A2,BP,DL,FA,UL,ZZ",
    # 128 reference identification qualifier
    "REFERENCE": "~11,12,14,19,1R,2I,4C,4N,6P,72,8X,9X,AH,AN,AO,BL,BM,BR,CN,CO,CR,CT,DO,DP,EO,FI,FN,IA,IK,IL,"
    "IN,IT,IV,KK,LI,LO,LV,MR,OI,ON,OQ,PC,PD,PK,PM,PO,PS,PG,QY,R1,RE,SA,SD,SE,SI,SN,SO,ST,TN,UP,VN,VR,WH,WS,XY,"
    "ZC,ZZ",
    # 374 date/time qualifier
    "DATE": "~001,002,003,004,007,010,011,015,017,035,036,037,038,043,050,063,064,067,068,069,070,071,073,074,"
    "077,079,080,081,097,118,135,139,150,151,168,193,194,196,197,198,208,209,369,370,371,372,405,510,514,517,"
    "996",
    # 91 transportation method/type code
    "TRANSPORT": "~A,AC,AE,AF,AR,B,BU,C,CE,D,E,F,FA,FL,GG,H,HH,I,J,K,L,LT,M,MP,N,O,P,PA,PG,PL,PP,PR,PU,R,RC,S,"
    "SB,SD,SE,SR,SS,ST,T,TA,TC,TT,U,VE,W,WP,X,Y,Z,ZZ",
    # 146 shipment method of payment
    "PAYMENT": "~11,BP,CA,CC,CD,CF,DE,DF,FO,HP,MX,NC,NR,PA,PB,PC,PD,PE,PL,PO,PP,PS,PU,RC,RF,RS,SP,TP,WC",
    # 735 hierarchical level code
    "HL_LEVEL": "~A,B,C,D,E,F,G,H,I,J,K,L,M,N,O,P,Q,S,T,U,V,W,X,Y,Z",
    # 1005 hierarchical structure code
    "HL_STRUCTURE": "~0001,0002,0003,0004,0005,0006,0007,0008,0009,0010,0011,0012,0013",
}

_SEGMENT_TEXT: dict[str, str] = {
    # envelope of the set
    "ST": "M ID 3/3; M AN 4/9; O AN 1/35",
    "SE": "M N0 1/10; M AN 4/9",
    # beginning segments
    "BEG": "M ID 2/2 @PURPOSE; M ID 2/2 ~BK,BE,CF,CN,CO,DS,KB,KC,KN,LS,NE,NP,OS,PR,RE,RL,RO,SA,SP,SS,ST,WO,ZZ; "
    "M AN 1/22; O AN 1/30; M DT 8/8; O AN 1/30; O ID 2/2; O ID 3/3; O ID 2/2; O ID 2/2; O ID 2/2; O ID 2/2",
    "BAK": "M ID 2/2 @PURPOSE; M ID 2/2 AC,AD,AE,AH,AK,AP,AT,NA,RD,RF,RJ,RN,RO,RS,RV,ZZ; M AN 1/22; M DT 8/8; "
    "O AN 1/30; O AN 1/45; O AN 1/30; O AN 1/30; O DT 8/8; O ID 2/2",
    "BSN": "M ID 2/2 @PURPOSE; M AN 2/30; M DT 8/8; M TM 4/8; O ID 4/4 @HL_STRUCTURE; O ID 2/2; O ID 1/2 | C0706",
    "BIA": "M ID 2/2 @PURPOSE; M ID 2/2 ~DD,MB,MM,PI,RA,SI,SO,TM,ZZ; M AN 1/30; M DT 8/8; O TM 4/8; O ID 2/2",
    "BIG": "M DT 8/8; M AN 1/22; O DT 8/8; O AN 1/22; O AN 1/30; O AN 1/8; O ID 2/2 ~CN,CR,DC,DI,DR,FD,PR; "
    "O ID 2/2 @PURPOSE; O ID 1/2; O AN 1/22",
    "W05": "M ID 1/1 ~C,F,N,R; M AN 1/22; O AN 1/22; O N0 1/6; O AN 1/22; O ID 2/2; O ID 1/2",
    "W06": "M ID 1/1 ~F,P; O AN 1/22; O DT 8/8; O AN 1/30; O AN 1/30; O AN 1/22; O AN 1/22; O N0 1/6; O ID 1/2; "
    "O ID 2/2",
    "AK1": "M ID 2/2; M N0 1/9; O AN 1/12",
    "AK2": "M ID 3/3; M AN 4/9; O AN 1/35",
    "AK3": "M ID 2/3; M N0 1/6; O AN 1/6; O ID 1/3 1,2,3,4,5,6,7,8",
    "AK4": "M C 1/10; O N0 1/4; M ID 1/3 1,2,3,4,5,6,7,8,9,10,12,13; O AN 1/99",
    "AK5": "M ID 1/1 A,E,M,R,W,X; O ID 1/3; O ID 1/3; O ID 1/3; O ID 1/3; O ID 1/3",
    "AK9": "M ID 1/1 A,E,M,P,R,W,X; M N0 1/6; M N0 1/6; M N0 1/6; O ID 1/3; O ID 1/3; O ID 1/3; O ID 1/3; O ID 1/3",
    # line items and quantities
    "PO1": "O AN 1/20; X R 1/15; O ID 2/2 @UOM; X R 1/17; O ID 2/2; "
    + "; ".join(["X ID 2/2 @PRODUCT_ID; X AN 1/48"] * 10)
    + " | C0302 C0504 "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(6, 25, 2)),
    "IT1": "O AN 1/20; X R 1/10; X ID 2/2 @UOM; X R 1/17; O ID 2/2; "
    + "; ".join(["X ID 2/2 @PRODUCT_ID; X AN 1/48"] * 10)
    + " | P020304 "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(6, 25, 2)),
    "ACK": "M ID 2/2 ~AC,AR,BP,DR,IA,IB,IC,ID,IE,IF,IH,IP,IQ,IR,IS,IW,R1,R2,R3,R4,SP; X R 1/15; X ID 2/2 @UOM; "
    "O ID 3/3 @DATE; X DT 8/8; O AN 1/30; "
    + "; ".join(["X ID 2/2 @PRODUCT_ID; X AN 1/48"] * 11)
    + "; O AN 1/30 | P0203 C0504 "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(7, 28, 2)),
    "LIN": "O AN 1/20; M ID 2/2 @PRODUCT_ID; M AN 1/48; "
    + "; ".join(["X ID 2/2 @PRODUCT_ID; X AN 1/48"] * 14)
    + " | "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(4, 31, 2)),
    "SN1": "O AN 1/20; M R 1/10; M ID 2/2 @UOM; O R 1/15; O R 1/15; X ID 2/2 @UOM; O ID 2/2; O ID 2/2 | P0506",
    "SLN": "M AN 1/20; O AN 1/8; M ID 1/1 A,D,I,S; X R 1/15; X C 1/20; X R 1/17; X ID 2/2; O ID 1/1; "
    + "; ".join(["X ID 2/2 @PRODUCT_ID; X AN 1/48"] * 10)
    + " | C0706 C0806 "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(9, 28, 2)),
    "QTY": "M ID 2/3; X R 1/15; O C 1/20; X AN 1/30 | R0204 E0204",
    "PO3": "M ID 2/2; O DT 8/8; X ID 3/3; X R 1/17; X ID 2/2; M R 1/15; M ID 2/2 @UOM; O AN 1/80 | C0403",
    "PO4": "O N0 1/6; X R 1/8; X ID 2/2 @UOM; X ID 3/5; X ID 1/2; X R 1/9; X ID 2/2 @UOM; X R 1/9; "
    "X ID 2/2 @UOM; X R 1/8; X R 1/8; X R 1/8; X ID 2/2 @UOM; O N0 1/6; O ID 1/1; X AN 1/48; X AN 1/48; "
    "O N0 1/3 | C0203 P0607 P0809",
    "PID": "M ID 1/1 F,S,X; O ID 2/3; X ID 2/2; X AN 1/12; X AN 1/80; O ID 2/3; O AN 1/15; O ID 1/1; O ID 2/3 "
    "| C0403 R0405",
    "CTP": "O ID 2/2; X ID 3/3; X R 1/17; X R 1/15; X C 1/20; O ID 3/3; X R 1/10; O R 1/15; O ID 3/3; O AN 1/80; "
    "O N0 1/2",
    "SDQ": "M ID 2/2 @UOM; O ID 1/2 @ID_QUALIFIER; "
    + "; ".join(["X AN 1/80; X R 1/15"] * 10)
    + "; O AN 1/12 | "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(5, 22, 2)),
    "MEA": "O ID 2/2; O ID 1/3; X R 1/20; X C 1/20; X R 1/20; X R 1/20; O ID 2/2; X ID 2/2; O ID 1/1; O N0 1/2 "
    "| R03050608 L07030506",
    "CTT": "M N0 1/6; O R 1/10; X R 1/10; X ID 2/2 @UOM; X R 1/8; X ID 2/2 @UOM; O AN 1/80 | P0304 P0506",
    "TDS": "M N2 1/15; O N2 1/15; O N2 1/15; O N2 1/15",
    "AMT": "M ID 1/3; M R 1/18; O ID 1/1 C,D",
    "SAC": "M ID 1/1 A,C,N,P,Q,R; X ID 4/4; X ID 2/2; X AN 1/10; O N2 1/15; X ID 1/1; X R 1/6; O R 1/9; "
    "X ID 2/2 @UOM; X R 1/15; O R 1/15; O ID 2/2; X AN 1/30; O AN 1/20; X AN 1/80; O ID 2/3 "
    "| R0203 P0304 P0607 P0910 C1110 C1413 C1615",
    "ITD": "O ID 2/2; O ID 1/2; O R 1/6; X DT 8/8; X N0 1/3; O DT 8/8; O N0 1/3; O N2 1/10; O DT 8/8; X N2 1/10; "
    "O R 1/5; O AN 1/80; X N0 1/2; X ID 1/2; X R 1/10",
    "TXI": "M ID 2/2; X R 1/18; X R 1/10; X ID 2/2; X AN 1/10; X ID 1/1; O ID 1/1; O R 1/15; O AN 1/20; O AN 1/20 "
    "| R020306 P0405 C0804",
    "CUR": "M ID 2/3 @ENTITY; M ID 3/3; O R 4/10; O ID 2/3; O ID 3/3; O ID 3/3; "
    + "; ".join(["X ID 3/3; X DT 8/8; X TM 4/8"] * 5)
    + " | C0807 C0907 C1110 C1210 C1413 C1513 C1716 C1816 C2019 C2119",
    # parties and references
    "N1": "M ID 2/3 @ENTITY; X AN 1/60; X ID 1/2 @ID_QUALIFIER; X AN 2/80; O ID 2/2; O ID 2/3 | R0203 P0304",
    "N2": "M AN 1/60; O AN 1/60",
    "N3": "M AN 1/55; O AN 1/55",
    # N402 is ID 2/2 (state or province) in the standard; corpus files send 3-digit province codes (CN "020").
    "N4": "O AN 2/30; O ID 2/3; O ID 3/15; O ID 2/3; X ID 1/2; O AN 1/30 | C0605",
    "NX2": "M ID 2/2; M AN 1/35; O ID 1/1",
    "REF": "M ID 2/3 @REFERENCE; X AN 1/30; X AN 1/80; O C 1/50 | R0203",
    "N9": "M ID 2/3 @REFERENCE; X AN 1/30; X AN 1/45; O DT 8/8; X TM 4/8; O ID 2/2; O C 1/50 | R0203 C0605",
    "PER": "M ID 2/2 ~AA,AD,BD,CN,CR,DC,EB,IC,NT,OC,OD,RE,SR,SU,ZZ; O AN 1/60; X ID 2/2 ~EM,EX,FX,IT,TE,UR; "
    "X AN 1/80; X ID 2/2 ~EM,EX,FX,IT,TE,UR; X AN 1/80; X ID 2/2 ~EM,EX,FX,IT,TE,UR; X AN 1/80; O AN 1/20 "
    "| P0304 P0506 P0708",
    # G61 P0304 is not enforced: corpus 940s send a communication qualifier without its number.
    "G61": "M ID 2/2; M AN 1/60; X ID 2/2; X AN 1/80; O AN 1/20",
    "DTM": "M ID 3/3 @DATE; X DT 8/8; X TM 4/8; O ID 2/2; X ID 2/3; X AN 1/35 | R020305 C0403 P0506",
    "G62": "X ID 2/2; X DT 8/8; X ID 1/1; X TM 4/8; O ID 2/2 | R0103 P0102 P0304",
    "NTE": "O ID 3/3; M AN 1/80",
    "MSG": "M AN 1/264; O ID 2/2; X N0 1/9",
    "FOB": "M ID 2/2 @PAYMENT; X ID 2/2; X AN 1/80; O ID 2/2; X ID 3/3; X ID 2/2; X AN 1/80; O ID 2/2; X AN 1/80 "
    "| C0302 C0405 C0706 C0809",
    "SCH": "M R 1/15; M ID 2/2 @UOM; X ID 2/3; X AN 1/60; M ID 3/3 @DATE; M DT 8/8; O TM 4/8; X ID 3/3; X DT 8/8; "
    "X TM 4/8; O AN 1/30; O AN 1/30",
    # transport and packaging
    "TD1": "O ID 3/5; X N0 1/7; O ID 1/1; X AN 1/30; O AN 1/50; O ID 1/2; X R 1/10; X ID 2/2 @UOM; X R 1/8; "
    "X ID 2/2 @UOM | C0102 C0304 C0607 P0708 P0910",
    "TD5": "O ID 1/2; X ID 1/2 @ID_QUALIFIER; X AN 2/80; X ID 1/2 @TRANSPORT; X AN 1/35; O ID 2/2; O ID 1/2; "
    "X AN 1/30; O ID 2/2; X ID 2/2; O R 1/4; X ID 2/2; X ID 2/2; X ID 2/2; O ID 2/3 "
    "| R0204050612 C0203 C0708 C1011 C1312 C1413 C1512",
    "TD3": "O ID 2/2; X AN 1/4; X AN 1/10; O ID 1/2; X R 1/10; X ID 2/2 @UOM; O ID 1/1; O ID 2/2; O AN 2/15; "
    "O ID 4/4 | E0110 C0203 C0405 P0506",
    "TD4": "X ID 2/3; X ID 1/3; X AN 1/4; X AN 1/80; O ID 1/1 | R010204 C0203",
    "PKG": "X ID 1/1 F,S,X; O ID 2/3; O ID 2/2; X AN 1/7; X AN 1/80; O ID 2/2 | R0405 C0401 C0501",
    "MAN": "M ID 1/2 ~AA,CA,CP,GM,L,MC,PB,R,SC,SM,SN,UC,W,ZZ; M AN 1/48; O AN 1/48; X ID 1/2; X AN 1/48; "
    "O AN 1/48 | P0405",
    "PRF": "M AN 1/22; O AN 1/30; O AN 1/8; O DT 8/8; O AN 1/20; O AN 1/30; O ID 2/2",
    "CAD": "O ID 1/2 @TRANSPORT; O AN 1/4; O AN 1/10; X ID 2/4; X AN 1/35; O ID 2/2; O ID 2/3; X AN 1/30; "
    "O ID 2/2 | R0405 C0708",
    "ISS": "X R 1/10; X ID 2/2 @UOM; X R 1/10; X ID 2/2 @UOM; X R 1/8; X ID 2/2 @UOM; O R 1/15; O R 1/10 "
    "| P0102 P0304 P0506",
    "CLD": "M N0 1/5; M R 1/10; O ID 3/5; X R 1/8; X ID 2/2 @UOM | P0405",
    "YNQ": "X ID 2/3; M ID 1/1 N,U,W,Y; X ID 2/3; X AN 1/35; X AN 1/264; O AN 1/264; O AN 1/264; X ID 2/2; "
    "X AN 1/30; X AN 1/30",
    "HL": "M AN 1/12; O AN 1/12; M ID 1/2 @HL_LEVEL; O ID 1/1 0,1",
    # 940 / 945
    "LX": "M N0 1/6",
    # W0113/W0114 carry dates and lot numbers in corpus files: kept as free text.
    "W01": "M R 1/10; M ID 2/2 @UOM; X AN 1/12; X ID 2/2 @PRODUCT_ID; X AN 1/48; X ID 2/2 @PRODUCT_ID; X AN 1/48; "
    "O ID 2/5; O ID 2/2; O ID 1/1; O AN 1/30; O AN 1/6; O AN 1/30; O AN 1/30; X ID 2/2 @PRODUCT_ID; X AN 1/48 "
    "| P0405 P0607 P1516",
    "G69": "M AN 1/45",
    "W20": "O N0 1/6; X R 1/8; X ID 2/2 @UOM; X R 1/10; X ID 1/1; X R 1/8; X ID 2/2 @UOM; X R 1/9; X ID 1/1",
    "W19": "M ID 2/2; O R 1/15; O ID 2/2; O AN 1/12; X ID 2/2; X AN 1/48; O R 1/10; O ID 1/1; O ID 2/2; X R 1/8; "
    "X ID 1/1; X ID 2/2; X AN 1/48",
    "W09": "M ID 2/2; X R 1/4; X ID 2/2; X R 1/4; X ID 2/2; O AN 1/30; O R 1/5; O ID 1/1; O ID 2/2",
    "W66": "M ID 2/2 @PAYMENT; M ID 1/2 @TRANSPORT; O ID 1/2; O AN 1/80; X AN 1/35; O ID 1/2; O ID 1/2; "
    "O AN 1/30; O R 1/9; X ID 2/4; O ID 2/3; O AN 1/30",
    "W6": "M ID 2/2; O ID 1/1; O AN 1/80; O AN 1/80; O AN 1/80; O AN 1/80; O AN 1/80; O AN 1/80",
    "R2": "M ID 2/4; M ID 1/2; O ID 2/3; O ID 1/2; O AN 2/30; O AN 2/30; O ID 1/2; O ID 1/2; O AN 2/30; "
    "O N0 1/3; O ID 2/2; O AN 1/10; O ID 1/1",
    "BNX": "O ID 1/1; O ID 1/1; O ID 1/1; O ID 2/2",
    "W76": "M R 1/10; X R 1/9; X ID 2/2 @UOM; X R 1/8; X ID 2/2 @UOM | P0203 P0405",
    "W12": "M ID 2/2 ~CC,CP,PR,SH,CN,CL,HT; X R 1/9; X R 1/9; X R 1/9; M ID 2/2 @UOM; X AN 1/12; "
    "X ID 2/2 @PRODUCT_ID; X AN 1/48; O AN 1/12; X R 1/10; X ID 1/2; X ID 1/1; O ID 2/2; X ID 2/2 @PRODUCT_ID; "
    "X AN 1/48; O ID 2/2; X R 1/9; X ID 2/2 @UOM; O ID 1/2; X ID 2/2; X R 1/10; X ID 2/2 | P0708 P1415",
    "W27": "M ID 1/2 @TRANSPORT; X ID 2/4; X AN 1/35; X ID 2/2 @PAYMENT; O ID 2/2; X AN 1/4; X AN 1/10; O ID 2/2; "
    "O ID 2/2 | P0607",
    "W28": "M ID 2/4; M R 1/8; M ID 2/2; O R 1/10; O R 1/10; O R 1/10; O ID 1/1; O ID 2/2; O R 1/10",
    "W10": "M AN 1/30; O AN 1/30; O AN 1/30; O AN 1/30; O AN 1/30; O AN 1/30; O AN 1/30; O AN 1/45; O AN 1/45; "
    "O AN 1/30; O AN 1/30",
    "G72": "M ID 3/3; M ID 2/2; O AN 1/10; O AN 1/30; O R 1/15; O R 1/9; O ID 2/2 @UOM; O N2 1/15; O R 1/6; "
    "O N2 1/9; O R 1/9; O ID 2/2 @UOM; O R 1/10",
    "G73": "M AN 1/264; O ID 2/2",
    "W03": "M R 1/10; X R 1/10; X ID 1/2 @UOM; X R 1/8; X ID 2/2 @UOM; O R 1/7; O ID 2/2 @UOM | P0203 P0405",
    # loop triggers and other segments the structures allow (checked for count, type and length)
    "LM": "M ID 2/2; O ID 1/1",
    "LQ": "O ID 1/3; X AN 1/30 | C0102",
    "TAX": "X AN 1/20; X ID 2/2; X AN 1/30; X ID 2/2; X AN 1/30; X ID 2/2; X AN 1/30; X ID 2/2; X AN 1/30; "
    "X ID 2/2; X AN 1/30; O ID 1/1; O ID 1/1; O AN 1/20 | R0103",
    "CSH": "O ID 1/2; X ID 1/2; X R 1/15; X AN 1/35; X DT 8/8; X ID 3/3; X R 1/10; X ID 2/2; X R 1/10; O R 1/10",
    "TC2": "M ID 1/1; M AN 1/30",
    "DIS": "M ID 3/3; M ID 2/2; M R 1/10; M ID 2/2; M R 1/10; O R 1/10",
    "INC": "M ID 2/2; M C 1/20; M N0 1/3; O N0 1/3; O R 1/10",
    "LDT": "M ID 2/2; M R 1/15; M ID 2/2; O DT 8/8",
    "SI": "M ID 2/2; "
    + "; ".join(["X ID 2/2; X AN 1/30"] * 10)
    + " | "
    + " ".join(f"P{n:02d}{n + 1:02d}" for n in range(4, 21, 2)),
    "PWK": "M ID 2/2; O ID 1/2; O N0 1/2; X ID 1/2; X ID 2/2; X AN 2/80; O AN 1/80; O C 1/50; O ID 1/2 | P0506",
    "PCT": "M ID 2/3; M R 1/10",
    "CTB": "M ID 2/2; X AN 1/80; X ID 2/2; X R 1/15; X ID 1/3; X R 1/18",
    "SPI": "M ID 2/2; X ID 2/3; X AN 1/30; X AN 1/80; O ID 2/2; O ID 2/2; O ID 2/2; O AN 1/30; O ID 2/2; O ID 1/2; "
    "O AN 1/30; O N0 1/6",
    "ADV": "M ID 2/2; O AN 1/30; O N0 1/9; O ID 2/2; O AN 1/30; O ID 2/2; O AN 1/80",
    "MTX": "O ID 3/3; X AN 1/4096; X ID 2/2; X N0 1/6; X ID 2/2; O AN 1/80",
    "CN1": "M ID 2/2; O R 1/15; O R 1/9; O AN 1/30; O R 1/10; O AN 1/6",
    "LS": "M AN 1/6",
    "LE": "M AN 1/6",
    "IT8": "O ID 1/1; O ID 2/2; O ID 3/3; O R 1/10; O ID 1/1; O AN 1/30; O R 1/9; O ID 2/2; O R 1/10; O ID 2/2; "
    "O ID 1/1; O ID 2/2; O AN 1/48; O ID 2/2; O AN 1/48",
    "IT3": "X R 1/10; X ID 2/2 @UOM; X ID 2/2; X R 1/9; O ID 2/2 | P0102",
    "CRC": "M ID 2/2; M ID 1/1 N,U,Y; M ID 2/3; O ID 2/3; O ID 2/3; O ID 2/3; O ID 2/3",
    "PAM": "X ID 2/2; X R 1/15; X ID 2/2 @UOM; X ID 3/3; X ID 2/2; X ID 3/3; X ID 1/1; X N2 1/18; X ID 2/2; "
    "X ID 2/2; X DT 8/8; X TM 4/8; X DT 8/8; X TM 4/8; O ID 1/1",
    "L7": "O N0 1/3; O AN 2/2; O AN 1/10; O AN 1/4; O ID 1/1; O ID 1/1; O AN 1/6; O AN 1/30; O R 1/6; O ID 1/1; "
    "O ID 1/1; O AN 1/30; O N0 1/4; O ID 2/2; O AN 1/5",
    "SR": "M N0 1/1; O N0 1/3; O R 1/7; O ID 2/2; O ID 1/1; O ID 1/1; O AN 1/30",
    "BAL": "M ID 1/2; M ID 1/3; M R 1/18; O ID 1/3",
    "V1": "X AN 1/8; X AN 2/28; O ID 2/3; O AN 2/10; O ID 2/4; O ID 1/1; O ID 1/1; O ID 1/2; O ID 1/1 | R0102",
    "R4": "M ID 1/1; X ID 1/2; X AN 1/30; O AN 2/24; O ID 2/3; O AN 2/30; O AN 2/2; O ID 2/3 | C0203",
    "TSD": "M AN 1/6; O ID 2/2; O R 1/8; O ID 2/2; O N0 1/2; O ID 1/1",
    "PAL": "O ID 1/2; O N0 1/4; O N0 1/4; O N0 1/4; O N0 1/2; X R 1/8; X ID 2/2 @UOM; X R 1/8; X R 1/8; X R 1/8; "
    "X ID 2/2 @UOM; X R 1/10; X ID 2/2 @UOM; O ID 1/1; O R 1/10",
    "ETD": "M ID 2/2; M ID 1/4; O ID 1/1; X ID 2/3; X AN 1/30; O AN 1/30; O ID 2/2",
    "GF": "O ID 1/1; O AN 1/30; O AN 1/30; O AN 1/45; O AN 1/30; O R 1/15; O AN 1/30; O ID 2/2; O AN 1/30",
    "UIT": "M C 1/20; X R 1/17; O ID 2/2; O R 1/10; O ID 3/3",
    "PSC": "M ID 2/2; O AN 1/30; O R 1/15; O ID 2/2",
    "DMG": "O ID 2/3; O AN 1/35; O ID 1/1; O ID 1/1; O C 1/30; O ID 1/1; O ID 2/3; O ID 2/3; O ID 1/2; O ID 1/1; "
    "O ID 1/1",
}


def _codes(text: str) -> tuple[frozenset[str], bool]:
    if text.startswith("@"):
        text = CODE_LISTS[text[1:]]
    closed = not text.startswith("~")
    return frozenset(text.lstrip("~").split(",")), closed


_NOTE = re.compile(r"([PRCLE])((?:\d\d)+)\Z")


def parse_segment(tag: str, text: str) -> SegmentSpec:
    """One segment of the notation above (`elements | notes`) as a `SegmentSpec`."""
    elements_text, _, notes_text = text.partition("|")
    rules = []
    for position, part in enumerate(elements_text.split(";"), start=1):
        words = part.split()
        usage, data_type, lengths = words[:3]
        if usage not in ("M", "O", "X"):
            raise ValueError(f"{tag}{position:02d}: usage '{usage}' is not M, O or X")
        low, high = (int(n) for n in lengths.split("/"))
        codes, closed = _codes(words[3]) if len(words) > 3 else (None, True)
        rules.append(ElementRule(position, usage == "M", data_type, low, high, codes, closed))
    notes = []
    for word in notes_text.split():
        match = _NOTE.match(word)
        if not match:
            raise ValueError(f"{tag}: syntax note '{word}' is not understood")
        digits = match.group(2)
        positions = tuple(int(digits[i : i + 2]) for i in range(0, len(digits), 2))
        if max(positions) > len(rules):
            raise ValueError(f"{tag}: syntax note '{word}' names an element the segment does not have")
        notes.append(SyntaxNote(match.group(1), positions))
    return SegmentSpec(tag, tuple(rules), tuple(notes))


SEGMENT_SPECS: dict[str, SegmentSpec] = {tag: parse_segment(tag, text) for tag, text in _SEGMENT_TEXT.items()}

# 856 hierarchies by BSN05 (reference §5.3 and its source [20]): the level codes in order from the top; `?` marks
# a level that may be left out (tare/pallet, or packs under items in 0002). A child's level must come after its
# parent's, with only optional levels skipped in between.
HL_STRUCTURES: dict[str, str] = {
    "0001": "S O T? P I",  # shipment, order, packaging, item (pick and pack; pallets optional)
    "0002": "S O I P?",  # shipment, order, item, packaging (standard carton; packs optional)
}


def allowed_children(structure: str) -> dict[str, frozenset[str]]:
    """Level code -> the level codes that may sit directly below it."""
    levels = [(word.rstrip("?"), word.endswith("?")) for word in structure.split()]
    allowed: dict[str, frozenset[str]] = {}
    for index, (level, _) in enumerate(levels):
        children = set()
        for below, optional in levels[index + 1 :]:
            children.add(below)
            if not optional:
                break
        allowed[level] = frozenset(children)
    return allowed


HL_CHILDREN: dict[str, dict[str, frozenset[str]]] = {
    code: allowed_children(text) for code, text in HL_STRUCTURES.items()
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
