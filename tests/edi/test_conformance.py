"""The shared conformance corpus (../shared/edi_samples, skipped when absent), driven by its INDEX.md.

Clean files must parse without errors and with the set counts INDEX gives; negative files must be flagged for
the reasons INDEX gives; tolerated quirks may only produce warnings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gp_pipelines.edi.report import parse_report

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "edi_samples"  # ../shared next to the repo

pytestmark = pytest.mark.skipif(not (SAMPLES / "INDEX.md").is_file(), reason="edi_samples corpus not present")

# What each INDEX finding means in our issue codes (warnings included).
FINDING_CODES = [
    (re.compile(r"GE02=\S+ != GS06"), "GE_CONTROL_MISMATCH"),
    (re.compile(r"IEA02=\S+ != ISA13"), "IEA_CONTROL_MISMATCH"),
    (re.compile(r"SE02=\S+ != ST02"), "SE_CONTROL_MISMATCH"),
    (re.compile(r"SE01=\d+ but counted"), "SE_COUNT_MISMATCH"),
    (re.compile(r"GE01=\d+ but"), "GE_SET_COUNT"),
    (re.compile(r"IEA01=\d+ but"), "IEA_GROUP_COUNT"),
    (re.compile(r"only numerically"), "IEA_CONTROL_UNPADDED"),
    (re.compile(r"ISA not fixed-width"), "ISA_NOT_FIXED_WIDTH"),
]
# Findings that are tolerated quirks, not errors: wrapped records are joined, and a 6-digit GS04 is the
# correct date format of a 003010 group (reference §3: CCYYMMDD only from 004010).
TOLERATED_WARNINGS = {"TOTAL_AMOUNT_MISMATCH", "ELEMENT_CODE_UNLISTED"}
TOLERATED = [re.compile(r"line breaks inside segments"), re.compile(r"GS04 date '\d{6}' not CCYYMMDD")]


def _index_rows() -> list[dict]:
    if not (SAMPLES / "INDEX.md").is_file():
        return []
    rows = []
    for line in (SAMPLES / "INDEX.md").read_text().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 9 and cells[0].endswith(".edi"):
            sets, findings = cells[1], cells[8]
            count = re.search(r"\(x(\d+)\)", sets)
            rows.append({"file": cells[0], "sets": int(count.group(1)) if count else 1, "findings": findings})
    return rows


def _negative_files() -> set[str]:
    text = (SAMPLES / "INDEX.md").read_text() if (SAMPLES / "INDEX.md").is_file() else ""
    paragraph = next((line for line in text.splitlines() if line.startswith("Negative samples")), "")
    head = paragraph.split("Tolerated quirks")[0]
    return {name + ".edi" for name in re.findall(r"\b\d{3}_[A-Za-z0-9-]+_\d+\b", head)}


ROWS = _index_rows()


def test_index_lists_the_corpus():
    assert len(ROWS) >= 20
    assert _negative_files() == {"940_olmelabs_3.edi", "940_olmelabs_4.edi", "945_apimeister_1.edi",
                                 "940_olmelabs_5.edi"}  # fmt: skip


def _expected_codes(findings: str) -> list[str]:
    parts = [part.strip() for part in findings.split(";") if part.strip()]
    codes = []
    for part in parts:
        if any(pattern.search(part) for pattern in TOLERATED):
            continue
        matched = [code for pattern, code in FINDING_CODES if pattern.search(part)]
        assert matched, f"INDEX finding not understood: {part}"
        codes.extend(matched)
    return codes


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_sample(row):
    with open(SAMPLES / row["file"], "rb") as stream:
        report = parse_report(stream)
    transactions = [t for i in report["interchanges"] for g in i["groups"] for t in g["transactions"]]
    assert len(transactions) == row["sets"]
    found = sorted(issue["code"] for issue in report["errors"] + report["warnings"])
    expected = sorted(_expected_codes(row["findings"]))
    if row["file"] in _negative_files():
        assert report["errors"], "a negative sample must have errors"
    else:
        assert report["errors"] == [], "a clean or tolerated sample must have no errors"
    # Every reason INDEX gives is flagged, and nothing is flagged that INDEX does not give, apart from two
    # warnings: the 810 TDS total (the corpus' second 810 reuses the first one's TDS) and qualifiers outside
    # the open code lists (REF01 'ZZZ', N901 'PIN' ...: partner codes the base tables do not hold).
    extra = [code for code in found if code not in expected and code not in TOLERATED_WARNINGS]
    assert all(code in found for code in expected)
    assert extra == [] or row["file"] in _negative_files()
