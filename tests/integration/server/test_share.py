"""Shared folders between users: share, invite, members, remove, leave,
and what a non-member sees (nothing)."""

import pytest

from cfs_server import (assert_error, block_id, file_op, result_of, unchanged,
                        waiting_longpoll, woken)

PHOTO = b"\x89PNG a photo" * 1000


def share(client, path):
    r = client.post(f"/meta/ns/{client.root_ns}/share", {"path": path})
    assert r.status == 200, r
    return r.json


def invite(client, ns, user):
    r = client.post(f"/meta/ns/{ns}/invite", {"user": user})
    assert r.status == 200 and r.json == {"ns": ns}, r


def members(client, ns):
    r = client.get(f"/meta/ns/{ns}/members")
    assert r.status == 200, r
    assert r.json["ns"] == ns
    return sorted((m["user"], m["owner"]) for m in r.json["members"])


def namespaces(client):
    return {n["ns"]: n for n in client.get("/meta/namespaces").json["namespaces"]}


def mount_in_root(client, ns):
    """The entry of CLIENT's root namespace that mounts NS."""
    (m,) = [e for e in client.snapshot(client.root_ns)[0].values() if e.get("ns") == ns]
    assert m["kind"] == "mount"
    return m


def make_photos(client):
    """A Photos folder in CLIENT's root with a file, a subfolder and a
    symlink. Returns {path: node id}."""
    client.commit_ok(client.root_ns, {"op": "dir", "path": "Photos"},
                     {"op": "dir", "path": "Photos/2024"},
                     {"op": "symlink", "path": "Photos/latest", "target": "2024"},
                     file_op("other.txt"))
    client.write_file(client.root_ns, "Photos/2024/cat.png", PHOTO)
    return {e["path"]: e["node"] for e in client.snapshot(client.root_ns)[0].values()}


@pytest.fixture
def photos(alice, bob, carol):
    """alice's Photos folder, shared with bob (carol is a stranger to it).
    Returns its namespace."""
    make_photos(alice)
    ns = share(alice, "Photos")["ns"]
    invite(alice, ns, "bob")
    return ns


def test_sharing_moves_the_contents_into_a_new_namespace_and_mounts_it(alice):
    nodes = make_photos(alice)
    cursor = alice.head(alice.root_ns)
    answer = share(alice, "Photos")
    ns = answer["ns"]
    assert answer == {"ns": ns, "created": True} and ns != alice.root_ns
    rows, _ = alice.list_all(alice.root_ns, cursor)
    assert [(e["node"], e["kind"], e["path"], e["ns"]) for e in rows] == \
        [(nodes["Photos"], "mount", "Photos", ns)]
    assert set(alice.snapshot(alice.root_ns)[0]) == {"Photos", "other.txt"}
    inside = alice.snapshot(ns)[0]
    assert {p: e["node"] for p, e in inside.items()} == \
        {p[len("Photos/"):]: n for p, n in nodes.items() if p.startswith("Photos/")}
    assert inside["2024/cat.png"]["blocks"] == [block_id(PHOTO)]
    assert sorted(e["jid"] for e in inside.values()) == list(range(1, alice.head(ns) + 1))
    assert alice.download(block_id(PHOTO)).body == PHOTO
    mine = namespaces(alice)
    assert list(mine)[0] == alice.root_ns
    assert {k: mine[ns][k] for k in ("root", "path", "owner")} == \
        {"root": False, "path": "Photos", "owner": "alice"}
    assert mine[ns]["head"] == alice.head(ns)


def test_new_nodes_of_a_shared_folder_never_reuse_the_ids_it_was_made_with(photos, alice, bob):
    before = {e["node"] for e in alice.snapshot(photos)[0].values()}
    new = bob.commit_ok(photos, *(file_op(f"new{i}") for i in range(len(before) + 2)))
    assert not {r["node"] for r in new} & before
    assert len({e["node"] for e in alice.snapshot(photos)[0].values()}) == 2 * len(before) + 2


def test_sharing_a_mount_again_answers_its_namespace_and_changes_nothing(alice):
    make_photos(alice)
    ns = share(alice, "Photos")["ns"]
    with unchanged(alice, alice.root_ns, ns):
        assert share(alice, "Photos") == {"ns": ns, "created": False}


