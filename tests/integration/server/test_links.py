"""Hard links (op "link", entries of kind "link"): several names of one
node in one namespace; writes through any name are versions of that node;
a name going keeps the others; directories and other namespaces refused;
deletes of folders, renames over a name, sharing and history."""

import os
import time
import urllib.parse

from cfs_server import assert_op_error, block_id, file_op, result_of, split_blocks, unchanged


def link(client, ns, path, to):
    return client.commit_ok(ns, {"op": "link", "path": path, "to": to})[0]


def names(client, ns):
    """{path: the node that holds its content} of the namespace now, and
    {node: its entry} of the nodes that hold content."""
    snap, _ = client.snapshot(ns)
    held = {e["node"]: e for e in snap.values() if e["kind"] != "link"}
    return {p: e["of"] if e["kind"] == "link" else e["node"]
            for p, e in snap.items()}, held


def test_a_link_is_a_second_name_of_the_one_node(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "a.txt", b"hello")
    res = link(alice, ns, "a.txt", "b.txt")
    assert res["node"] != f["node"]
    snap, _ = alice.snapshot(ns)
    assert snap["b.txt"]["kind"] == "link" and snap["b.txt"]["of"] == f["node"]
    assert "blocks" not in snap["b.txt"] and "size" not in snap["b.txt"]
    assert names(alice, ns)[0] == {"a.txt": f["node"], "b.txt": f["node"]}


def test_a_write_through_any_name_is_a_version_of_the_node(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "a.txt", b"one")
    alice.commit_ok(ns, {"op": "dir", "path": "d"})
    l = link(alice, ns, "a.txt", "d/b.txt")
    # The base is the node's JID, whichever name the write goes through.
    stale = result_of(alice, ns, file_op("d/b.txt", b"x", base_jid=l["jid"]))
    assert stale["status"] == "conflict" and stale["jid"] == f["jid"]
    w = alice.write_file(ns, "d/b.txt", b"two", base_jid=f["jid"])
    assert w["node"] == f["node"]
    by_path, held = names(alice, ns)
    assert by_path == {"a.txt": f["node"], "d": by_path["d"], "d/b.txt": f["node"]}
    assert held[f["node"]]["blocks"] == [block_id(b) for b in split_blocks(b"two")]
    # The link's own row did not move: only the node has a new version.
    rows, _ = alice.list_all(ns, l["jid"])
    assert [e["node"] for e in rows] == [f["node"]]


def test_unlinking_one_name_keeps_the_others(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "a", b"data")
    link(alice, ns, "a", "b")
    link(alice, ns, "b", "c")  # a link of a link names the node
    alice.commit_ok(ns, {"op": "delete", "path": "b"})
    assert names(alice, ns)[0] == {"a": f["node"], "c": f["node"]}
    # The node's own name goes: it takes the place of its link, and
    # keeps its id and content.
    head = alice.head(ns)
    (gone,) = alice.commit_ok(ns, {"op": "delete", "path": "a"})
    by_path, held = names(alice, ns)
    assert by_path == {"c": f["node"]}
    # Two rows, the link's delete then the node's move; the answer is at
    # the first, so the node's new state is news to whoever deleted it.
    assert gone["node"] == f["node"] and gone["jid"] == head + 1
    assert held[f["node"]]["jid"] == head + 2 == alice.head(ns)
    assert held[f["node"]]["kind"] == "file" and held[f["node"]]["size"] == 4
    alice.commit_ok(ns, {"op": "delete", "path": "c"})
    assert names(alice, ns)[0] == {}


def test_directories_existing_names_and_other_namespaces_are_refused(alice, bob):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "d"}, file_op("f"), file_op("g"))
    assert_op_error(alice, ns, {"op": "link", "path": "d", "to": "d2"}, "forbidden")
    assert_op_error(alice, ns, {"op": "link", "path": "f", "to": "g"}, "exists")
    assert_op_error(alice, ns, {"op": "link", "path": "nope", "to": "h"}, "not_found")
    assert_op_error(alice, ns, {"op": "link", "path": "f", "to": "nope/h"}, "not_found")
    r = alice.post(f"/meta/ns/{ns}/share", {"path": "d"})
    assert r.status == 200, r
    assert_op_error(alice, ns, {"op": "link", "path": "f", "to": "d/f"},
                    "cross_namespace")


def test_a_link_sent_again_is_committed_once(alice):
    ns = alice.root_ns
    alice.write_file(ns, "a", b"x")
    first = link(alice, ns, "a", "b")
    with unchanged(alice, ns):
        again = link(alice, ns, "a", "b")
    assert again == first


def test_renaming_a_name_over_another_name_of_the_same_node_does_nothing(alice):
    ns = alice.root_ns
    alice.write_file(ns, "a", b"x")
    link(alice, ns, "a", "b")
    with unchanged(alice, ns):
        alice.commit_ok(ns, {"op": "move", "path": "b", "to": "a", "replace": True})
        alice.commit_ok(ns, {"op": "move", "path": "a", "to": "b", "replace": True})


