"""POST /meta/ns/NS/commit: every operation, the two-phase sequence,
conflicts, idempotence and batches."""

import os
import time

import pytest

from cfs_server import (BLOCK_SIZE, assert_error, assert_op_error, block_id, file_op, result_of,
                        split_blocks, unchanged)


def assert_op_refused(client, ns, op, code):
    """OP is refused with CODE and changes nothing, whether the server
    refuses the whole batch (400) or answers the operation's error."""
    with unchanged(client, ns):
        r = client.commit(ns, op)
        if r.status == 200:
            res = r.json["results"][0]
            assert res["status"] == "error" and res["error"]["code"] == code, r
        else:
            assert r.status == 400 and r.error_code == code, r


def entry(client, ns, path):
    return client.snapshot(ns)[0][path]


# -- file ---------------------------------------------------------------

def test_a_file_commit_asks_for_missing_blocks_then_commits(alice):
    ns = alice.root_ns
    data = os.urandom(2 * BLOCK_SIZE + 100)
    blocks = split_blocks(data)
    alice.upload(blocks[1])
    op = file_op("big.bin", data)
    with unchanged(alice, ns):
        res = result_of(alice, ns, op)
    assert res["status"] == "need_blocks"
    assert sorted(res["blocks"]) == sorted([block_id(blocks[0]), block_id(blocks[2])])
    for b in (blocks[0], blocks[2]):
        assert alice.upload(b).status == 200
    res = result_of(alice, ns, op)
    assert res["status"] == "committed" and res["jid"] == 1
    e = entry(alice, ns, "big.bin")
    assert (e["size"], e["blocks"], e["node"]) == (len(data), op["blocks"], res["node"])
    got = b"".join(alice.download(b).body for b in e["blocks"])
    assert got == data


def test_an_empty_file_has_no_block(alice):
    res = result_of(alice, alice.root_ns, file_op("empty"))
    assert res["status"] == "committed"
    e = entry(alice, alice.root_ns, "empty")
    assert (e["kind"], e["size"], e["blocks"]) == ("file", 0, [])


def test_defaults_are_mode_0644_and_the_servers_clock(alice):
    before = time.time_ns()
    alice.write_file(alice.root_ns, "f", b"x")
    after = time.time_ns()
    e = entry(alice, alice.root_ns, "f")
    assert e["mode"] == 0o644
    assert before - 5 * 10**9 <= e["mtime_ns"] <= after + 5 * 10**9
    assert e["atime_ns"] == e["mtime_ns"] == e["ctime_ns"]


def test_a_commit_without_atime_and_ctime_takes_the_mtime_and_the_commit_time(alice):
    ns = alice.root_ns
    before = time.time_ns()
    alice.commit_ok(ns, file_op("f", mtime_ns=1_000_000_007),
                    {"op": "dir", "path": "d", "mtime_ns": 3},
                    {"op": "fifo", "path": "p", "mtime_ns": 4})
    after = time.time_ns()
    for path, mtime in (("f", 1_000_000_007), ("d", 3), ("p", 4)):
        e = entry(alice, ns, path)
        assert (e["atime_ns"], e["mtime_ns"]) == (mtime, mtime), e
        assert before <= e["ctime_ns"] <= after, e


def test_atime_mtime_and_ctime_are_kept_apart_to_the_nanosecond_per_version(alice):
    ns = alice.root_ns
    versions = [(b"v1", 1_000_000_000_123_456_781, 1_000_000_000_123_456_789,
                 1_795_372_644_002_787_903),
                (b"v1", 1_795_372_644_002_787_999, 1_000_000_000_123_456_789,
                 1_795_372_644_002_788_000),
                (b"v1", -5, -7, 9)]
    base = 0
    for data, atime, mtime, ctime in versions:
        res = alice.write_file(ns, "f", data, atime_ns=atime, mtime_ns=mtime, ctime_ns=ctime,
                               base_jid=base)
        e = entry(alice, ns, "f")
        assert (e["jid"], e["atime_ns"], e["mtime_ns"], e["ctime_ns"]) == \
            (res["jid"], atime, mtime, ctime)
        base = res["jid"]
    assert alice.head(ns) == 3
    (res,) = alice.commit_ok(ns, {"op": "dir", "path": "d", "atime_ns": 1, "mtime_ns": 2,
                                  "ctime_ns": 3})
    (again,) = alice.commit_ok(ns, {"op": "dir", "path": "d", "atime_ns": 1, "mtime_ns": 2,
                                    "ctime_ns": 4})
    assert again["jid"] == res["jid"] + 1
    assert entry(alice, ns, "d")["ctime_ns"] == 4


