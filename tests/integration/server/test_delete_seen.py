"""A recursive delete "unchanged_since" a JID (cloudfs-protocol(7), op
delete): it deletes the folder only when nothing in it changed after
that JID, so that a client deletes only what it has seen; otherwise it
is a conflict and changes nothing."""

import pytest

from cfs_server import assert_error, file_op, result_of, unchanged


def tree(client, ns):
    """tree/{a, b, sub/{c, deep/d}} and a file outside; returns the head
    after it (what a client that listed it all has seen)."""
    client.commit_ok(ns, {"op": "dir", "path": "tree"}, {"op": "dir", "path": "tree/sub"},
                     {"op": "dir", "path": "tree/sub/deep"}, {"op": "dir", "path": "out"})
    client.write_files(ns, {"tree/a": b"a", "tree/b": b"b", "tree/sub/c": b"c",
                            "tree/sub/deep/d": b"d", "out/x": b"x"})
    return client.head(ns)


def delete_seen(path, since, **fields):
    return {"op": "delete", "path": path, "recursive": True, "unchanged_since": since,
            **fields}


def test_a_tree_unchanged_since_the_jid_is_deleted_with_a_row_for_each_node(alice):
    ns = alice.root_ns
    seen = tree(alice, ns)
    before, _ = alice.snapshot(ns)
    (res,) = alice.commit_ok(ns, delete_seen("tree", seen))
    after, head = alice.snapshot(ns)
    assert sorted(after) == ["out", "out/x"]
    # One listed row, and a journal row for each of the 7 nodes (history
    # and garbage collection), the folder's last.
    assert res["jid"] == head == seen + 7
    assert [e["path"] for e in alice.list_all(ns, seen)[0]] == ["tree"]
    assert res["node"] == before["tree"]["node"]


# What another device does inside the tree after the JID the client saw,
# and the path the client then finds changed.
CHANGES = {
    "a file created deep inside": [file_op("tree/sub/deep/new")],
    "a file written": [file_op("tree/sub/c", b"changed")],
    "a file moved in": [{"op": "move", "path": "out/x", "to": "tree/sub/x"}],
    "a folder moved in": [{"op": "move", "path": "out", "to": "tree/sub/out"}],
    "a file renamed inside": [{"op": "move", "path": "tree/a", "to": "tree/sub/a2"}],
    "a further name of an outside file": [{"op": "link", "path": "out/x", "to": "tree/x"}],
    "a folder's mode": [{"op": "dir", "path": "tree/sub", "mode": 0o700}],
    "the folder's own mode": [{"op": "dir", "path": "tree", "mode": 0o700}],
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_inside_after_the_jid_is_a_conflict_that_deletes_nothing(alice, change):
    ns = alice.root_ns
    seen = tree(alice, ns)
    for op in CHANGES[change]:
        if op["op"] == "file" and op["size"]:
            alice.write_file(ns, op["path"], b"changed", base_jid=alice.snapshot(ns)[0][
                op["path"]]["jid"])
        else:
            alice.commit_ok(ns, op)
    head = alice.head(ns)
    with unchanged(alice, ns):
        res = result_of(alice, ns, delete_seen("tree", seen))
    assert res["status"] == "conflict", res
    assert res["jid"] == head, res
    assert "tree" in res["message"] and str(seen) in res["message"], res
    # The same delete, unchanged since the head, goes through.
    alice.commit_ok(ns, delete_seen("tree", head))
    assert "tree" not in alice.snapshot(ns)[0]


def test_what_was_deleted_or_moved_out_after_the_jid_does_not_refuse_it(alice):
    ns = alice.root_ns
    seen = tree(alice, ns)
    alice.commit_ok(ns, {"op": "delete", "path": "tree/b"},
                    {"op": "move", "path": "tree/sub/c", "to": "out/c"},
                    {"op": "delete", "path": "tree/sub/deep", "recursive": True})
    alice.commit_ok(ns, delete_seen("tree", seen))
    assert sorted(alice.snapshot(ns)[0]) == ["out", "out/c", "out/x"]


def test_a_file_inside_with_a_name_outside_takes_that_name(alice):
    """The protocol's rule for hard links holds for a conditional delete
    as for any: the node lives on at its name outside the folder."""
    ns = alice.root_ns
    tree(alice, ns)
    alice.commit_ok(ns, {"op": "link", "path": "tree/sub/c", "to": "out/c"})
    node = alice.snapshot(ns)[0]["tree/sub/c"]["node"]
    alice.commit_ok(ns, delete_seen("tree", alice.head(ns)))
    snap = alice.snapshot(ns)[0]
    assert sorted(snap) == ["out", "out/c", "out/x"]
    assert (snap["out/c"]["kind"], snap["out/c"]["node"]) == ("file", node)


def test_a_retry_of_an_applied_conditional_delete_is_committed_as_it_was(alice):
    ns = alice.root_ns
    seen = tree(alice, ns)
    node = alice.snapshot(ns)[0]["tree"]["node"]
    (first,) = alice.commit_ok(ns, delete_seen("tree", seen, node=node))
    alice.commit_ok(ns, file_op("after"))
    with unchanged(alice, ns):
        (again,) = alice.commit_ok(ns, delete_seen("tree", seen, node=node))
    assert again["jid"] == first["jid"]


def test_a_file_is_checked_against_its_own_jid(alice):
    ns = alice.root_ns
    first = alice.write_file(ns, "f", b"1")
    second = alice.write_file(ns, "f", b"2", base_jid=first["jid"])
    with unchanged(alice, ns):
        res = result_of(alice, ns, {"op": "delete", "path": "f",
                                    "unchanged_since": first["jid"]})
    assert (res["status"], res["jid"]) == ("conflict", second["jid"]), res
    alice.commit_ok(ns, {"op": "delete", "path": "f", "unchanged_since": second["jid"]})


@pytest.mark.parametrize("since", [0, -1, "3", 2.5, True])
def test_a_bad_unchanged_since_refuses_the_batch(alice, since):
    ns = alice.root_ns
    seen = tree(alice, ns)
    with unchanged(alice, ns):
        r = alice.commit(ns, file_op("first"), delete_seen("tree", since))
    assert_error(r, 400, "bad_field", "unchanged_since")
    assert seen == alice.head(ns)