def test_an_invite_mounts_the_folder_in_the_invitees_root_and_wakes_their_longpoll(
        alice, bob):
    make_photos(alice)
    ns = share(alice, "Photos")["ns"]
    with waiting_longpoll(bob, {bob.root_ns: 0}) as poll:
        invite(alice, ns, "bob")
        assert woken(poll) == \
            {"changes": [{"ns": bob.root_ns, "head": 1}], "gone": []}
    rows, _ = bob.list_all(bob.root_ns, 0)
    assert [(e["kind"], e["path"], e["ns"], e["jid"]) for e in rows] == \
        [("mount", "Photos", ns, 1)]
    mine = namespaces(bob)
    assert {k: mine[ns][k] for k in ("root", "path", "owner")} == \
        {"root": False, "path": "Photos", "owner": "alice"}
    assert bob.snapshot(ns) == alice.snapshot(ns)
    assert members(alice, ns) == members(bob, ns) == [("alice", True), ("bob", False)]


@pytest.mark.parametrize("writer, reader", [("alice", "bob"), ("bob", "alice")])
def test_members_see_each_others_commits_through_longpoll_and_list(
        request, photos, writer, reader):
    writer, reader = request.getfixturevalue(writer), request.getfixturevalue(reader)
    cursor = reader.head(photos)
    data = f"written by {writer.name}".encode() * 100
    with waiting_longpoll(reader, {reader.root_ns: reader.head(reader.root_ns),
                                   photos: cursor}) as poll:
        res = writer.write_file(photos, "2024/new.txt", data)
        assert woken(poll) == \
            {"changes": [{"ns": photos, "head": res["jid"]}], "gone": []}
    rows, _ = reader.list_all(photos, cursor)
    assert [(e["node"], e["path"], e["blocks"]) for e in rows] == \
        [(res["node"], "2024/new.txt", [block_id(data)])]
    assert reader.download(block_id(data)).body == data
    assert reader.need([block_id(data)]) == []


def test_a_non_member_gets_not_found_for_everything_in_a_shared_folder(photos, carol):
    with unchanged(carol, carol.root_ns):
        for method, path, body in [
                ("GET", f"/meta/ns/{photos}/list", None),
                ("POST", f"/meta/ns/{photos}/commit", {"ops": [file_op("carol.txt")]}),
                ("GET", f"/meta/ns/{photos}/members", None),
                ("POST", f"/meta/ns/{photos}/invite", {"user": "carol"}),
                ("POST", f"/meta/ns/{photos}/remove", {"user": "bob"}),
                ("POST", f"/meta/ns/{photos}/leave", None),
                ("POST", "/meta/longpoll", {"cursors": [{"ns": photos, "cursor": 0}]}),
                ("GET", f"/block/{block_id(PHOTO)}", None)]:
            assert_error(carol.request(method, path, body), 404, "not_found")
    assert photos not in namespaces(carol)


def test_a_non_member_must_upload_a_shared_folders_blocks_to_use_them(photos, alice, carol):
    bid = block_id(PHOTO)
    assert carol.need([bid]) == [bid]
    with unchanged(carol, carol.root_ns):
        res = carol.commit(carol.root_ns, file_op("stolen.png", PHOTO)).json["results"][0]
    assert res == {"status": "need_blocks", "blocks": [bid]}
    assert carol.upload(PHOTO).status == 200
    carol.commit_ok(carol.root_ns, file_op("stolen.png", PHOTO))
    assert carol.download(bid).body == PHOTO


def test_the_shared_folder_is_unchanged_by_a_non_members_requests(photos, alice, carol):
    with unchanged(alice, photos):
        carol.commit(photos, file_op("carol.txt"))
        carol.post(f"/meta/ns/{photos}/invite", {"user": "carol"})
        carol.post(f"/meta/ns/{photos}/remove", {"user": "bob"})
    assert members(alice, photos) == [("alice", True), ("bob", False)]


def test_only_the_owner_removes_a_member(photos, alice, bob, carol):
    invite(alice, photos, "carol")
    with unchanged(alice, photos):
        assert_error(bob.post(f"/meta/ns/{photos}/remove", {"user": "carol"}), 403, "forbidden")
        assert_error(bob.post(f"/meta/ns/{photos}/remove", {"user": "alice"}), 403, "forbidden")
    assert members(alice, photos) == [("alice", True), ("bob", False), ("carol", False)]
    mount = mount_in_root(bob, photos)
    cursor = bob.head(bob.root_ns)
    with waiting_longpoll(bob, {photos: alice.head(photos)}) as poll:
        r = alice.post(f"/meta/ns/{photos}/remove", {"user": "bob"})
        assert r.status == 200 and r.json == {"ns": photos}, r
        assert woken(poll) == {"changes": [], "gone": [photos]}
    assert members(alice, photos) == [("alice", True), ("carol", False)]
    rows, _ = bob.list_all(bob.root_ns, cursor)
    assert [(e["node"], e["kind"]) for e in rows] == [(mount["node"], "deleted")]
    assert_error(bob.list(photos), 404, "not_found")
    assert_error(bob.longpoll({photos: 0}, 0), 404, "not_found")


