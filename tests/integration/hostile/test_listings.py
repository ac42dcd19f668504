"""Listings one member can blow up: one 4 MiB block committed 65,536 times
makes a 256 GiB file whose entry is 4.4 MB of block ids.  Seventeen of
them once made a listing page over the 64 MiB a client takes, so that no
member of the folder could sync.  Pages (and history answers) now stop
before 8 MiB, and every member lists the folder to its end."""

import json
import os

from cfs_server import block_id

PAGE_MAX = 8 << 20
BLOCK = os.urandom(4 << 20)
GIANT = {"size": 65536 * len(BLOCK), "blocks": [block_id(BLOCK)] * 65536}


def giant_files(client, ns, names):
    """A giant file at each of NAMES (a name given again: a new version)."""
    assert client.upload(BLOCK).status == 200
    base = {}
    for i, name in enumerate(names):
        op = {"op": "file", "path": name, "mtime_ns": i, **GIANT}
        if name in base:
            op["base_jid"] = base[name]
        base[name] = client.commit_ok(ns, op)[0]["jid"]


def test_a_folder_of_giant_files_lists_in_pages_a_client_takes(attacked):
    server, honest = attacked()
    attacker = server.user("attacker")
    attacker.commit_ok(attacker.root_ns, {"op": "dir", "path": "team"})
    ns = attacker.post(f"/meta/ns/{attacker.root_ns}/share", {"path": "team"}).json["ns"]
    assert attacker.post(f"/meta/ns/{ns}/invite", {"user": "honest"}).status == 200
    names = [f"giant{i}" for i in range(17)]
    giant_files(attacker, ns, names)

    member = honest.client
    cursor, seen, pages = 0, [], 0
    while True:
        r = member.list(ns, cursor)
        assert r.status == 200, r
        assert len(r.body) < PAGE_MAX, f"a page of {len(r.body)} bytes"
        pages += 1
        seen += [e["path"] for e in r.json["entries"]]
        cursor = r.json["cursor"]
        if not r.json["more"]:
            break
    assert sorted(seen) == sorted(names)
    assert pages >= 9, pages  # two giant entries do not fit in one page
    honest.round()
    honest.check()


def test_the_history_of_a_giant_file_is_answered_within_a_page(attacked):
    server, honest = attacked()
    attacker = server.user("attacker")
    giant_files(attacker, attacker.root_ns, ["giant"] * 3)  # three versions
    r = attacker.get(f"/meta/ns/{attacker.root_ns}/history?path=giant")
    assert r.status == 200, r
    assert len(r.body) < PAGE_MAX, f"a history of {len(r.body)} bytes"
    assert r.json["more"] is True
    assert [v["mtime_ns"] for v in r.json["versions"]] == [2]  # the newest
    small = attacker.clone()
    small.commit_ok(small.root_ns, {"op": "file", "path": "small", "size": 0,
                                    "blocks": []})
    r = small.get(f"/meta/ns/{small.root_ns}/history?path=small")
    assert r.status == 200 and r.json["more"] is False, r
    assert json.loads(r.body)["versions"][0]["path"] == "small"