@pytest.mark.parametrize("field", ["atime_ns", "ctime_ns"])
@pytest.mark.parametrize("value", ["1", 1.5])
def test_a_time_that_is_not_a_64_bit_integer_is_bad_field(alice, field, value):
    assert_op_refused(alice, alice.root_ns, file_op("f", **{field: value}), "bad_field")


def test_mode_and_mtime_are_kept_per_version(alice):
    ns = alice.root_ns
    versions = [(b"v1", 0o644, 1_000_000_000_123_456_789),
                (b"v2 run me", 0o755, 1_795_372_644_002_787_903),
                (b"v3", 0o600, 5)]
    base = 0
    for data, mode, mtime in versions:
        res = alice.write_file(ns, "script", data, mode=mode, mtime_ns=mtime, base_jid=base)
        e = entry(alice, ns, "script")
        assert (e["jid"], e["mode"], e["mtime_ns"], e["size"]) == \
            (res["jid"], mode, mtime, len(data))
        base = res["jid"]
    assert alice.head(ns) == 3


@pytest.mark.parametrize("given, kept", [(0o4755, 0o755), (0o2750, 0o750),
                                         (0o1777, 0o777), (0, 0)])
def test_set_id_and_sticky_bits_are_dropped(alice, given, kept):
    alice.commit_ok(alice.root_ns, file_op("f", mode=given),
                    {"op": "dir", "path": "d", "mode": given})
    assert entry(alice, alice.root_ns, "f")["mode"] == kept
    assert entry(alice, alice.root_ns, "d")["mode"] == kept


def test_a_stale_base_jid_is_a_conflict_with_the_current_jid_and_changes_nothing(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"one")
    second = alice.write_file(ns, "f", b"two", base_jid=first["jid"])
    for stale in (0, first["jid"]):
        with unchanged(alice, ns):
            res = alice.commit(ns, file_op("f", b"three", base_jid=stale)).json["results"][0]
        assert (res["status"], res["jid"]) == ("conflict", second["jid"]), res
    assert alice.download(block_id(b"two")).status == 200
    assert entry(alice, ns, "f")["blocks"] == [block_id(b"two")]


def test_a_base_jid_for_a_path_that_holds_nothing_is_a_conflict(alice):
    alice.write_file(alice.root_ns, "other", b"x")
    with unchanged(alice, alice.root_ns):
        res = result_of(alice, alice.root_ns, file_op("new", b"x", base_jid=1))
    assert res["status"] == "conflict" and res["jid"] == 0, res


def test_recommitting_the_same_content_with_a_stale_base_adds_no_row(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"same", mtime_ns=10)
    alice.write_file(ns, "other", b"x")
    head = alice.head(ns)
    for op in (file_op("f", b"same", mtime_ns=10, base_jid=0),
               file_op("f", b"same", mtime_ns=99, base_jid=0),
               file_op("f", b"same", mtime_ns=10, base_jid=first["jid"])):
        r = alice.commit(ns, op)
        assert r.json["results"] == [{"status": "committed", "jid": first["jid"],
                                      "node": first["node"]}], (op, r)
        assert r.json["head"] == head
    assert alice.head(ns) == head


