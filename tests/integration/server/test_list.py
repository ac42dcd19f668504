"""GET /meta/ns/NS/list: snapshots, paging, and changes since a cursor."""

import pytest

from cfs_server import assert_error, file_op

ALWAYS = {"node", "parent", "name", "path", "kind", "jid"}


def make_tree(client, ns, *paths):
    """Commits PATHS in order: a trailing '/' makes a directory, anything
    else an empty file. Returns {path: node id}."""
    ops = [{"op": "dir", "path": p[:-1]} if p.endswith("/") else file_op(p) for p in paths]
    results = client.commit_ok(ns, *ops)
    return {p.rstrip("/"): r["node"] for p, r in zip(paths, results)}


def by_node(entries):
    return {e["node"]: e for e in entries}


def test_entries_carry_the_fields_of_their_kind(alice):
    ns = alice.root_ns
    alice.write_file(ns, "f", b"hello", mode=0o600, atime_ns=1795372644002787901,
                     mtime_ns=1795372644002787903, ctime_ns=1795372644002787905)
    alice.commit_ok(ns, {"op": "dir", "path": "d", "mode": 0o700, "atime_ns": 6,
                         "mtime_ns": 7, "ctime_ns": 9},
                    {"op": "symlink", "path": "d/l", "target": "../f", "mtime_ns": 8,
                     "ctime_ns": 10},
                    file_op("gone"), {"op": "delete", "path": "gone"})
    start = alice.head(ns) - 1
    entries = {e["path"]: e for e in alice.list_all(ns, 0)[0] + alice.list_all(ns, start)[0]}
    d = entries["d"]
    assert entries["f"] == {
        "node": entries["f"]["node"], "parent": 0, "name": "f", "path": "f", "kind": "file",
        "jid": 1, "size": 5, "atime_ns": 1795372644002787901,
        "mtime_ns": 1795372644002787903, "ctime_ns": 1795372644002787905, "mode": 0o600,
        "blocks": ["2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]}
    assert set(d) == ALWAYS | {"size", "atime_ns", "mtime_ns", "ctime_ns", "mode"}
    assert (d["kind"], d["parent"], d["mode"], d["atime_ns"], d["mtime_ns"], d["ctime_ns"]) \
        == ("dir", 0, 0o700, 6, 7, 9)
    link = entries["d/l"]
    assert set(link) == ALWAYS | {"size", "atime_ns", "mtime_ns", "ctime_ns", "mode", "target"}
    assert (link["kind"], link["parent"], link["name"], link["target"], link["atime_ns"],
            link["mtime_ns"], link["ctime_ns"]) == ("symlink", d["node"], "l", "../f", 8, 8, 10)
    assert entries["gone"]["kind"] == "deleted"
    assert set(entries["gone"]) == ALWAYS


def test_a_listing_from_0_is_a_snapshot_without_deleted_nodes(alice):
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "keep", "drop", "d/", "d/x", "d/y/", "d/y/z", "e/", "e/k")
    alice.commit_ok(ns, {"op": "delete", "path": "drop"},
                    {"op": "delete", "path": "d", "recursive": True},
                    {"op": "delete", "path": "e/k"})
    entries, cursor = alice.list_all(ns, 0)
    # 8 nodes, 3 deletes, and the journal's own deletes of d/x, d/y, d/y/z.
    assert cursor == alice.head(ns) == 14
    assert {e["path"]: e["node"] for e in entries} == \
        {"keep": nodes["keep"], "e": nodes["e"]}
    assert [e["jid"] for e in entries] == sorted(e["jid"] for e in entries)


def test_the_default_cursor_is_0(alice):
    make_tree(alice, alice.root_ns, "a", "b")
    assert alice.list(alice.root_ns).json == alice.list(alice.root_ns, 0).json


def test_a_new_user_has_one_root_namespace_whose_head_follows_commits(alice):
    expected = {"ns": alice.root_ns, "head": 0, "root": True, "path": "", "owner": "alice"}
    assert alice.get("/meta/namespaces").json == {"namespaces": [expected]}
    alice.commit_ok(alice.root_ns, file_op("a"), file_op("b"))
    assert alice.get("/meta/namespaces").json == {"namespaces": [{**expected, "head": 2}]}


def test_users_have_distinct_root_namespaces(alice, bob):
    assert alice.root_ns != bob.root_ns
    alice.commit_ok(alice.root_ns, file_op("a"))
    assert bob.list(bob.root_ns).json["entries"] == []


def test_an_empty_namespace_lists_nothing_at_head_0(alice):
    assert alice.list(alice.root_ns).json == \
        {"ns": alice.root_ns, "cursor": 0, "head": 0, "more": False, "entries": []}


def test_pages_of_limit_entries_continue_from_the_cursor_until_more_is_false(alice):
    ns = alice.root_ns
    make_tree(alice, ns, *(f"f{i}" for i in range(7)))
    whole, head = alice.list_all(ns, 0)
    pages, cursor = [], 0
    while True:
        page = alice.list(ns, cursor, 3).json
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert [len(p["entries"]) for p in pages] == [3, 3, 1]
    assert [p["more"] for p in pages] == [True, True, False]
    assert [e for p in pages for e in p["entries"]] == whole
    assert cursor == head == 7
    assert all(p["head"] == 7 for p in pages)


def test_the_default_page_is_1000_entries(alice):
    ns = alice.root_ns
    make_tree(alice, ns, *(f"f{i}" for i in range(1000)))
    make_tree(alice, ns, "last")
    first = alice.list(ns, 0).json
    assert len(first["entries"]) == 1000 and first["more"] is True
    rest = alice.list(ns, first["cursor"]).json
    assert [e["path"] for e in rest["entries"]] == ["last"] and rest["more"] is False


def test_a_node_changed_between_pages_appears_again_in_its_newest_state(alice):
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "a", "b", "c", "d")
    first = alice.list(ns, 0, 2).json
    assert [e["path"] for e in first["entries"]] == ["a", "b"]
    alice.commit_ok(ns, {"op": "move", "path": "a", "to": "a2"})
    rest, cursor = alice.list_all(ns, first["cursor"], 2)
    assert [(e["node"], e["path"]) for e in rest] == \
        [(nodes["c"], "c"), (nodes["d"], "d"), (nodes["a"], "a2")]
    assert cursor == 5