def test_removing_a_user_who_is_not_a_member_is_not_found(photos, alice, carol):
    with unchanged(alice, photos):
        assert_error(alice.post(f"/meta/ns/{photos}/remove", {"user": "carol"}), 404, "not_found")
        assert_error(alice.post(f"/meta/ns/{photos}/remove", {"user": "nobody"}), 404, "not_found")


def test_leaving_deletes_the_mount_and_a_longpoll_watching_it_reports_it_gone(
        photos, alice, bob):
    mount = mount_in_root(bob, photos)
    cursor = bob.head(bob.root_ns)
    with waiting_longpoll(bob, {photos: bob.head(photos)}) as poll:
        r = bob.post(f"/meta/ns/{photos}/leave")
        assert r.status == 200, r
        assert woken(poll) == {"changes": [], "gone": [photos]}
    rows, _ = bob.list_all(bob.root_ns, cursor)
    assert [(e["node"], e["kind"], e["path"]) for e in rows] == \
        [(mount["node"], "deleted", "Photos")]
    assert_error(bob.list(photos), 404, "not_found")
    assert_error(bob.commit(photos, file_op("x")), 404, "not_found")
    assert photos not in namespaces(bob)
    assert members(alice, photos) == [("alice", True)]
    assert_error(bob.download(block_id(PHOTO)), 404, "not_found")


def test_deleting_the_mount_leaves_the_shared_folder(photos, alice, bob):
    bob.commit_ok(bob.root_ns, {"op": "delete", "path": "Photos", "recursive": True})
    assert_error(bob.list(photos), 404, "not_found")
    assert members(alice, photos) == [("alice", True)]
    assert alice.snapshot(photos)[0]["2024/cat.png"]["blocks"] == [block_id(PHOTO)]


def test_an_owner_who_leaves_passes_ownership_to_the_longest_standing_member(
        photos, alice, bob, carol):
    invite(bob, photos, "carol")
    r = alice.post(f"/meta/ns/{photos}/leave")
    assert r.status == 200, r
    assert members(bob, photos) == [("bob", True), ("carol", False)]
    assert namespaces(carol)[photos]["owner"] == "bob"
    r = bob.post(f"/meta/ns/{photos}/remove", {"user": "carol"})
    assert r.status == 200, r
    assert members(bob, photos) == [("bob", True)]


def test_a_root_namespace_cannot_be_left(alice):
    with unchanged(alice, alice.root_ns):
        assert_error(alice.post(f"/meta/ns/{alice.root_ns}/leave"), 403, "forbidden")
    assert alice.get("/meta/namespaces").status == 200


def test_any_member_may_invite(photos, bob, carol):
    invite(bob, photos, "carol")
    assert mount_in_root(carol, photos)["path"] == "Photos"
    assert carol.snapshot(photos) == bob.snapshot(photos)


def test_inviting_a_member_again_is_exists(photos, alice, bob):
    with unchanged(bob, bob.root_ns, photos):
        assert_error(alice.post(f"/meta/ns/{photos}/invite", {"user": "bob"}), 409, "exists")
        assert_error(bob.post(f"/meta/ns/{photos}/invite", {"user": "alice"}), 409, "exists")


def test_inviting_an_unknown_user_is_not_found(photos, alice):
    with unchanged(alice, alice.root_ns, photos):
        r = alice.post(f"/meta/ns/{photos}/invite", {"user": "nobody"})
        assert_error(r, 404, "not_found", "nobody")


def test_a_mount_whose_name_is_taken_is_named_with_a_number(alice, bob, carol):
    bob.commit_ok(bob.root_ns, {"op": "dir", "path": "Photos"})
    make_photos(alice)
    first = share(alice, "Photos")["ns"]
    invite(alice, first, "bob")
    make_photos(carol)
    second = share(carol, "Photos")["ns"]
    invite(carol, second, "bob")
    assert mount_in_root(bob, first)["path"] == "Photos (2)"
    assert mount_in_root(bob, second)["path"] == "Photos (3)"
    mine = namespaces(bob)
    assert (mine[first]["path"], mine[second]["path"]) == ("Photos (2)", "Photos (3)")
    assert bob.snapshot(bob.root_ns)[0]["Photos"]["kind"] == "dir"