def test_a_file_sent_again_with_its_times_adds_no_row(alice):
    ns = alice.root_ns
    op = file_op("f", b"same", atime_ns=1, mtime_ns=2, ctime_ns=3)
    first = alice.write_file(ns, "f", b"same", atime_ns=1, mtime_ns=2, ctime_ns=3)
    for again in (op, file_op("f", b"same", atime_ns=1, mtime_ns=2)):
        r = alice.commit(ns, {**again, "base_jid": first["jid"]})
        assert r.json["results"][0]["jid"] == first["jid"], r
    assert alice.head(ns) == first["jid"]


@pytest.mark.parametrize("changed", [{"atime_ns": 9}, {"ctime_ns": 9}])
def test_the_same_content_with_a_new_atime_or_ctime_is_a_new_version(alice, changed):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"same", atime_ns=1, mtime_ns=2, ctime_ns=3)
    times = {"atime_ns": 1, "mtime_ns": 2, "ctime_ns": 3, **changed}
    second = alice.write_file(ns, "f", b"same", base_jid=first["jid"], **times)
    assert second["jid"] == first["jid"] + 1
    e = entry(alice, ns, "f")
    assert {k: e[k] for k in times} == times


def test_the_same_content_with_a_new_mtime_is_a_new_version(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"same", mtime_ns=10)
    second = alice.write_file(ns, "f", b"same", mtime_ns=20, base_jid=first["jid"])
    assert second["jid"] == first["jid"] + 1 and second["node"] == first["node"]
    assert entry(alice, ns, "f")["mtime_ns"] == 20


def test_a_file_and_a_symlink_replace_each_other(alice):
    ns = alice.root_ns
    link = result_of(alice, ns, {"op": "symlink", "path": "x", "target": "t"})
    f = alice.write_file(ns, "x", b"data", base_jid=link["jid"])
    assert entry(alice, ns, "x")["kind"] == "file"
    link2 = result_of(alice, ns, {"op": "symlink", "path": "x", "target": "u",
                                  "base_jid": f["jid"]})
    assert link2["status"] == "committed"
    e = entry(alice, ns, "x")
    assert (e["kind"], e["target"], e["jid"]) == ("symlink", "u", link2["jid"])


def test_a_file_over_a_directory_is_is_a_directory(alice):
    ns = alice.root_ns
    (d,) = alice.commit_ok(ns, {"op": "dir", "path": "d"})
    assert_op_error(alice, ns, file_op("d", base_jid=d["jid"]), "is_a_directory")
    assert_op_error(alice, ns, file_op("d"), "is_a_directory")


def test_a_missing_parent_is_not_found_and_a_file_parent_not_a_directory(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, file_op("f"))
    assert_op_error(alice, ns, file_op("nodir/f"), "not_found")
    assert_op_error(alice, ns, file_op("f/g"), "not_a_directory")
    assert_op_error(alice, ns, {"op": "dir", "path": "f/d"}, "not_a_directory")


def test_blocks_that_do_not_add_up_to_the_size_are_bad_field(alice):
    ns = alice.root_ns
    alice.upload(b"hello")
    alice.upload(b"x" * BLOCK_SIZE)
    alice.upload(b"y" * 10)
    op = file_op("f", b"hello")
    assert_op_refused(alice, ns, {**op, "size": 4}, "bad_field")
    short_first = {"op": "file", "path": "g", "size": 5 + BLOCK_SIZE,
                   "blocks": [block_id(b"hello"), block_id(b"x" * BLOCK_SIZE)]}
    assert_op_refused(alice, ns, short_first, "bad_field")
    long_last = {"op": "file", "path": "g", "size": BLOCK_SIZE + 4,
                 "blocks": [block_id(b"x" * BLOCK_SIZE), block_id(b"y" * 10)]}
    assert_op_refused(alice, ns, long_last, "bad_field")
    ok = {"op": "file", "path": "h", "size": BLOCK_SIZE + 10,
          "blocks": [block_id(b"x" * BLOCK_SIZE), block_id(b"y" * 10)]}
    assert result_of(alice, ns, ok)["status"] == "committed"


