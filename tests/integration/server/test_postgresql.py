"""Metadata on PostgreSQL, where several cloudfsd share one database:
their commits to one namespace get JIDs with no gap and no duplicate, in
the order a cursor reads them; a commit through one instance wakes the
long polls of another (NOTIFY), also after the listening connection was
lost; the schema is made by the first start and used by the next ones.
Run when the suite runs on PostgreSQL (CLOUDFS_TEST_META=postgresql)."""

import concurrent.futures
import threading
import time

import pytest

import cfs_postgres
from cfs_server import Server, file_op, waiting_longpoll, woken

pytestmark = pytest.mark.skipif(cfs_postgres.ENGINE != "postgresql",
                                reason="the suite runs on the embedded store")

WRITERS = 8
COMMITS = 12


@pytest.fixture
def second(server, tmp_path):
    """Another cloudfsd on the database of SERVER (its own data directory)."""
    s = Server(tmp_path / "data2", tmp_path / "cloudfsd2.log", meta=server.meta,
               blocks=server.blocks, env=server.env)
    s.database = server.database
    s.start()
    yield s
    s.stop()


def sql(server, query):
    return cfs_postgres.cluster().sql(server.database, query)


def test_two_instances_committing_at_once_leave_no_gap_and_no_duplicate_jid(
        server, second, alice):
    ns = alice.root_ns
    clients = [alice.clone(s.url) for s in (server, second) for _ in range(WRITERS // 2)]
    done = threading.Event()
    seen = set()

    def write(i):
        jids = []
        for k in range(COMMITS):
            (res,) = clients[i].commit_ok(ns, file_op(f"w{i}-{k}"))
            jids.append(res["jid"])
        return jids

    def read():
        # A cursor that skipped a row would never see that path.
        reader, cursor = alice.clone(second.url), 0
        while True:
            finished = done.is_set()
            entries, cursor = reader.list_all(ns, cursor)
            seen.update(e["path"] for e in entries)
            if finished:
                return cursor

    with concurrent.futures.ThreadPoolExecutor(WRITERS + 1) as pool:
        follower = pool.submit(read)
        try:
            writers = [pool.submit(write, i) for i in range(WRITERS)]
            jids = [j for f in writers for j in f.result()]
        finally:
            done.set()
        cursor = follower.result()

    total = WRITERS * COMMITS
    assert sorted(jids) == list(range(1, total + 1))
    assert [int(r[0]) for r in sql(server, f"SELECT jid FROM journal WHERE ns = {ns} ORDER BY jid")] \
        == list(range(1, total + 1))
    assert cursor == total == alice.head(ns)
    assert seen == {f"w{i}-{k}" for i in range(WRITERS) for k in range(COMMITS)}


def test_a_longpoll_on_one_instance_wakes_at_a_commit_through_the_other(
        server, second, alice):
    ns = alice.root_ns
    # Within a second: without NOTIFY it would wait for its 5 s recheck.
    with waiting_longpoll(alice.clone(second.url), {ns: 0}, timeout=30) as poll:
        alice.commit_ok(ns, file_op("a"))
        assert woken(poll) == {"changes": [{"ns": ns, "head": 1}], "gone": []}


def listeners(server):
    return sql(server, "SELECT pid FROM pg_stat_activity"
                       f" WHERE datname = '{server.database}' AND query LIKE 'LISTEN %'")


def test_a_lost_listening_connection_listens_again(server, second, alice):
    ns = alice.root_ns
    before = listeners(second)
    assert len(before) == 2  # one per instance
    sql(second, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = '{second.database}' AND query LIKE 'LISTEN %'")
    deadline = time.monotonic() + 10
    while len(now := listeners(second)) < 2 or set(map(tuple, now)) & set(map(tuple, before)):
        assert time.monotonic() < deadline, now
        time.sleep(0.1)
    with waiting_longpoll(alice.clone(second.url), {ns: 0}, timeout=30) as poll:
        alice.commit_ok(ns, file_op("after"))
        assert woken(poll) == {"changes": [{"ns": ns, "head": 1}], "gone": []}
    assert "lost the metadata store's notifications" in second.log_text()


def test_the_first_start_makes_the_schema_and_the_next_use_it(tmp_path):
    name = cfs_postgres.cluster().new_database()
    url = cfs_postgres.cluster().url(name)
    # Two at once on the new database: one makes the schema, the other
    # waits for it and finds it made.
    servers = [Server(tmp_path / f"data{i}", tmp_path / f"cloudfsd{i}.log", meta=url)
               for i in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(s.start) for s in servers]:
            f.result()
    try:
        logs = "".join(s.log_text() for s in servers)
        assert logs.count("schema upgraded from version 0 to 3") == 1, logs
        assert cfs_postgres.cluster().sql(name, "SELECT version FROM schema_version") == [["3"]]
        alice = servers[0].user("alice")
        alice.commit_ok(alice.root_ns, file_op("kept"))
    finally:
        for s in servers:
            s.stop()
    servers[0].start()
    try:
        assert "schema upgraded" not in servers[0].log_text().split("--- run 2")[1]
        again = alice.clone(servers[0].url)
        assert list(again.snapshot(alice.root_ns)[0]) == ["kept"]
    finally:
        servers[0].stop()
