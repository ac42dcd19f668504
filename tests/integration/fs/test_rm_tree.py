"""rm -rf of a tree: the deletes queued under a folder and the folder's
own go as one recursive delete, unchanged since the JID the mount had
listed (fs/collapse.c), so one listed row; never deleting what the mount
did not see (another device's file in the folder survives, and the
mount shows it), nor losing or bringing back anything across a kill -9.

The uploader is held at the proxy (a first change, a folder made, waits
there) while the tree is removed, so that the deletes are queued and
unsent when it goes on."""

import os
import re
import shutil
import subprocess

import pytest

from cfs_fs import listing_of, read, server_listing, until, unmount_drained
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import CLOUDFS

TIMEOUT = 3
COMMIT = r"POST /meta/ns/\d+/commit"
LIST = r"GET /meta/ns/\d+/list"
WHOLE = "was not deleted as a whole"


def put(client):
    """tree/{f0..f19, sub/{g0..g9, deep/h}} and out/x on the server;
    returns the head after them."""
    ns = client.root_ns
    client.commit_ok(ns, {"op": "dir", "path": "tree"}, {"op": "dir", "path": "tree/sub"},
                     {"op": "dir", "path": "tree/sub/deep"}, {"op": "dir", "path": "out"})
    files = {f"tree/f{i}": f"f{i}".encode() for i in range(20)}
    files.update({f"tree/sub/g{i}": f"g{i}".encode() for i in range(10)})
    files.update({"tree/sub/deep/h": b"h", "out/x": b"x"})
    client.write_files(ns, files)
    return client.head(ns)


def held_mount(mount, client, proxy):
    """A mount of CLIENT through PROXY that has listed put()'s tree, and
    whose next commit (a folder, "marker") is held at the proxy."""
    m = mount(client.clone(proxy.url), timeout=TIMEOUT)
    until(lambda: os.path.exists(os.path.join(m.mountpoint, "tree/sub/deep/h")), within=20,
          what="the tree listed")
    proxy.hold(COMMIT)
    os.mkdir(os.path.join(m.mountpoint, "marker"))
    proxy.wait_held(1)
    return m