# -- symlink ------------------------------------------------------------

def test_a_symlink_keeps_its_target_and_has_mode_0777(alice):
    ns = alice.root_ns
    target = "../some where/\u00fc/" + "t" * 4079
    assert len(target.encode()) == 4096
    alice.commit_ok(ns, {"op": "symlink", "path": "l", "target": target, "mode": 0o600})
    e = entry(alice, ns, "l")
    assert (e["kind"], e["target"], e["mode"]) == ("symlink", target, 0o777)


# -- special files ------------------------------------------------------

def test_fifos_sockets_and_devices_are_entries_with_their_mode_and_device(alice):
    ns = alice.root_ns
    made = alice.commit_ok(ns, {"op": "fifo", "path": "p", "mode": 0o640, "mtime_ns": 5},
                           {"op": "socket", "path": "s"},
                           {"op": "chardev", "path": "c", "target": "4294967295:0"},
                           {"op": "blockdev", "path": "b", "target": "8:1", "mode": 0o4660})
    got = [entry(alice, ns, p) for p in ("p", "s", "c", "b")]
    assert [(e["kind"], e["mode"], e["size"], e.get("target"), e["jid"]) for e in got] == [
        ("fifo", 0o640, 0, None, made[0]["jid"]), ("socket", 0o644, 0, None, made[1]["jid"]),
        ("chardev", 0o644, 0, "4294967295:0", made[2]["jid"]),
        ("blockdev", 0o660, 0, "8:1", made[3]["jid"])]
    assert got[0]["mtime_ns"] == 5
    # The same again is no new version; another device number is one.
    (same,) = alice.commit_ok(ns, {"op": "blockdev", "path": "b", "target": "8:1", "mode": 0o660,
                                   "base_jid": made[3]["jid"], "mtime_ns": got[3]["mtime_ns"]})
    assert same["jid"] == made[3]["jid"]
    (other,) = alice.commit_ok(ns, {"op": "blockdev", "path": "b", "target": "8:2", "mode": 0o660,
                                    "base_jid": made[3]["jid"]})
    assert other["jid"] > made[3]["jid"] and entry(alice, ns, "b")["target"] == "8:2"
    # A FIFO over a folder is refused as a file would be.
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    assert_op_refused(alice, ns, {"op": "fifo", "path": "d"}, "is_a_directory")


# -- dir ----------------------------------------------------------------

def test_dir_creates_a_directory_and_sets_an_existing_ones_mode_and_mtime(alice):
    ns = alice.root_ns
    (made,) = alice.commit_ok(ns, {"op": "dir", "path": "d"})
    e = entry(alice, ns, "d")
    assert (e["kind"], e["mode"], e["node"]) == ("dir", 0o755, made["node"])
    (again,) = alice.commit_ok(ns, {"op": "dir", "path": "d", "mode": 0o700, "mtime_ns": 42})
    e = entry(alice, ns, "d")
    assert (e["node"], e["mode"], e["mtime_ns"], e["jid"]) == (made["node"], 0o700, 42, again["jid"])


def test_dir_over_a_file_or_symlink_is_exists(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, file_op("f"), {"op": "symlink", "path": "l", "target": "f"})
    assert_op_error(alice, ns, {"op": "dir", "path": "f"}, "exists")
    assert_op_error(alice, ns, {"op": "dir", "path": "l"}, "exists")


# -- delete -------------------------------------------------------------

def test_delete_removes_a_file_as_one_deleted_row(alice):
    ns = alice.root_ns
    (f,) = alice.commit_ok(ns, file_op("f"))
    (d,) = alice.commit_ok(ns, {"op": "delete", "path": "f"})
    assert d["jid"] == f["jid"] + 1
    assert alice.list_all(ns, f["jid"])[0] == [
        {"node": f["node"], "parent": 0, "name": "f", "path": "f", "kind": "deleted",
         "jid": d["jid"]}]
    assert "f" not in alice.snapshot(ns)[0]


