"""Per-partner control numbers in PostgreSQL (embedded server, a database of this module's own)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from gp_pipelines.edi.control_numbers import PostgresControlNumbers, allocate, ensure_table, set_last
from gp_pipelines.edi.writer import EnvelopeSettings, read_documents, write_interchange
from tests.edi.helpers import single
from tests.edi.test_models_writer import model_of


def test_numbers_count_per_partner_and_kind(db):
    ensure_table(db)
    assert [allocate(db, "acme", "ISA") for _ in range(3)] == [1, 2, 3]
    assert allocate(db, "acme", "GS") == 1
    assert allocate(db, "other", "ISA") == 1
    assert allocate(db, "acme", "ISA") == 4
    with pytest.raises(ValueError):
        allocate(db, "acme", "XX")


def test_wraps_after_999999999(db):
    ensure_table(db)
    set_last(db, "wrap", "ST", 999_999_998)
    assert [allocate(db, "wrap", "ST") for _ in range(3)] == [999_999_999, 1, 2]


def test_table_is_created_when_missing(module_database_url):
    numbers = PostgresControlNumbers("fresh", module_database_url)
    assert numbers.next_number("GS") == 1
    with psycopg.connect(module_database_url) as conn:
        assert conn.execute("SELECT to_regclass('automation.edi_control_numbers')").fetchone()[0] is not None


def test_concurrent_allocation_never_repeats(module_database_url):
    PostgresControlNumbers("busy", module_database_url).next_number("ISA")
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with psycopg.connect(module_database_url, autocommit=True) as conn:
            for _ in range(25):
                number = allocate(conn, "busy", "ISA")
                with lock:
                    seen.append(number)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(2, 102))


def test_numbers_roll_back_with_the_callers_transaction(module_database_url):
    with psycopg.connect(module_database_url) as conn:
        numbers = PostgresControlNumbers("txn", conn)
        assert numbers.next_number("ISA") == 1
        conn.rollback()
        assert numbers.next_number("ISA") == 1
        conn.commit()


def test_writer_uses_the_partner_sequence(module_database_url):
    numbers = PostgresControlNumbers("writer", module_database_url)
    settings = EnvelopeSettings(sender_id="ME", receiver_id="PARTNER")
    order = model_of(single("850"))
    first = write_interchange([order], settings, numbers)
    second = write_interchange([order, order], settings, numbers)
    assert "*000000001*0*P*>~" in first and "*000000002*0*P*>~" in second
    assert "ST*850*0002~" in second and "ST*850*0003~" in second
    assert read_documents(second.encode()) == [order, order]
