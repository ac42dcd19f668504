"""What the server acknowledged survives a restart, a clean one (SIGTERM)
or a crash (kill -9); one data directory has one server."""

import os
import sqlite3
import subprocess
import time

import pytest

from cfs_server import (BLOCK_SIZE, CLOUDFSD, block_id, dir_blocks_only, file_op, split_blocks,
                        waiting_longpoll)

BIG = os.urandom(BLOCK_SIZE + 1000)


def fill(alice):
    """Commits a bit of everything; returns what a restart must keep:
    the snapshot (with head) and the bytes of every file."""
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "docs", "mode": 0o700},
                    {"op": "dir", "path": "many"},
                    {"op": "symlink", "path": "docs/link", "target": "../big.bin"},
                    file_op("gone.txt"))
    files = {"big.bin": BIG, "docs/a.txt": b"a" * 100, "script.sh": b"#!/bin/sh\n"}
    for path, data in files.items():
        alice.write_file(ns, path, data, mode=0o755 if path.endswith(".sh") else 0o644)
    alice.commit_ok(ns, {"op": "delete", "path": "gone.txt"},
                    {"op": "move", "path": "docs/a.txt", "to": "docs/b.txt"})
    files["docs/b.txt"] = files.pop("docs/a.txt")
    for i in range(30):
        data = f"small file {i}".encode()
        alice.write_file(ns, f"many/{i}", data)
        files[f"many/{i}"] = data
    alice.upload(b"uploaded, never committed")
    return alice.snapshot(ns), files


def assert_kept(alice, snapshot, files):
    ns = alice.root_ns
    assert alice.snapshot(ns) == snapshot
    for path, data in files.items():
        blocks = snapshot[0][path]["blocks"]
        assert blocks == [block_id(b) for b in split_blocks(data)]
        assert b"".join(alice.download(b).body for b in blocks) == data
    assert alice.need([block_id(b"uploaded, never committed")]) == []
    (res,) = alice.commit_ok(ns, file_op("after-restart"))
    assert res["jid"] == snapshot[1] + 1


def test_what_was_acknowledged_before_sigterm_is_there_after_restart(server, alice):
    snapshot, files = fill(alice)
    server.stop()
    server.start()
    assert_kept(alice.clone(server.url), snapshot, files)


def test_what_was_acknowledged_before_kill_9_is_there_after_restart(server, alice):
    snapshot, files = fill(alice)
    server.kill9()
    server.start()
    assert_kept(alice.clone(server.url), snapshot, files)


# What schema version 6 added: hard links.
DROP_LINKS = (" DROP INDEX nodes_by_link; ALTER TABLE journal DROP COLUMN link_of;"
              " ALTER TABLE nodes DROP COLUMN link_of;")

# What schema version 5 added: atime and ctime, kept apart from mtime.
DROP_TIMES = DROP_LINKS + "".join(f" ALTER TABLE {t} DROP COLUMN {c};"
                                  for t in ("journal", "nodes")
                                  for c in ("atime_ns", "ctime_ns"))


# What schema version 7 added: pending block lists (streaming sync).
DROP_PENDING = " DROP TABLE pending; DROP TABLE pending_blocks; DROP TABLE pending_seq;"


def times_from_mtime(snapshot):
    """SNAPSHOT as a store from before version 5 shows it: each entry's
    atime and ctime are its mtime, the best guess of both."""
    entries, head = snapshot
    return {p: {**e, "atime_ns": e["mtime_ns"], "ctime_ns": e["mtime_ns"]}
            for p, e in entries.items()}, head


@pytest.mark.embedded_only("upgrades of the SQLite schema")
def test_a_data_dir_of_schema_5_keeps_everything_and_takes_links(server, alice):
    snapshot, files = fill(alice)
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    db.executescript(DROP_PENDING + DROP_LINKS + " PRAGMA user_version = 5;")
    db.close()
    server.start()
    alice = alice.clone(server.url)
    assert_kept(alice, snapshot, files)
    path = next(p for p, e in snapshot[0].items() if e["kind"] == "file")
    alice.commit_ok(alice.root_ns, {"op": "link", "path": path, "to": "second name"})
    e = alice.snapshot(alice.root_ns)[0]["second name"]
    assert (e["kind"], e["of"]) == ("link", snapshot[0][path]["node"])


