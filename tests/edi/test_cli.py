"""`edi parse|ack|write` through `register` (in-process) and `python -m gp_pipelines.edi.cli` (subprocess)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gp_pipelines.edi.cli import register
from gp_pipelines.edi.writer import read_documents
from tests.edi.helpers import interchange, single

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gp-pipelines")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def po_file(tmp_path) -> Path:
    path = tmp_path / "po.edi"
    path.write_text(single("850") + single("856", control="000000002"))
    return path


def test_parse_prints_the_structure(po_file, capsys):
    assert run(["edi", "parse", str(po_file)]) == 0
    out = capsys.readouterr().out
    assert "interchange 000000001 ZZ:SENDER -> ZZ:RECEIVER" in out
    assert "850 1001 (12 segments) - PO PO123 dated 20240115: 2 lines" in out
    assert "ASN ASN1" in out and "0 errors" in out


def test_parse_json(po_file, capsys):
    assert run(["edi", "parse", str(po_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [i["control_number"] for i in report["interchanges"]] == ["000000001", "000000002"]
    transaction = report["interchanges"][0]["groups"][0]["transactions"][0]
    assert (transaction["set_id"], transaction["control_number"]) == ("850", "1001")
    assert report["errors"] == []


def test_parse_with_errors_exits_1(tmp_path, capsys):
    path = tmp_path / "bad.edi"
    path.write_text(single("850").replace("SE*12*", "SE*11*"))
    assert run(["edi", "parse", str(path), "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error["code"] == "SE_COUNT_MISMATCH" and "11" in error["message"]


def test_unreadable_exits_2(tmp_path, capsys):
    path = tmp_path / "junk.edi"
    path.write_bytes(b"not x12 at all")
    assert run(["edi", "parse", str(path)]) == 2
    assert "cannot be read as X12" in capsys.readouterr().err
    assert run(["edi", "parse", str(tmp_path / "missing.edi")]) == 2
    (tmp_path / "empty.edi").write_bytes(b"\xef\xbb\xbf\n")
    assert run(["edi", "parse", str(tmp_path / "empty.edi")]) == 2


def test_ack_prints_the_997(tmp_path, capsys):
    path = tmp_path / "two.edi"
    path.write_text(interchange([("PO", [("850", ["BEG*00*SA*1**20240115", "PO1*1*1*EA", "CTT*1"])])]))
    assert run(["edi", "ack", str(path)]) == 0
    out = capsys.readouterr().out
    (ack,) = read_documents(out.encode())
    assert (ack.functional_id, ack.group_control_number, ack.status) == ("PO", "1", "A")
    assert "ISA*00*          *00*          *ZZ*RECEIVER       *ZZ*SENDER" in out


def test_write_from_json(tmp_path, capsys):
    source = tmp_path / "po.json"
    source.write_text(json.dumps({
        "envelope": {"sender_id": "ME", "receiver_id": "THEM", "usage": "T"},
        "document": {"po_number": "PO9", "po_date": "20240301",
                     "lines": [{"line_number": "1", "quantity": "2", "uom": "EA", "unit_price": "1.5",
                                "product_ids": {"UP": "012345678905"}}]},
    }))  # fmt: skip
    assert run(["edi", "write", "850", "--from", str(source)]) == 0
    out = capsys.readouterr().out
    assert "*ZZ*ME             *ZZ*THEM           *" in out and "*T*>~" in out
    (order,) = read_documents(out.encode())
    assert order.po_number == "PO9" and str(order.lines[0].unit_price) == "1.5"
    out_file = tmp_path / "out.edi"
    assert run(["edi", "write", "850", "--from", str(source), "--out", str(out_file), "--terminator", "'"]) == 0
    assert run(["edi", "parse", str(out_file)]) == 0


def test_write_rejects_bad_json(tmp_path):
    source = tmp_path / "bad.json"
    source.write_text(json.dumps({"po_number": "1", "po_date": "20240101", "colour": "red"}))
    assert run(["edi", "write", "850", "--from", str(source)]) == 2
    source.write_text("{not json")
    assert run(["edi", "write", "850", "--from", str(source)]) == 2


def test_module_entry_point(po_file):
    command = [sys.executable, "-m", "gp_pipelines.edi.cli", "edi", "parse", str(po_file), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["interchanges"][1]["groups"][0]["transactions"][0]["set_id"] == "856"
    bad = po_file.with_name("bad.edi")
    bad.write_text(single("850").replace("GE*1*1", "GE*2*1"))
    result = subprocess.run([*command[:-2], str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1 and "GE_SET_COUNT" in result.stdout
