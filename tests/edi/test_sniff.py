"""Naming what arrived when it is not X12 (pure, no server)."""

import pytest

from gp_pipelines.edi.sniff import describe_non_x12

ISA = b"ISA*00*          *00*          *ZZ*ACME3PL        *ZZ*GPPIPELINES    *261122*1200*U*00401*"


@pytest.mark.parametrize(("head", "words"), [
    (b"", "empty"),
    ("ISA*00*".encode("utf-16"), "UTF-16"),
    ("ISA*00*          *00*".encode("utf-16-le"), "UTF-16"),
    (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML page"),
    (b"<?xml version='1.0'?><Order/>", "XML"),
    (b'{"error": "nope"}', "JSON"),
    (b"%PDF-1.7\n", "PDF"),
    (b"PK\x03\x04\x14\x00", "ZIP"),
    (bytes(range(256)), "binary"),
    (b"order,sku,qty\n1,A,2\n", "does not start with an ISA segment"),
])
def test_what_is_not_x12_is_named(head, words):
    assert words in describe_non_x12(head)


@pytest.mark.parametrize("head", [ISA, b"\xef\xbb\xbf" + ISA, b"\r\n  " + ISA])
def test_x12_with_a_bom_or_blanks_before_it_is_x12(head):
    assert describe_non_x12(head) is None


def _interchange() -> bytes:
    return (ISA + b"000000777*0*T*>~GS*SW*A*B*20261122*1200*777*X*004010~ST*997*0001~AK1*SW*1~AK9*A*1*1*1~"
            b"SE*4*0001~GE*1*777~IEA*1*000000777~")


def test_a_file_that_stops_before_its_iea_looks_unfinished():
    from gp_pipelines.edi.sniff import looks_unfinished

    whole = _interchange()
    assert not looks_unfinished(whole[:512], whole[-256:])
    assert not looks_unfinished(whole[:512], (whole + b"\r\n\r\n")[-256:])
    for cut in (len(whole) // 2, len(whole) - 1, len(whole) - 5):
        assert looks_unfinished(whole[:512], whole[:cut][-256:])
