"""History from the journal: the versions of a path (also of a file or
folder deleted, by itself or with its folder), and a namespace as it was
at a JID or a time, listed as from cursor 0 then; refused where garbage
collection took the rows that state needs."""

import os
import subprocess
import time
import urllib.parse

from cfs_server import CLOUDFSD, assert_error, block_id, split_blocks


def history(client, ns, path):
    r = client.get(f"/meta/ns/{ns}/history?path={urllib.parse.quote(path)}")
    assert r.status == 200, r
    return r.json["versions"]


def as_of(client, ns, **query):
    """The namespace at as_of=JID or at=TIME, paged 2 by 2: {path: entry}
    with paths made from the parents and names of then; and its JID."""
    entries, cursor = [], 0
    while True:
        q = urllib.parse.urlencode({"cursor": cursor, "limit": 2, **query})
        r = client.get(f"/meta/ns/{ns}/list?{q}")
        assert r.status == 200, r
        entries += r.json["entries"]
        cursor = r.json["cursor"]
        if not r.json["more"]:
            break
    by_node = {e["node"]: e for e in entries}

    def path(e):
        return e["name"] if e["parent"] == 0 else f"{path(by_node[e['parent']])}/{e['name']}"
    return {path(e): e for e in entries}, r.json["head"]


def test_a_file_has_its_versions_newest_first(alice):
    ns = alice.root_ns
    datas = [os.urandom(n) for n in (10, 20, 30)]
    jids = []
    for i, data in enumerate(datas):
        res = alice.write_file(ns, "notes.txt", data, base_jid=jids[-1] if jids else 0)
        jids.append(res["jid"])
    versions = history(alice, ns, "notes.txt")
    assert [v["jid"] for v in versions] == jids[::-1]
    assert [v["size"] for v in versions] == [30, 20, 10]
    assert versions[-1]["blocks"] == [block_id(b) for b in split_blocks(datas[0])]
    assert all(v["author"] == "alice" and abs(v["at"] - time.time()) < 60 for v in versions)
    assert all(v["path"] == "notes.txt" for v in versions)


def test_a_deleted_file_and_a_folder_deleted_with_its_contents(alice):
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "proj"}, {"op": "dir", "path": "proj/sub"})
    alice.write_files(ns, {"proj/a.txt": b"a", "proj/sub/b.txt": b"b", "keep.txt": b"k"})
    whole = alice.head(ns)
    alice.commit_ok(ns, {"op": "delete", "path": "proj", "recursive": True})
    versions = history(alice, ns, "proj")
    assert versions[0]["kind"] == "deleted" and versions[0]["before"] == whole
    then, jid = as_of(alice, ns, as_of=whole)
    assert jid == whole
    assert sorted(then) == ["keep.txt", "proj", "proj/a.txt", "proj/sub", "proj/sub/b.txt"]
    assert then["proj/sub/b.txt"]["blocks"] == [block_id(b"b")]
    now, _ = as_of(alice, ns, as_of=alice.head(ns))
    assert sorted(now) == ["keep.txt"]
    # A file deleted by itself: its delete first, then what it was.
    alice.commit_ok(ns, {"op": "delete", "path": "keep.txt"})
    assert [v["kind"] for v in history(alice, ns, "keep.txt")] == ["deleted", "file"]
    # Written anew (a new node): still one history of the path.
    alice.write_file(ns, "keep.txt", b"again")
    versions = history(alice, ns, "keep.txt")
    assert [v["kind"] for v in versions] == ["file", "deleted", "file"]
    assert versions[0]["node"] != versions[2]["node"]


def test_the_namespace_at_a_time(alice):
    ns = alice.root_ns
    alice.write_file(ns, "early", b"1")
    time.sleep(1.1)
    t = int(time.time())
    time.sleep(1.1)
    alice.write_file(ns, "late", b"2")
    then, jid = as_of(alice, ns, at=t)
    assert sorted(then) == ["early"] and jid == 1


def test_bad_history_requests(alice):
    ns = alice.root_ns
    assert_error(alice.get(f"/meta/ns/{ns}/history"), 400, "bad_field", "path")
    assert_error(alice.get(f"/meta/ns/{ns}/history?path=nothing"), 404, "not_found",
                 "nothing")
    assert_error(alice.get(f"/meta/ns/{ns}/list?as_of=5"), 400, "bad_cursor")
    assert_error(alice.get(f"/meta/ns/{ns}/list?as_of=0&at=5"), 400, "bad_field",
                 "as_of")


def test_a_state_older_than_retention_is_refused(server, alice):
    ns = alice.root_ns
    alice.write_file(ns, "f", b"1")
    first = alice.head(ns)
    alice.write_file(ns, "f", b"2", base_jid=first)
    server.stop()
    time.sleep(1.1)
    p = subprocess.run([CLOUDFSD, "gc", "--data", server.data_dir, *server.meta_args(),
                        "--retention", "0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    server.start()
    alice = alice.clone(server.url)
    assert_error(alice.get(f"/meta/ns/{ns}/list?as_of={first}"), 404, "not_found",
                 "older than the history")
    assert [v["size"] for v in history(alice, ns, "f")] == [1]
    assert sorted(as_of(alice, ns, as_of=alice.head(ns))[0]) == ["f"]
