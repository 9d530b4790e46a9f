"""Order locks: one holder at a time across sessions, bounded waits, always released."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from gp_pipelines.automation.locks import (
    LockBusyError,
    OrderLockedError,
    advisory_lock,
    lock_held_elsewhere,
    order_lock,
    order_lock_name,
)


@pytest.fixture
def other(module_database_url):
    """A second session: another worker, process or pod."""
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        yield conn


def test_a_second_holder_is_excluded_until_the_first_releases(db, other):
    with order_lock(db, "au", "sale-1", wait_seconds=0) as held:
        assert held
        with order_lock(other, "au", "sale-1", wait_seconds=0) as second:
            assert not second
        assert lock_held_elsewhere(other, order_lock_name("au", "sale-1"))
        with order_lock(other, "au", "sale-2", wait_seconds=0) as another_order:
            assert another_order
        with order_lock(other, "nz", "sale-1", wait_seconds=0) as same_id_other_instance:
            assert same_id_other_instance
    with order_lock(other, "au", "sale-1", wait_seconds=0) as after_release:
        assert after_release
    assert not lock_held_elsewhere(other, order_lock_name("au", "sale-1"))


def test_a_bounded_wait_times_out_and_leaves_the_session_settings_alone(db, other):
    with order_lock(db, "au", "sale-1"):
        started = time.monotonic()
        with order_lock(other, "au", "sale-1", wait_seconds=0.3) as held:
            waited = time.monotonic() - started
            assert not held
        assert 0.25 <= waited < 3
        assert other.execute("SHOW lock_timeout").fetchone()[0] == "0"
        with (
            pytest.raises(OrderLockedError) as raised,
            order_lock(other, "au", "sale-1", raise_if_busy=True, wait_seconds=0),
        ):
            pass
        assert (raised.value.instance, raised.value.sale_id) == ("au", "sale-1")
        assert isinstance(raised.value, LockBusyError)


def test_a_waiter_gets_the_lock_when_the_holder_releases(db, other):
    entered = threading.Event()

    def holder() -> None:
        with order_lock(db, "au", "sale-1"):
            entered.set()
            time.sleep(0.2)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(5)
    with order_lock(other, "au", "sale-1", wait_seconds=None) as held:  # waits as long as it takes
        assert held
    thread.join(5)
    with order_lock(other, "au", "sale-1", wait_seconds=5) as held_again:
        assert held_again


def test_released_when_the_block_raises_or_the_session_ends(db, other, module_database_url):
    with pytest.raises(RuntimeError), advisory_lock(db, "gp.file.tpl.945_1.x12"):
        raise RuntimeError("processing failed")
    with advisory_lock(other, "gp.file.tpl.945_1.x12", wait_seconds=0) as held:
        assert held

    dying = psycopg.connect(module_database_url, autocommit=True)
    with advisory_lock(dying, "gp.file.tpl.945_2.x12") as held:
        assert held
        dying.close()  # the worker died: its session and its locks go with it
    with advisory_lock(other, "gp.file.tpl.945_2.x12", wait_seconds=2) as held:
        assert held


def test_locks_need_an_autocommit_session_and_a_sane_wait(db, module_database_url):
    with (
        psycopg.connect(module_database_url) as in_transactions,
        pytest.raises(ValueError, match="autocommit"),
        order_lock(in_transactions, "au", "sale-1"),
    ):
        pass
    with pytest.raises(ValueError, match="wait_seconds"), advisory_lock(db, "gp.file.x", wait_seconds=-1):
        pass