def test_deleting_a_missing_path_is_not_found(alice):
    assert_op_error(alice, alice.root_ns, {"op": "delete", "path": "nothing"}, "not_found")


def test_deleting_a_non_empty_directory_needs_recursive(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"}, {"op": "dir", "path": "e"},
                    file_op("d/f"))
    assert_op_error(alice, ns, {"op": "delete", "path": "d"}, "not_empty")
    assert_op_error(alice, ns, {"op": "delete", "path": "d", "recursive": False}, "not_empty")
    alice.commit_ok(ns, {"op": "delete", "path": "e"})
    alice.commit_ok(ns, {"op": "delete", "path": "d", "recursive": True})
    assert alice.snapshot(ns)[0] == {}


def test_a_conditional_delete_with_a_stale_base_jid_is_a_conflict(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"1")
    second = alice.write_file(ns, "f", b"2", base_jid=first["jid"])
    with unchanged(alice, ns):
        res = result_of(alice, ns, {"op": "delete", "path": "f", "base_jid": first["jid"]})
    assert (res["status"], res["jid"]) == ("conflict", second["jid"]), res
    res = result_of(alice, ns, {"op": "delete", "path": "f", "base_jid": second["jid"]})
    assert res["status"] == "committed"


# -- move ---------------------------------------------------------------