def wait_sent(m):
    status = subprocess.run([CLOUDFS, "status", "--wait", "--timeout", "30", m.mountpoint],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr + m.log_text()


def test_a_tree_removed_is_deleted_on_the_server_as_one_row(server, alice, mount, proxy):
    seen = put(alice)
    m = held_mount(mount, alice, proxy)
    shutil.rmtree(os.path.join(m.mountpoint, "tree"))
    proxy.release()
    wait_sent(m)
    assert sorted(server_listing(alice, alice.root_ns)) == ["marker", "out", "out/x"]
    # The marker's row and the tree's: none for the 33 entries inside
    # (the journal has their delete rows, unlisted).
    rows = alice.list_all(alice.root_ns, seen)[0]
    assert sorted(e["path"] for e in rows) == ["marker", "tree"], rows
    assert alice.head(alice.root_ns) == seen + 1 + 34
    assert sorted(os.listdir(m.mountpoint)) == ["marker", "out"]
    unmount_drained(m)
    assert WHOLE not in m.log_text() and "refused" not in m.log_text(), m.log_text()


def removed_live(client, mount, proxy, top, last):
    """Removes TOP from a live mount of CLIENT through PROXY, once it
    shows LAST, and waits for it on the server. Nothing is held at the
    proxy: the uploader waits for the removals to pause (a settle longer
    than any rm here) or for status --wait, and does not send each file's
    delete as it comes. Returns the mount and the commit requests."""
    m = mount(client.clone(proxy.url), timeout=TIMEOUT, settle=30)
    until(lambda: os.path.exists(os.path.join(m.mountpoint, last)), within=20,
          what="the tree listed")
    before = len(proxy.seen)
    shutil.rmtree(os.path.join(m.mountpoint, top))
    wait_sent(m)
    return m, [line for line in proxy.seen[before:] if re.match(COMMIT, line)]


def test_a_tree_removed_from_a_live_mount_goes_in_one_request(server, alice, mount, proxy):
    seen = put(alice)
    m, commits = removed_live(alice, mount, proxy, "tree", "tree/sub/deep/h")
    assert commits == ["POST /meta/ns/%d/commit" % alice.root_ns]
    assert sorted(server_listing(alice, alice.root_ns)) == ["out", "out/x"]
    assert [e["path"] for e in alice.list_all(alice.root_ns, seen)[0]] == ["tree"]
    assert sorted(os.listdir(m.mountpoint)) == ["out"]
    assert WHOLE not in m.log_text(), m.log_text()


@pytest.mark.parametrize("files", [1001, 5001])
def test_a_folder_of_more_files_than_a_request_carries_goes_in_one_request(
        server, alice, mount, proxy, files):
    """1,001 files: with the folder's own delete, more deletes than a
    batch's UPLOAD_BATCH_MAX operations, yet one recursive delete; 5,001:
    more than four batches' worth, which the uploader once read at most."""
    ns = alice.root_ns
    alice.commit_ok(ns, {"op": "dir", "path": "big"})
    for start in range(0, files, 500):  # a commit's most, 1,000
        alice.write_files(ns, {f"big/f{i:04d}": b""
                               for i in range(start, min(start + 500, files))})
    seen = alice.head(ns)
    m, commits = removed_live(alice, mount, proxy, "big", f"big/f{files - 1:04d}")
    assert commits == ["POST /meta/ns/%d/commit" % ns]
    assert server_listing(alice, ns) == {}
    assert [e["path"] for e in alice.list_all(ns, seen)[0]] == ["big"]
    assert WHOLE not in m.log_text(), m.log_text()


def test_a_tree_of_folders_goes_in_one_request(server, alice, mount, proxy):
    """Several folders side by side in the tree: their runs of deletes
    follow each other, and the tree's delete encloses them all."""
    put(alice)
    ns = alice.root_ns
    alice.commit_ok(ns, *({"op": "dir", "path": f"tree/d{i}"} for i in range(3)))
    alice.write_files(ns, {f"tree/d{i}/e{k}": b"e" for i in range(3) for k in range(3)})
    seen = alice.head(ns)
    m, commits = removed_live(alice, mount, proxy, "tree", "tree/d2/e2")
    assert commits == ["POST /meta/ns/%d/commit" % ns]
    assert sorted(server_listing(alice, ns)) == ["out", "out/x"]
    assert [e["path"] for e in alice.list_all(ns, seen)[0]] == ["tree"]
    assert WHOLE not in m.log_text(), m.log_text()


def test_a_file_another_mount_adds_inside_survives_and_the_mount_shows_it(
        server, alice, mount, proxy):
    put(alice)
    b = mount(alice)
    m = held_mount(mount, alice, proxy)
    # m lists nothing more from now on: it does not see b's file.
    proxy.hold(f"{COMMIT}|{LIST}")
    shutil.rmtree(os.path.join(m.mountpoint, "tree"))
    assert not os.path.exists(os.path.join(m.mountpoint, "tree"))
    with open(os.path.join(b.mountpoint, "tree/sub/new.txt"), "wb") as f:
        f.write(b"made on b")
        f.flush()
        os.fsync(f.fileno())
    until(lambda: "tree/sub/new.txt" in server_listing(alice, alice.root_ns), within=20,
          what="b's file on the server")
    proxy.hold(LIST)  # the commits go on; m still lists nothing
    until(lambda: WHOLE in m.log_text(), within=20, what="the recursive delete refused")
    until(lambda: sorted(server_listing(alice, alice.root_ns)) ==
          ["marker", "out", "out/x", "tree", "tree/sub", "tree/sub/new.txt"], within=20,
          what="what m saw deleted, b's file kept")
    proxy.release()
    wait_sent(m)
    until(lambda: os.path.exists(os.path.join(m.mountpoint, "tree/sub/new.txt")), within=20,
          what="b's file shown on m")
    assert read(os.path.join(m.mountpoint, "tree/sub/new.txt")) == b"made on b"
    until(lambda: listing_of(m.mountpoint, dir_mtimes=False) ==
          server_listing(alice, alice.root_ns, dir_mtimes=False),
          within=20, what="m converged to the server")
    unmount_drained(m)


def test_a_kill_9_after_the_tree_was_deleted_and_its_answer_lost_brings_nothing_back(
        server, alice, mount, proxy):
    put(alice)
    m = held_mount(mount, alice, proxy)
    shutil.rmtree(os.path.join(m.mountpoint, "tree"))
    proxy.pass_held(1)  # the marker, answered
    until(lambda: "marker" in server_listing(alice, alice.root_ns), within=20,
          what="the marker on the server")
    proxy.wait_held(1)  # the tree's deletes
    proxy.lose(COMMIT)
    proxy.pass_held(1)
    proxy.wait_lost(1)
    until(lambda: "tree" not in server_listing(alice, alice.root_ns), within=20,
          what="the tree deleted, its answer lost")
    m.kill9()
    proxy.cut()
    head = alice.head(alice.root_ns)
    m2 = mount(alice.clone(proxy.url), cache=m.cache, timeout=TIMEOUT)
    wait_sent(m2)
    assert sorted(os.listdir(m2.mountpoint)) == ["marker", "out"]
    assert sorted(server_listing(alice, alice.root_ns)) == ["marker", "out", "out/x"]
    assert alice.head(alice.root_ns) == head, "nothing applied twice"
    unmount_drained(m2)
    assert "refused" not in m2.log_text() and "conflict" not in m2.log_text(), m2.log_text()


def test_a_kill_9_with_the_deletes_unsent_loses_nothing_and_deletes_the_tree_later(
        server, alice, mount, proxy):
    put(alice)
    m = held_mount(mount, alice, proxy)
    os.remove(os.path.join(m.mountpoint, "out/x"))
    shutil.rmtree(os.path.join(m.mountpoint, "tree/sub"))
    m.kill9()
    proxy.cut()
    m2 = mount(alice.clone(proxy.url), cache=m.cache, timeout=TIMEOUT)
    assert sorted(os.listdir(m2.mountpoint)) == ["marker", "out", "tree"]
    assert sorted(os.listdir(os.path.join(m2.mountpoint, "tree"))) == [
        f"f{i}" for i in sorted(range(20), key=str)]
    wait_sent(m2)
    assert sorted(server_listing(alice, alice.root_ns)) == (
        ["marker", "out", "tree"] + [f"tree/f{i}" for i in sorted(range(20), key=str)])
    assert read(os.path.join(m2.mountpoint, "tree/f7")) == b"f7"
    unmount_drained(m2)


def test_a_file_inside_with_a_name_outside_keeps_that_name(server, alice, mount, proxy):
    put(alice)
    alice.commit_ok(alice.root_ns, {"op": "link", "path": "tree/sub/g3", "to": "out/g3"})
    m = held_mount(mount, alice, proxy)
    shutil.rmtree(os.path.join(m.mountpoint, "tree"))
    assert read(os.path.join(m.mountpoint, "out/g3")) == b"g3"
    proxy.release()
    wait_sent(m)
    snap = alice.snapshot(alice.root_ns)[0]
    assert sorted(snap) == ["marker", "out", "out/g3", "out/x"]
    assert snap["out/g3"]["kind"] == "file" and snap["out/g3"]["size"] == 2
    assert read(os.path.join(m.mountpoint, "out/g3")) == b"g3"
    assert os.stat(os.path.join(m.mountpoint, "out/g3")).st_nlink == 1
    unmount_drained(m)


def test_a_file_open_for_writing_in_the_tree_commits_nothing_once_removed(
        server, alice, mount, proxy):
    put(alice)
    m = held_mount(mount, alice, proxy)
    with open(os.path.join(m.mountpoint, "tree/sub/g1"), "r+b") as f:
        shutil.rmtree(os.path.join(m.mountpoint, "tree"))
        f.write(b"written after the rm")
        f.flush()
        proxy.release()
    wait_sent(m)
    assert sorted(server_listing(alice, alice.root_ns)) == ["marker", "out", "out/x"]
    assert sorted(os.listdir(m.mountpoint)) == ["marker", "out"]
    unmount_drained(m)


def test_a_shared_folder_inside_is_left_and_the_rest_deleted(server, alice, bob, mount, proxy):
    put(alice)
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "tree/sub/shared"})
    alice.write_file(alice.root_ns, "tree/sub/shared/s", b"s")
    r = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "tree/sub/shared"})
    assert r.status == 200, r
    assert alice.post(f"/meta/ns/{r.json['ns']}/invite", {"user": bob.name}).status == 200
    m = held_mount(mount, alice, proxy)
    until(lambda: os.path.exists(os.path.join(m.mountpoint, "tree/sub/shared/s")), within=20,
          what="the shared folder listed")
    shutil.rmtree(os.path.join(m.mountpoint, "tree"))
    proxy.release()
    wait_sent(m)
    assert sorted(server_listing(alice, alice.root_ns)) == ["marker", "out", "out/x"]
    assert sorted(os.listdir(m.mountpoint)) == ["marker", "out"]
    unmount_drained(m)