def test_a_later_listing_shows_deletes_and_moves_with_stable_node_ids(alice):
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "a.txt", "b.txt", "c.txt", "d/")
    cursor = alice.head(ns)
    alice.commit_ok(ns, {"op": "move", "path": "a.txt", "to": "d/renamed.txt"},
                    {"op": "delete", "path": "b.txt"})
    entries, new_cursor = alice.list_all(ns, cursor)
    assert new_cursor == cursor + 2
    assert [(e["node"], e["kind"], e["path"], e["parent"], e["jid"]) for e in entries] == [
        (nodes["a.txt"], "file", "d/renamed.txt", nodes["d"], cursor + 1),
        (nodes["b.txt"], "deleted", "b.txt", 0, cursor + 2)]
    assert alice.list_all(ns, new_cursor) == ([], new_cursor)


def test_a_node_changed_twice_after_a_cursor_is_listed_once_in_its_newest_state(alice):
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "a", "b")
    cursor = alice.head(ns)
    alice.commit_ok(ns, {"op": "move", "path": "a", "to": "a1"})
    alice.commit_ok(ns, {"op": "move", "path": "b", "to": "b1"})
    alice.commit_ok(ns, {"op": "move", "path": "a1", "to": "a2"})
    entries, _ = alice.list_all(ns, cursor)
    assert [(e["node"], e["path"], e["jid"]) for e in entries] == \
        [(nodes["b"], "b1", cursor + 2), (nodes["a"], "a2", cursor + 3)]