def test_a_rename_over_a_linked_name_keeps_the_node_at_its_other_name(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "saved", b"old")
    link(alice, ns, "saved", "backup")
    n = alice.write_file(ns, "saved.tmp", b"new")
    alice.commit_ok(ns, {"op": "move", "path": "saved.tmp", "to": "saved", "replace": True})
    assert names(alice, ns)[0] == {"saved": n["node"], "backup": f["node"]}


def test_deleting_a_folder_keeps_a_file_that_has_a_name_outside_it(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "tree"}, {"op": "dir", "path": "tree/sub"},
                    {"op": "dir", "path": "other"})
    inside = alice.write_file(ns, "tree/sub/f", b"kept")
    outside = alice.write_file(ns, "other/g", b"linked in")
    both = alice.write_file(ns, "tree/h", b"all inside")
    link(alice, ns, "tree/sub/f", "other/f")
    link(alice, ns, "other/g", "tree/g")
    link(alice, ns, "tree/h", "tree/sub/h")
    alice.commit_ok(ns, {"op": "delete", "path": "tree", "recursive": True})
    by_path, held = names(alice, ns)
    assert by_path == {"other": by_path["other"], "other/f": inside["node"],
                       "other/g": outside["node"]}
    assert both["node"] not in held and held[inside["node"]]["size"] == 4


def test_sharing_a_folder_splits_links_that_cross_its_edge(alice, bob):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "Share"})
    inner = alice.write_file(ns, "Share/in", b"inner")
    outer = alice.write_file(ns, "out", b"outer")
    crossing = alice.write_file(ns, "Share/x", b"crossing")
    link(alice, ns, "Share/in", "Share/in2")
    link(alice, ns, "out", "Share/out")
    link(alice, ns, "Share/x", "x")
    r = alice.post(f"/meta/ns/{ns}/share", {"path": "Share"})
    assert r.status == 200, r
    shared = r.json["ns"]
    root, root_held = names(alice, ns)
    assert {p: n for p, n in root.items() if p != "Share"} == \
        {"out": outer["node"], "x": crossing["node"]}
    assert root_held[crossing["node"]]["blocks"] == [block_id(b"crossing")]
    by_path, held = names(alice, shared)
    # Links within the folder stay links; one across its edge becomes a
    # file of its own there, with the content the file had.
    assert by_path["in"] == by_path["in2"] == inner["node"]
    assert by_path["out"] != outer["node"] and by_path["x"] == crossing["node"]
    assert held[by_path["out"]]["blocks"] == [block_id(b"outer")]
    assert held[crossing["node"]]["blocks"] == [block_id(b"crossing")]


def test_the_history_of_a_link_name_is_the_nodes(alice):
    ns = alice.root_ns
    v1 = alice.write_file(ns, "a", b"v1")
    link(alice, ns, "a", "b")
    v2 = alice.write_file(ns, "b", b"v2", base_jid=v1["jid"])
    r = alice.get(f"/meta/ns/{ns}/history?path={urllib.parse.quote('b')}")
    assert r.status == 200, r
    assert [(v["jid"], v["kind"]) for v in r.json["versions"]] == \
        [(v2["jid"], "file"), (v1["jid"], "file")]
    assert os.path.basename(r.json["versions"][0]["path"]) == "b"


def test_the_namespace_as_of_a_jid_has_its_links_of_then(alice):
    ns = alice.root_ns
    f = alice.write_file(ns, "a", b"x")
    l = link(alice, ns, "a", "b")
    then = alice.head(ns)
    alice.commit_ok(ns, {"op": "delete", "path": "a"})
    r = alice.get(f"/meta/ns/{ns}/list?as_of={then}")
    assert r.status == 200, r
    by_name = {e["name"]: e for e in r.json["entries"]}
    assert by_name["a"]["node"] == f["node"] and by_name["a"]["kind"] == "file"
    assert (by_name["b"]["node"], by_name["b"]["kind"], by_name["b"]["of"]) == \
        (l["node"], "link", f["node"])
    assert names(alice, ns)[0] == {"b": f["node"]}


def test_garbage_collection_keeps_what_any_name_lists(server, alice):
    ns = alice.root_ns
    old, new = os.urandom(5000), os.urandom(6000)
    f = alice.write_file(ns, "a", old)
    link(alice, ns, "a", "b")
    alice.write_file(ns, "b", new, base_jid=f["jid"])
    alice.commit_ok(ns, {"op": "delete", "path": "a"})
    before = alice.snapshot(ns)
    server.stop()
    time.sleep(1.1)  # superseded a second ago and more: past a retention of 0
    server.cli("gc", "--retention", "0")
    assert server.stored_blocks() == {block_id(new)}
    server.start()
    alice = alice.clone(server.url)
    assert alice.snapshot(ns) == before
    assert alice.download(block_id(new)).body == new