def test_sharing_a_folder_inside_a_shared_folder_is_forbidden(photos, alice, bob):
    with unchanged(alice, alice.root_ns, photos):
        r = alice.post(f"/meta/ns/{photos}/share", {"path": "2024"})
        assert_error(r, 403, "forbidden")
        r = bob.post(f"/meta/ns/{photos}/share", {"path": "2024"})
        assert_error(r, 403, "forbidden")


def test_sharing_a_folder_that_holds_a_mount_is_forbidden(photos, bob):
    bob.commit_ok(bob.root_ns, {"op": "dir", "path": "Outer"},
                  {"op": "move", "path": "Photos", "to": "Outer/Photos"})
    assert mount_in_root(bob, photos)["path"] == "Outer/Photos"
    assert namespaces(bob)[photos]["path"] == "Outer/Photos"
    with unchanged(bob, bob.root_ns, photos):
        assert_error(bob.post(f"/meta/ns/{bob.root_ns}/share", {"path": "Outer"}),
                     403, "forbidden")


def test_sharing_a_missing_folder_is_not_found(alice):
    with unchanged(alice, alice.root_ns):
        assert_error(alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "nothing"}),
                     404, "not_found")


def test_a_path_through_a_mount_is_cross_namespace(photos, alice):
    ops = [file_op("Photos/new.txt"), {"op": "dir", "path": "Photos/dir"},
           {"op": "delete", "path": "Photos/2024", "recursive": True},
           {"op": "move", "path": "other.txt", "to": "Photos/other.txt"},
           {"op": "move", "path": "Photos/latest", "to": "latest"}]
    with unchanged(alice, alice.root_ns, photos):
        r = alice.commit(alice.root_ns, *ops)
    assert r.status == 200, r
    assert [x.get("error", {}).get("code") for x in r.json["results"]] == \
        ["cross_namespace"] * len(ops)


def test_a_mount_is_never_replaced_nor_overwritten(photos, alice):
    (f,) = alice.commit_ok(alice.root_ns, file_op("loose.txt"))
    with unchanged(alice, alice.root_ns, photos):
        r = alice.commit(alice.root_ns,
                         {"op": "move", "path": "loose.txt", "to": "Photos", "replace": True},
                         file_op("Photos"),
                         {"op": "dir", "path": "Photos"})
    codes = [x.get("error", {}).get("code") for x in r.json["results"]]
    assert codes[0] is not None and codes[1:] == ["is_a_directory", "exists"], r


def test_deleting_a_directory_that_holds_a_mount_leaves_the_shared_folder(photos, alice, bob):
    bob.commit_ok(bob.root_ns, {"op": "dir", "path": "Outer"},
                  {"op": "move", "path": "Photos", "to": "Outer/Photos"})
    with waiting_longpoll(bob, {photos: bob.head(photos)}) as poll:
        bob.commit_ok(bob.root_ns, {"op": "delete", "path": "Outer", "recursive": True})
        assert woken(poll) == {"changes": [], "gone": [photos]}
    assert_error(bob.list(photos), 404, "not_found")
    assert photos not in namespaces(bob)
    assert members(alice, photos) == [("alice", True)]


def test_a_delete_of_a_file_its_folders_share_moved_away_is_not_taken_for_done(photos, alice):
    """A mount deletes Photos/2024/cat.png as it knew it, by path and node,
    after another device shared Photos and renamed its mount: the file
    is not gone (it lives on in the shared folder), so the delete is not
    answered as one applied before; the mount then finds it there."""
    inside = alice.snapshot(photos)[0]
    alice.commit_ok(alice.root_ns, {"op": "move", "path": "Photos", "to": "Pictures"})
    node = inside["2024/cat.png"]["node"]
    with unchanged(alice, alice.root_ns, photos):
        res = result_of(alice, alice.root_ns, {"op": "delete", "path": "Photos/2024/cat.png",
                                               "node": node})
    assert res.get("error", {}).get("code") == "not_found", res
    (done,) = alice.commit_ok(photos, {"op": "delete", "path": "2024/cat.png", "node": node})
    assert "2024/cat.png" not in alice.snapshot(photos)[0]
    assert done["jid"] == alice.head(photos)