def test_deleting_a_whole_directory_is_one_listed_row(alice):
    """The journal has a delete of each descendant too (for history and
    garbage collection), but listings show the directory's alone."""
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "top/", "top/a/", "top/a/b/", "top/a/b/f", "top/g", "other")
    cursor = alice.head(ns)
    (res,) = alice.commit_ok(ns, {"op": "delete", "path": "top", "recursive": True})
    assert res["jid"] == alice.head(ns) == cursor + 5
    entries, _ = alice.list_all(ns, cursor)
    assert [(e["node"], e["kind"], e["path"]) for e in entries] == \
        [(nodes["top"], "deleted", "top")]
    assert [e["path"] for e in alice.list_all(ns, 0)[0]] == ["other"]


def test_moving_a_directory_is_one_row_and_its_descendants_keep_ids_and_rows(alice):
    ns = alice.root_ns
    make_tree(alice, ns, "src/", "src/a/", "src/a/f", "src/g", "dst/")
    before = by_node(alice.list_all(ns, 0)[0])
    cursor = alice.head(ns)
    (res,) = alice.commit_ok(ns, {"op": "move", "path": "src", "to": "dst/moved"})
    entries, _ = alice.list_all(ns, cursor)
    assert [(e["node"], e["path"], e["jid"]) for e in entries] == \
        [(res["node"], "dst/moved", cursor + 1)]
    after = by_node(alice.list_all(ns, 0)[0])
    assert set(after) == set(before)
    for node, e in after.items():
        old = before[node]
        if node == res["node"]:
            continue
        assert e["path"] == old["path"].replace("src", "dst/moved", 1), e
        assert (e["jid"], e["parent"], e["name"]) == (old["jid"], old["parent"], old["name"])


@pytest.mark.parametrize("query", ["cursor=abc", "cursor=-1", "cursor=1.5", "cursor=",
                                   "limit=0", "limit=5001", "limit=-1", "limit=x", "limit=2.0"])
def test_a_malformed_cursor_or_limit_is_bad_field(alice, query):
    r = alice.get(f"/meta/ns/{alice.root_ns}/list?{query}")
    assert_error(r, 400, "bad_field", query.split("=")[0])


def test_limits_of_1_and_5000_are_accepted(alice):
    make_tree(alice, alice.root_ns, "a", "b")
    assert len(alice.list(alice.root_ns, 0, 1).json["entries"]) == 1
    assert len(alice.list(alice.root_ns, 0, 5000).json["entries"]) == 2


def test_a_cursor_beyond_the_head_is_bad_cursor(alice):
    make_tree(alice, alice.root_ns, "a", "b")
    assert alice.list(alice.root_ns, 2).json["entries"] == []
    assert_error(alice.list(alice.root_ns, 3), 400, "bad_cursor", "3")
    assert_error(alice.list(alice.root_ns, 2**62), 400, "bad_cursor")


def test_a_deleted_nodes_row_carries_its_last_path(alice):
    ns = alice.root_ns
    nodes = make_tree(alice, ns, "a/", "a/f")
    cursor = alice.head(ns)
    alice.commit_ok(ns, {"op": "move", "path": "a", "to": "b"}, {"op": "delete", "path": "b/f"})
    entries, _ = alice.list_all(ns, cursor)
    assert [(e["node"], e["kind"], e["path"], e["parent"]) for e in entries] == \
        [(nodes["a"], "dir", "b", 0), (nodes["a/f"], "deleted", "b/f", nodes["a"])]


def test_a_node_made_again_at_a_deleted_path_has_a_new_id(alice):
    ns = alice.root_ns
    old = make_tree(alice, ns, "d/", "d/f")
    cursor = alice.head(ns)
    alice.commit_ok(ns, {"op": "delete", "path": "d", "recursive": True})
    new = make_tree(alice, ns, "d/", "d/f")
    assert not set(old.values()) & set(new.values())
    entries, _ = alice.list_all(ns, cursor)
    assert [(e["node"], e["kind"]) for e in entries] == \
        [(old["d"], "deleted"), (new["d"], "dir"), (new["d/f"], "file")]