# Queries of every delete (server/meta_sql_tree.c, meta_sql_commit.c):
# a node's other names, whether a folder has children, a subtree.
LINKS_OF = "SELECT node FROM nodes WHERE ns = ?1 AND kind = 9 AND link_of = ?2 ORDER BY node"
CHILD = "SELECT 1 FROM nodes WHERE ns = ?1 AND parent = ?2 AND kind != 0 LIMIT 1"
SUBTREE = ("WITH RECURSIVE sub(node, depth) AS ("
           " SELECT node, 1 FROM nodes WHERE ns = ?1 AND parent = ?2 AND kind != 0"
           " UNION ALL SELECT n.node, sub.depth + 1 FROM nodes n JOIN sub"
           "  ON n.parent = sub.node WHERE n.ns = ?1 AND n.kind != 0) "
           "SELECT node FROM sub ORDER BY depth, node")

# What a folder's delete asks of its subtree (sq_subtree_drop, newest_within).
SUBTREE_CTE = SUBTREE[:SUBTREE.index("SELECT node FROM sub ORDER")]
LINKED = (SUBTREE_CTE + "SELECT n.node FROM nodes n JOIN sub ON n.ns = ?1 AND n.node = sub.node"
          " WHERE n.kind NOT IN (0, 2, 4, 9) AND EXISTS (SELECT 1 FROM nodes l"
          " WHERE l.ns = ?1 AND l.kind = 9 AND l.link_of = n.node)")
NEWEST = (SUBTREE_CTE + "SELECT COALESCE(MAX(n.jid), 0) FROM nodes n JOIN sub"
          " ON n.ns = ?1 AND n.node = sub.node")
STATS_8 = {("nodes", "nodes"): "1000000 100000 1",
           ("nodes", "nodes_by_name"): "1000000 100000 10 1",
           ("nodes", "nodes_by_jid"): "1000000 100000 1",
           ("journal", "journal"): "10000000 1000000 1",
           ("journal", "journal_by_node"): "10000000 1000000 10 1"}


def plans(db):
    return [" ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + q, (1, 2)))
            for q in (LINKS_OF, CHILD, SUBTREE)]


@pytest.mark.embedded_only("upgrades of the SQLite schema")
def test_a_data_dir_of_schema_7_finds_children_and_links_by_index_not_by_a_scan(
        server, alice):
    """Without statistics, SQLite's planner preferred a walk of the whole
    namespace to the indexes on (ns, parent) and (ns, link_of): every
    delete read every node.  Version 8 tells it the tables' shape."""
    snapshot, files = fill(alice)
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    db.executescript(" DROP INDEX nodes_by_link; DROP TABLE sqlite_stat1;"
                     " CREATE INDEX nodes_by_link ON nodes(ns, link_of) WHERE kind = 9;"
                     " PRAGMA user_version = 7;")
    db.close()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    # What version 7 did: walk the namespace.
    assert all(p == "SEARCH nodes USING PRIMARY KEY (ns=?)" for p in plans(db)[:2]), plans(db)
    db.close()
    server.start()
    alice = alice.clone(server.url)
    assert_kept(alice, snapshot, files)
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    links, child, subtree = plans(db)
    assert "INDEX nodes_by_link (ns=? AND kind=? AND link_of=?)" in links
    assert "INDEX nodes_by_name (ns=? AND parent=?)" in child
    assert subtree.count("INDEX nodes_by_name (ns=? AND parent=?)") == 2, subtree
    db.close()
    alice.commit_ok(alice.root_ns, {"op": "link", "path": "script.sh", "to": "again.sh"},
                    {"op": "delete", "path": "script.sh"})
    e = alice.snapshot(alice.root_ns)[0]["again.sh"]
    assert (e["kind"], e["node"]) == ("file", snapshot[0]["script.sh"]["node"])


@pytest.mark.embedded_only("upgrades of the SQLite schema")
def test_a_data_dir_of_schema_8_walks_a_subtree_without_scanning_the_namespace(
        server, alice):
    """Version 8's statistics made SQLite build a Bloom filter, from a
    scan of every node, at each step of a subtree walk: every folder
    deleted read the whole namespace.  Version 9 says a namespace may hold
    a billion nodes, and the walks go by index alone."""
    snapshot, files = fill(alice)
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    for (tbl, idx), stat in STATS_8.items():
        db.execute("UPDATE sqlite_stat1 SET stat = ? WHERE tbl = ? AND idx = ?", (stat, tbl, idx))
    db.execute("PRAGMA user_version = 8")
    db.commit()
    db.close()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    before = [" ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + q, (1, 2)))
              for q in (SUBTREE, LINKED, NEWEST)]
    db.close()
    assert all("BLOOM FILTER" in p for p in before), before  # what version 8 did
    server.start()
    alice = alice.clone(server.url)
    assert_kept(alice, snapshot, files)
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    after = [" ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + q, (1, 2)))
             for q in (SUBTREE, LINKED, NEWEST)]
    db.close()
    for p in after:
        assert "BLOOM FILTER" not in p and "SCAN nodes" not in p, after
        assert "INDEX nodes_by_name (ns=? AND parent=?)" in p, after


