"""Many writers of one SQLite file (real SQLite, WAL): each write transaction commits in turn, none is
lost or fails with "database is locked", and one that waits past the busy timeout is a clear 503."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from backendai_hub.db import Database
from backendai_hub.errors import ServiceUnavailable


@pytest.fixture
def db(tmp_path):
    d = Database(url=f"sqlite:///{tmp_path / 'w.sqlite'}", crypt_key_file=str(tmp_path / "key"),
                 busy_timeout_ms=2000)
    with d.session() as s:
        s.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        s.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield d
    d.dispose()


def test_threads_writing_in_a_loop_all_commit_within_the_busy_timeout(db):
    # each thread writes back to back: without turns, the thread that just committed takes SQLite's lock
    # again at once while the others sleep in SQLite's busy handler, and they starve past 2 s
    threads, writes, hold = 16, 6, 0.02  # 1.9 s of work in all, one writer at a time

    def writer(_):
        for _ in range(writes):
            with db.session() as s:
                n = s.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                time.sleep(hold)  # a transaction that does some work between its read and its write
                s.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, range(threads)))  # any "database is locked" is raised here
    with db.session(readonly=True) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == threads * writes  # none lost


def test_a_writer_waiting_past_the_busy_timeout_gets_a_503_and_changes_nothing(db):
    db.busy_timeout_ms = 300
    held, done = threading.Event(), threading.Event()

    def long_writer():
        with db.session() as s:
            s.execute(text("UPDATE counter SET n = 100 WHERE id = 1"))
            held.set()
            done.wait(10)

    t = threading.Thread(target=long_writer)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(ServiceUnavailable) as err:
            with db.session() as s:
                s.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))
        assert err.value.status == 503 and "busy with other writers" in err.value.message
        with db.session(readonly=True) as s:  # readers never wait for writers (WAL)
            assert s.execute(text("SELECT n FROM counter")).scalar_one() == 0
    finally:
        done.set()
        t.join()
    with db.session(readonly=True) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 100