def test_move_renames_keeping_the_node_id_in_one_row(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    f = alice.write_file(ns, "f", b"content")
    (m,) = alice.commit_ok(ns, {"op": "move", "path": "f", "to": "d/g"})
    assert (m["node"], m["jid"]) == (f["node"], f["jid"] + 1)
    e = entry(alice, ns, "d/g")
    assert (e["node"], e["blocks"], e["name"]) == (f["node"], [block_id(b"content")], "g")
    assert "f" not in alice.snapshot(ns)[0]


def test_a_move_sets_the_ctime_it_carries_and_keeps_atime_and_mtime(alice):
    ns = alice.root_ns
    alice.write_file(ns, "f", b"x", atime_ns=1, mtime_ns=2, ctime_ns=3)
    alice.commit_ok(ns, {"op": "move", "path": "f", "to": "g", "ctime_ns": 1_000_000_000_000_000_123})
    e = entry(alice, ns, "g")
    assert (e["atime_ns"], e["mtime_ns"], e["ctime_ns"]) == (1, 2, 1_000_000_000_000_000_123)


def test_a_move_without_ctime_takes_the_commit_time(alice):
    ns = alice.root_ns
    alice.write_file(ns, "f", b"x", atime_ns=1, mtime_ns=2, ctime_ns=3)
    before = time.time_ns()
    alice.commit_ok(ns, {"op": "move", "path": "f", "to": "g"})
    after = time.time_ns()
    e = entry(alice, ns, "g")
    assert (e["atime_ns"], e["mtime_ns"]) == (1, 2)
    assert before <= e["ctime_ns"] <= after


def test_moving_onto_an_existing_name_is_exists_without_replace(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, file_op("a"), file_op("b"), {"op": "dir", "path": "d"})
    assert_op_error(alice, ns, {"op": "move", "path": "a", "to": "b"}, "exists")
    assert_op_error(alice, ns, {"op": "move", "path": "a", "to": "b", "replace": False}, "exists")
    assert_op_error(alice, ns, {"op": "move", "path": "d", "to": "a"}, "exists")


def test_a_replacing_move_deletes_the_target_in_a_row_of_its_own(alice):
    ns = alice.root_ns
    a, b = alice.commit_ok(ns, file_op("a"), {"op": "symlink", "path": "b", "target": "a"})
    cursor = alice.head(ns)
    (m,) = alice.commit_ok(ns, {"op": "move", "path": "a", "to": "b", "replace": True})
    assert alice.head(ns) == cursor + 2
    entries, _ = alice.list_all(ns, cursor)
    assert sorted((e["node"], e["kind"], e["path"]) for e in entries) == \
        sorted([(b["node"], "deleted", "b"), (a["node"], "file", "b")])
    assert m["node"] == a["node"]


def test_a_directory_replaces_only_an_empty_directory(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, *({"op": "dir", "path": p} for p in ("src", "empty", "full", "full/x")))
    assert_op_error(alice, ns, {"op": "move", "path": "src", "to": "full", "replace": True},
                    "not_empty")
    alice.commit_ok(ns, {"op": "move", "path": "src", "to": "empty", "replace": True})
    assert set(alice.snapshot(ns)[0]) == {"empty", "full", "full/x"}


def test_replacing_across_kinds_is_is_a_directory_or_not_a_directory(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, file_op("f"), {"op": "dir", "path": "d"})
    assert_op_error(alice, ns, {"op": "move", "path": "f", "to": "d", "replace": True},
                    "is_a_directory")
    assert_op_error(alice, ns, {"op": "move", "path": "d", "to": "f", "replace": True},
                    "not_a_directory")


@pytest.mark.parametrize("to", ["d/inside", "d/sub/deeper"])
def test_moving_a_directory_into_itself_is_bad_field(alice, to):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"}, {"op": "dir", "path": "d/sub"})
    assert_op_refused(alice, ns, {"op": "move", "path": "d", "to": to}, "bad_field")


def test_moving_a_missing_node_or_into_a_missing_directory_is_not_found(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, file_op("f"))
    assert_op_error(alice, ns, {"op": "move", "path": "nothing", "to": "x"}, "not_found")
    assert_op_error(alice, ns, {"op": "move", "path": "f", "to": "nodir/f"}, "not_found")


def test_a_conditional_move_with_a_stale_base_jid_is_a_conflict(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"1")
    second = alice.write_file(ns, "f", b"2", base_jid=first["jid"])
    with unchanged(alice, ns):
        res = result_of(alice, ns, {"op": "move", "path": "f", "to": "g",
                                    "base_jid": first["jid"]})
    assert (res["status"], res["jid"]) == ("conflict", second["jid"]), res
    res = result_of(alice, ns, {"op": "move", "path": "f", "to": "g",
                                "base_jid": second["jid"]})
    assert res["status"] == "committed"



def test_a_move_sent_again_with_its_node_is_committed_as_it_stands(alice):
    """The first answer was lost (a client cut off, a restart): the retry
    names the node, finds it at the target, and changes nothing."""
    ns = alice.root_ns
    f = alice.write_file(ns, "f", b"content")
    other = alice.write_file(ns, "other", b"x")
    move = {"op": "move", "path": "f", "to": "g", "node": f["node"]}
    (first,) = alice.commit_ok(ns, move)
    with unchanged(alice, ns):
        assert result_of(alice, ns, move) == {"status": "committed", "jid": first["jid"],
                                              "node": f["node"]}
        # Without the node, or with another one, the source is missing.
        assert_op_error(alice, ns, {"op": "move", "path": "f", "to": "g"}, "not_found")
        assert_op_error(alice, ns, {**move, "node": other["node"]}, "not_found")
        assert_op_error(alice, ns, {**move, "to": "h"}, "not_found")
    assert_error(alice.commit(ns, {**move, "node": 0}), 400, "bad_field")


def test_a_delete_sent_again_with_its_node_is_committed_as_it_stands(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "f", b"old")
    delete = {"op": "delete", "path": "f", "base_jid": f["jid"], "node": f["node"]}
    (first,) = alice.commit_ok(ns, delete)
    # A new file at the path: the retry must not touch it.
    g = alice.write_file(ns, "f", b"new")
    with unchanged(alice, ns):
        assert result_of(alice, ns, delete) == {"status": "committed", "jid": first["jid"],
                                                "node": f["node"]}
        res = result_of(alice, ns, {**delete, "node": g["node"]})
        assert (res["status"], res["jid"]) == ("conflict", g["jid"]), res
        assert_op_error(alice, ns, {"op": "delete", "path": "missing", "node": g["node"]},
                        "not_found")

# -- batches ------------------------------------------------------------

def test_a_batch_answers_each_operation_in_order_and_applies_the_others(alice):
    ns = alice.root_ns
    r = alice.commit(ns, {"op": "dir", "path": "d"},
                     {"op": "delete", "path": "missing"},
                     file_op("d/f"),
                     {"op": "delete", "path": "d"},
                     {"op": "move", "path": "d/f", "to": "g"})
    assert r.status == 200, r
    res = r.json["results"]
    assert [x["status"] for x in res] == ["committed", "error", "committed", "error", "committed"]
    assert [x["error"]["code"] for x in res if x["status"] == "error"] == ["not_found", "not_empty"]
    assert [res[i]["jid"] for i in (0, 2, 4)] == [1, 2, 3]
    assert r.json["head"] == 3
    assert set(alice.snapshot(ns)[0]) == {"d", "g"}


def test_a_later_operation_sees_what_an_earlier_one_of_the_batch_did(alice):
    ns = alice.root_ns
    r = alice.commit(ns, file_op("a"), {"op": "delete", "path": "a"}, file_op("a/b"))
    res = r.json["results"]
    assert [x["status"] for x in res] == ["committed", "committed", "error"]
    assert res[2]["error"]["code"] == "not_found"


def test_a_batch_of_500_files_commits_in_one_request(alice):
    ns = alice.root_ns
    contents = {f"dir/file{i:03}.txt": f"content of file {i}\n".encode() for i in range(500)}
    alice.commit_ok(ns, {"op": "dir", "path": "dir"})
    ops = [file_op(p, d) for p, d in contents.items()]
    ids = [block_id(d) for d in contents.values()]
    assert sorted(alice.need(ids)) == sorted(ids)
    with unchanged(alice, ns):
        first = alice.commit(ns, *ops).json["results"]
    assert [(r["status"], r["blocks"]) for r in first] == [("need_blocks", [i]) for i in ids]
    for d in contents.values():
        assert alice.upload(d).status == 200
    assert alice.need(ids) == []
    results = alice.commit_ok(ns, *ops)
    assert [r["jid"] for r in results] == list(range(2, 502))
    snap, head = alice.snapshot(ns)
    assert head == 501
    assert {p: e["blocks"] for p, e in snap.items() if p != "dir"} == \
        {p: [block_id(d)] for p, d in contents.items()}


def test_a_batch_of_1000_operations_is_accepted(alice):
    results = alice.commit_ok(alice.root_ns, *(file_op(f"f{i}") for i in range(1000)))
    assert len(results) == 1000 and alice.head(alice.root_ns) == 1000


# -- a batch sent again -------------------------------------------------

def sent(client, ns, ops, who="c0ffee", keep_from=0):
    """Commits OPS numbered as a client WHO numbers them; their results."""
    r = client.post(f"/meta/ns/{ns}/commit",
                    {"ops": ops, "client": who, "keep_from": keep_from})
    assert r.status == 200, r
    return r.json["results"]


def test_a_batch_sent_again_is_answered_as_it_was_applied(alice):
    """Its answer was lost: sent again, the folder made by the first
    operation is no longer at its path (the second moved it), yet it is
    answered as committed, and nothing is applied twice."""
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    batch = [{"op": "dir", "path": "d/sub", "seq": 7},
             {"op": "move", "path": "d", "to": "e", "seq": 8},
             file_op("e/f", b"", seq=9)]
    first = sent(alice, ns, batch, keep_from=7)
    assert [r["status"] for r in first] == ["committed"] * 3
    with unchanged(alice, ns):
        assert sent(alice, ns, batch, keep_from=7) == first
    # Without its client, or from another client, the numbers say nothing.
    res = sent(alice, ns, batch[:1], who="another")[0]
    assert res["error"]["code"] == "not_found", res
    assert result_of(alice, ns, batch[0])["error"]["code"] == "not_found"


def test_an_answer_is_for_the_namespace_it_was_committed_in(alice):
    """Sent again to another namespace (its folder was shared meanwhile),
    a numbered operation is applied there, not answered with a JID of the
    first namespace. Found by fuzz_api: the answer named JID 11 of a
    namespace whose head was 4."""
    root = alice.root_ns
    for i in range(5):
        alice.commit_ok(root, {"op": "dir", "path": f"pad{i}"})
    alice.commit_ok(root, {"op": "dir", "path": "team"})
    shared = alice.post(f"/meta/ns/{root}/share", {"path": "team"}).json["ns"]
    op = {"op": "dir", "path": "made", "seq": 11}
    (first,) = sent(alice, root, [op])
    (there,) = sent(alice, shared, [op])
    assert first["status"] == there["status"] == "committed", (first, there)
    assert there["jid"] <= alice.head(shared) < first["jid"], (first, there)
    assert "made" in alice.snapshot(shared)[0]


def test_answers_below_keep_from_are_forgotten(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    made = {"op": "dir", "path": "d/sub", "seq": 3}
    sent(alice, ns, [made, {"op": "move", "path": "d", "to": "e", "seq": 4}])
    sent(alice, ns, [{"op": "dir", "path": "x", "seq": 5}], keep_from=4)
    with unchanged(alice, ns):
        assert sent(alice, ns, [made], keep_from=3)[0]["error"]["code"] == "not_found"


def test_an_answer_is_kept_only_for_a_committed_operation(alice):
    """A refused operation changed nothing: sent again, it is tried again."""
    ns = alice.root_ns
    op = {"op": "dir", "path": "d/sub", "seq": 1}
    assert sent(alice, ns, [op])[0]["error"]["code"] == "not_found"
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    assert sent(alice, ns, [op])[0]["status"] == "committed"


@pytest.mark.parametrize("body", [
    {"client": ""}, {"client": "x" * 65}, {"client": "a b"}, {"client": 7},
    {"client": "c", "keep_from": -1}, {"client": "c", "keep_from": "1"},
])
def test_a_bad_sender_is_refused_whole(alice, body):
    ns = alice.root_ns
    with unchanged(alice, ns):
        r = alice.post(f"/meta/ns/{ns}/commit",
                       {"ops": [{"op": "dir", "path": "d", "seq": 1}], **body})
        assert_error(r, 400, "bad_field")
    with unchanged(alice, ns):
        assert_error(alice.commit(ns, {"op": "dir", "path": "d", "seq": 0}), 400, "bad_field")


# -- names, paths and fields at their limits --------------------------------

def test_a_255_byte_name_and_a_4096_byte_path_are_accepted(alice):
    ns = alice.root_ns
    names = ["x" * 239 + chr(ord("a") + i) for i in range(17)]
    assert len("/".join(names).encode()) == 4096
    dirs = [{"op": "dir", "path": "/".join(names[:i])} for i in range(1, 17)]
    alice.commit_ok(ns, *dirs, file_op("/".join(names)))
    long_name = "\u00e9" * 127 + "z"
    assert len(long_name.encode()) == 255
    alice.commit_ok(ns, file_op(long_name))
    assert {"/".join(names), long_name} <= set(alice.snapshot(ns)[0])


def test_names_are_compared_as_bytes(alice):
    ns = alice.root_ns
    composed, decomposed = "\u00e9", "e\u0301"
    alice.commit_ok(ns, file_op("A"), file_op("a"), file_op(composed), file_op(decomposed))
    assert set(alice.snapshot(ns)[0]) == {"A", "a", composed, decomposed}


def test_unknown_fields_are_ignored(alice):
    r = alice.post(f"/meta/ns/{alice.root_ns}/commit",
                   {"ops": [{**file_op("f"), "colour": "blue"}], "client": "test"})
    assert r.status == 200 and r.json["results"][0]["status"] == "committed", r