@pytest.mark.embedded_only("upgrades of the SQLite schema")
def test_a_data_dir_of_schema_4_gets_atime_and_ctime_from_mtime(server, alice):
    snapshot, files = fill(alice)
    alice.write_file(alice.root_ns, "timed", b"t", atime_ns=5, mtime_ns=7, ctime_ns=9)
    snapshot = alice.snapshot(alice.root_ns)
    files["timed"] = b"t"
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    db.executescript(DROP_PENDING + DROP_TIMES + " PRAGMA user_version = 4;")
    db.close()
    server.start()
    alice = alice.clone(server.url)
    migrated = times_from_mtime(snapshot)
    assert migrated[0]["timed"]["atime_ns"] == migrated[0]["timed"]["ctime_ns"] == 7
    assert_kept(alice, migrated, files)
    alice.write_file(alice.root_ns, "timed", b"t2", atime_ns=11, mtime_ns=12, ctime_ns=13,
                     base_jid=migrated[0]["timed"]["jid"])
    e = alice.snapshot(alice.root_ns)[0]["timed"]
    assert (e["atime_ns"], e["mtime_ns"], e["ctime_ns"]) == (11, 12, 13)


@pytest.mark.embedded_only("upgrades of the SQLite schema")
def test_a_data_dir_of_the_first_schema_is_brought_up_to_date(server, alice):
    """A store from before the server kept answers for clients that send
    a batch again, and times for garbage collection (schema version 1)
    opens, keeps everything, and answers such a batch as it was
    applied."""
    snapshot, files = fill(alice)
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
    db.executescript("DROP TABLE answers; DROP INDEX journal_by_node;"
                     " DROP TABLE gc_horizon; ALTER TABLE journal DROP COLUMN at;"
                     " ALTER TABLE blocks DROP COLUMN stored;"
                     + DROP_PENDING + DROP_TIMES + " PRAGMA user_version = 1;")
    db.close()
    server.start()
    alice = alice.clone(server.url)
    assert_kept(alice, times_from_mtime(snapshot), files)
    batch = {"ops": [{"op": "dir", "path": "new", "seq": 1}], "client": "c1"}
    first = alice.post(f"/meta/ns/{alice.root_ns}/commit", batch)
    again = alice.post(f"/meta/ns/{alice.root_ns}/commit", batch)
    assert first.status == again.status == 200
    assert first.json["results"] == again.json["results"]
    assert first.json["results"][0]["status"] == "committed"
    assert alice.head(alice.root_ns) == snapshot[1] + 2  # assert_kept wrote one


def test_a_cursor_from_before_a_restart_lists_what_changed_after_it(server, alice):
    alice.commit_ok(alice.root_ns, file_op("a"), file_op("b"))
    server.kill9()
    server.start()
    alice = alice.clone(server.url)
    (res,) = alice.commit_ok(alice.root_ns, file_op("c"))
    entries, cursor = alice.list_all(alice.root_ns, 2)
    assert [(e["path"], e["jid"]) for e in entries] == [("c", 3)] and cursor == 3


@pytest.mark.embedded_only("servers on PostgreSQL share their metadata by design")
def test_a_second_server_on_the_same_data_dir_is_refused(server, alice):
    alice.commit_ok(alice.root_ns, file_op("a"))
    p = subprocess.run([CLOUDFSD, "serve", "--data", server.data_dir,
                        "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p
    assert p.stderr.strip()
    assert alice.get("/").status == 200
    assert alice.head(alice.root_ns) == 1


@dir_blocks_only("looks for block files")
@pytest.mark.embedded_only("the data directory holds no meta.db")
def test_the_data_dir_holds_meta_db_and_blocks(server, alice):
    alice.write_file(alice.root_ns, "f", b"some bytes")
    assert os.path.isfile(os.path.join(server.data_dir, "meta.db"))
    blocks = os.path.join(server.data_dir, "blocks")
    assert os.path.isdir(blocks)
    stored = [os.path.join(d, f) for d, _, fs in os.walk(blocks) for f in fs]
    assert any(open(p, "rb").read() == b"some bytes" for p in stored), stored


def test_a_waiting_longpoll_does_not_hold_up_a_clean_stop(server, alice):
    with waiting_longpoll(alice, {alice.root_ns: 0}, timeout=60) as poll:
        t0 = time.monotonic()
        server.stop()
        took = time.monotonic() - t0
        failure = poll.exception(timeout=10)
    print(f"stopped in {took:.2f} s; the poll got {failure or poll.result()}")
    assert took < 5.0
    if failure is None:  # else the stopping server closed the connection
        r = poll.result()
        assert r.status == 503 and r.error_code == "unavailable", r
    server.start()
