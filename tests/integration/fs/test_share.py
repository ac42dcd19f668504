"""Sharing a folder while changes under it are still on their way: a file
settling after its close, or changes queued for the server, follow the
folder into its shared namespace, whoever shared it (this mount, another
mount of the same user, or a client of the HTTP API). Nothing written is
lost, and nothing becomes a conflicted copy: the changes are this
device's own."""

import os
import subprocess
import time

import pytest

from cfs_fs import at, cloudfs, read, server_listing, until, until_server_holds
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import CLOUDFS


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def on_server(client, ns, path):
    """Whether PATH of namespace NS is on the server (any kind)."""
    return path in server_listing(client, ns)


def shared_ns(client, path):
    """The namespace of the shared folder mounted at PATH of CLIENT's root."""
    r = client.get("/meta/namespaces")
    assert r.status == 200, r
    (ns,) = [n["ns"] for n in r.json["namespaces"] if n.get("path") == path]
    return ns


def share_by_api(client, path, *members):
    """CLIENT shares its folder PATH straight through the HTTP API, with
    MEMBERS; returns the shared folder's namespace."""
    r = client.post(f"/meta/ns/{client.root_ns}/share", {"path": path})
    assert r.status == 200, r
    for user in members:
        assert client.post(f"/meta/ns/{r.json['ns']}/invite",
                           {"user": user.name}).status == 200
    return r.json["ns"]


def all_arrived(alice, bob, mounts, ns, files, mount, dirs=(), allowed=()):
    """FILES (path in the shared folder -> bytes) are in shared namespace
    NS on the server, and read so through every mount of MOUNTS (each
    (mount, folder name)) and a new mount of bob's with an empty cache;
    every mount of MOUNTS has sent everything, with no conflicted copy
    and nothing refused but what ALLOWED names. The shared namespace holds
    FILES and DIRS only."""
    until_server_holds(alice, files, ns=ns, what="the files in the shared namespace")
    root = server_listing(alice, alice.root_ns)
    assert not [p for p in root if p.startswith("proj/")], root
    fresh = mount(bob, start="daemon")
    for m, folder in [*mounts, (fresh, "proj")]:
        for path, data in files.items():
            until(lambda: read(at(m, folder, path)) == data, within=10,
                  what=f"{path} in {m.mountpoint}")
    for m, _ in mounts:
        cloudfs("status", "--wait", "--timeout", "30", m.mountpoint)
        st = cloudfs("status", "--json", m.mountpoint)["mounts"][0]
        assert st["pending_ops"] == 0 and st["open_writes"] == 0, st
        assert st["conflicts"] == 0, st
        refused = [line for line in m.log_text().splitlines() if "refused" in line]
        assert all(any(r in line for r in allowed) for line in refused), refused
    for client, space in ((alice, ns), (alice, alice.root_ns), (bob, bob.root_ns)):
        names = server_listing(client, space)
        assert not [p for p in names if "conflicted copy" in p], names
    assert sorted(server_listing(alice, ns)) == sorted([*files, *dirs])


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_a_file_written_just_before_its_folder_is_shared_goes_with_it(
        alice, bob, mount, start):
    """The report of issue 13: mkdir, echo > file, share at once (within
    the 50 ms the file settles after its close)."""
    ma, mb = mount(alice, start=start), mount(bob, start=start)
    os.mkdir(at(ma, "proj"))
    write(at(ma, "proj", "note.txt"), b"hello\n")
    ns = cloudfs("share", "--json", at(ma, "proj"), "bob")["ns"]
    all_arrived(alice, bob, [(ma, "proj"), (mb, "proj")], ns,
                {"note.txt": b"hello\n"}, mount)


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_sharing_from_the_mount_waits_for_what_settles_in_the_folder(
        alice, bob, mount, start):
    ma, mb = mount(alice, start=start, settle=3), mount(bob, start=start)
    os.mkdir(at(ma, "proj"))
    until(lambda: on_server(alice, alice.root_ns, "proj"), within=10,
          what="the folder on the server")
    write(at(ma, "proj", "note.txt"), b"hello\n")  # committed in 3 s
    ns = cloudfs("share", "--json", at(ma, "proj"), "bob")["ns"]
    all_arrived(alice, bob, [(ma, "proj"), (mb, "proj")], ns,
                {"note.txt": b"hello\n"}, mount)


def test_a_file_settling_follows_its_folder_shared_through_the_api(alice, bob, mount):
    """Shared elsewhere while a new file and a new version of an old one
    settle here: both are committed into the shared namespace, the new
    version based on the old one's state there (no conflicted copy)."""
    ma, mb = mount(alice, settle=2), mount(bob)
    os.mkdir(at(ma, "proj"))
    write(at(ma, "proj", "old.txt"), b"version 1\n")
    until_server_holds(alice, {"proj/old.txt": b"version 1\n"})
    write(at(ma, "proj", "old.txt"), b"version 2\n")
    write(at(ma, "proj", "note.txt"), b"hello\n")
    ns = share_by_api(alice, "proj", bob)
    all_arrived(alice, bob, [(ma, "proj"), (mb, "proj")], ns,
                {"old.txt": b"version 2\n", "note.txt": b"hello\n"}, mount)


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_queued_changes_follow_a_folder_another_mount_of_the_user_shares(
        alice, bob, mount, proxy, start):
    """The queued commit reaches the server after the share and is refused
    as cross_namespace: it is sent again, re-addressed to the shared
    namespace."""
    ma = mount(alice.clone(proxy.url), settle=0, start=start)
    other = mount(alice, start=start)
    mb = mount(bob, start=start)
    os.makedirs(at(ma, "proj", "sub"))
    write(at(ma, "proj", "old.txt"), b"version 1\n")
    write(at(ma, "proj", "name.txt"), b"renamed\n")
    write(at(ma, "proj", "gone.txt"), b"deleted\n")
    write(at(ma, "proj", "mode.txt"), b"private\n")
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: read(at(other, "proj", "old.txt")) == b"version 1\n", within=10,
          what="the folder in the other mount")

    proxy.hold(r"POST /meta/ns/\d+/commit")
    write(at(ma, "proj", "note.txt"), b"hello\n")
    write(at(ma, "proj", "sub", "deep.txt"), b"deep\n")
    write(at(ma, "proj", "old.txt"), b"version 2\n")
    os.mkdir(at(ma, "proj", "new"))
    write(at(ma, "proj", "new", "in-new.txt"), b"in a new folder\n")
    os.rename(at(ma, "proj", "name.txt"), at(ma, "proj", "sub", "new-name.txt"))
    os.unlink(at(ma, "proj", "gone.txt"))
    os.chmod(at(ma, "proj", "mode.txt"), 0o600)
    proxy.wait_held(1)
    cloudfs("share", at(other, "proj"), "bob")
    ns = shared_ns(alice, "proj")
    proxy.release()
    all_arrived(alice, bob, [(ma, "proj"), (other, "proj"), (mb, "proj")], ns,
                {"note.txt": b"hello\n", "sub/deep.txt": b"deep\n",
                 "old.txt": b"version 2\n", "new/in-new.txt": b"in a new folder\n",
                 "sub/new-name.txt": b"renamed\n", "mode.txt": b"private\n"},
                mount, dirs=("sub", "new"))
    assert server_listing(alice, ns)["mode.txt"]["mode"] == 0o600


def test_a_queued_save_by_rename_follows_a_folder_another_mount_shares(
        alice, bob, mount, proxy):
    """Renames over existing entries (a file, a symlink), queued when
    another mount shares their folder, replace them in the shared
    namespace: the replaced entries' deletes go along with the moves
    (harness seed 519 once lost such a rename: its delete was refused as
    a conflict)."""
    ma = mount(alice.clone(proxy.url), settle=0)
    other = mount(alice)
    os.makedirs(at(ma, "proj", "sub"))
    write(at(ma, "proj", "doc.txt"), b"version 1\n")
    os.symlink("doc.txt", at(ma, "proj", "sub", "link"))
    os.symlink("elsewhere", at(ma, "proj", "link-new"))
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: os.path.lexists(at(other, "proj", "link-new")), within=10,
          what="the folder in the other mount")

    proxy.hold(r"POST /meta/ns/\d+/commit")
    write(at(ma, "proj", ".doc.txt.tmp"), b"version 2\n")
    os.rename(at(ma, "proj", ".doc.txt.tmp"), at(ma, "proj", "doc.txt"))
    os.rename(at(ma, "proj", "link-new"), at(ma, "proj", "sub", "link"))
    proxy.wait_held(1)
    cloudfs("share", at(other, "proj"), "bob")
    ns = shared_ns(alice, "proj")
    proxy.release()
    cloudfs("status", "--wait", "--timeout", "60", ma.mountpoint)
    listing = server_listing(alice, ns)
    assert sorted(listing) == ["doc.txt", "sub", "sub/link"], sorted(listing)
    assert listing["sub/link"]["target"] == "elsewhere"
    assert read(at(ma, "proj", "doc.txt")) == b"version 2\n"
    assert os.readlink(at(ma, "proj", "sub", "link")) == "elsewhere"


def test_a_change_after_an_own_rename_not_yet_listed_follows_a_share(
        alice, bob, mount, proxy):
    """The mount's rename of a file is committed, the file's next change
    waits behind it, and the mount has not listed its own rename when
    another mount shares the folder. The server lists the moved-away node
    as deleted at the JID of that rename, which the mount once took for
    news: the change lost its base and came back as a conflicted copy of
    itself (harness seed 519)."""
    ma = mount(alice.clone(proxy.url), settle=0)
    other = mount(alice)
    os.makedirs(at(ma, "proj"))
    write(at(ma, "proj", "doc.txt"), b"version 1\n")
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: read(at(other, "proj", "doc.txt")) == b"version 1\n", within=10,
          what="the folder in the other mount")

    proxy.hold(rf"GET /meta/ns/{alice.root_ns}/list|POST /meta/ns/\d+/commit")
    os.rename(at(ma, "proj", "doc.txt"), at(ma, "proj", "renamed.txt"))
    proxy.wait_held(1)  # the rename's commit
    write(at(ma, "proj", "renamed.txt"), b"version 2\n")
    until(lambda: cloudfs("status", "--json", ma.mountpoint, expect=3)
          ["mounts"][0]["pending_ops"] == 2, within=10, what="the change queued")
    proxy.pass_held(1)
    until(lambda: on_server(alice, alice.root_ns, "proj/renamed.txt"), within=10,
          what="the rename on the server")
    proxy.wait_held(2)  # the change's commit, and the listing of the rename
    cloudfs("share", at(other, "proj"), "bob")
    ns = shared_ns(alice, "proj")
    proxy.release()
    all_arrived(alice, bob, [(ma, "proj"), (other, "proj")], ns,
                {"renamed.txt": b"version 2\n"}, mount)


def test_changes_under_a_folder_follow_it_past_a_change_of_the_folder_itself(
        alice, bob, mount, proxy):
    """The folder's own change (its mode) is queued among them: it is
    refused (a shared folder's mount has no mode of its own), and the
    changes under the folder still follow it."""
    ma = mount(alice.clone(proxy.url), settle=0)
    mb = mount(bob)
    os.makedirs(at(ma, "proj"))
    write(at(ma, "proj", "old.txt"), b"version 1\n")
    cloudfs("status", "--wait", ma.mountpoint)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    write(at(ma, "proj", "note.txt"), b"hello\n")
    write(at(ma, "proj", "old.txt"), b"version 2\n")
    os.chmod(at(ma, "proj"), 0o700)
    write(at(ma, "proj", "late.txt"), b"after the folder's change\n")
    proxy.wait_held(1)
    ns = share_by_api(alice, "proj", bob)
    proxy.release()
    all_arrived(alice, bob, [(ma, "proj"), (mb, "proj")], ns,
                {"note.txt": b"hello\n", "old.txt": b"version 2\n",
                 "late.txt": b"after the folder's change\n"},
                mount, allowed=("refused dir 'proj':",))


def test_changes_queued_by_a_mount_that_was_down_follow_a_share_made_meanwhile(
        alice, bob, mount, proxy):
    """The mount is killed with its commit in doubt, the folder is shared
    through the API, and the mount starts again on the same cache: its
    queue goes to the shared namespace."""
    ma = mount(alice.clone(proxy.url), settle=0)
    os.mkdir(at(ma, "proj"))
    write(at(ma, "proj", "old.txt"), b"version 1\n")
    cloudfs("status", "--wait", ma.mountpoint)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    write(at(ma, "proj", "note.txt"), b"hello\n")
    write(at(ma, "proj", "old.txt"), b"version 2\n")
    proxy.wait_held(1)
    until(lambda: (lambda st: st["open_writes"] == 0 and st["pending_ops"] == 2)(
        cloudfs("status", "--json", ma.mountpoint, expect=3)["mounts"][0]),
        within=10, what="both changes queued")
    ma.kill9()
    ns = share_by_api(alice, "proj", bob)
    proxy.release()  # the dead mount's commit: cross_namespace, unheard
    again = mount(alice.clone(proxy.url), cache=ma.cache, start="daemon")
    mb = mount(bob)
    all_arrived(alice, bob, [(again, "proj"), (mb, "proj")], ns,
                {"note.txt": b"hello\n", "old.txt": b"version 2\n"}, mount)


def test_a_folder_shared_elsewhere_keeps_showing_its_files_while_it_is_listed(
        alice, bob, mount, proxy):
    """Between the share arriving and the shared namespace's first
    listing, the folder shows what it held (it once showed nothing), its
    files read, and the listing changes none of it."""
    other = mount(alice.clone(proxy.url))
    ma = mount(alice)
    os.makedirs(at(ma, "proj", "sub"))
    write(at(ma, "proj", "a.txt"), b"alpha\n")
    write(at(ma, "proj", "sub", "b.txt"), b"beta\n")
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: read(at(other, "proj", "sub", "b.txt")) == b"beta\n", within=10,
          what="the folder in the other mount")
    proxy.hold(rf"GET /meta/ns/(?!{alice.root_ns}/)\d+/list")
    cloudfs("share", at(ma, "proj"), "bob")
    proxy.wait_held(1)  # the other mount follows the share, unlisted
    assert sorted(os.listdir(at(other, "proj"))) == ["a.txt", "sub"]
    assert read(at(other, "proj", "a.txt")) == b"alpha\n"
    assert os.listdir(at(other, "proj", "sub")) == ["b.txt"]
    proxy.release()
    cloudfs("status", "--wait", "--timeout", "30", other.mountpoint)
    assert sorted(os.listdir(at(other, "proj"))) == ["a.txt", "sub"]
    assert read(at(other, "proj", "sub", "b.txt")) == b"beta\n"


def test_a_file_deleted_in_a_folder_just_shared_goes_when_it_is_listed(
        alice, bob, mount, proxy):
    """The shared namespace's first listing is a snapshot that leaves
    deleted nodes out: what the share moved along and the listing does
    not name is gone on the server, and goes here too."""
    other = mount(alice.clone(proxy.url))
    os.makedirs(at(other, "proj"))
    write(at(other, "proj", "stays.txt"), b"stays\n")
    write(at(other, "proj", "goes.txt"), b"goes\n")
    cloudfs("status", "--wait", other.mountpoint)
    proxy.hold(rf"GET /meta/ns/(?!{alice.root_ns}/)\d+/list")
    ns = share_by_api(alice, "proj", bob)
    proxy.wait_held(1)
    alice.commit_ok(ns, {"op": "delete", "path": "goes.txt"})
    assert sorted(os.listdir(at(other, "proj"))) == ["goes.txt", "stays.txt"]
    proxy.release()
    until(lambda: os.listdir(at(other, "proj")) == ["stays.txt"], within=10,
          what="the deleted file gone from the shared folder")
    assert read(at(other, "proj", "stays.txt")) == b"stays\n"


def test_a_share_between_the_heads_and_the_listing_is_not_taken_for_one_left(
        alice, bob, mount, proxy):
    """A catch-up asks the server for its namespaces' heads, then lists
    them. A share made in between reaches the mount through the root's
    listing, and heads from before it do not name the new namespace: the
    mount once took it for a namespace the user had left, forgot it, and
    showed the folder empty for good (harness seed 102)."""
    m = mount(alice.clone(proxy.url))
    os.makedirs(at(m, "proj", "sub"))
    write(at(m, "proj", "sub", "b.txt"), b"beta\n")
    cloudfs("status", "--wait", m.mountpoint)
    proxy.hold(rf"GET /meta/ns/{alice.root_ns}/list")
    alice.write_file(alice.root_ns, "poke.txt", b"a change to catch up with\n")
    proxy.wait_held(1)  # the heads are asked for; the listing waits
    ns = share_by_api(alice, "proj", bob)
    proxy.release()
    until(lambda: os.path.exists(at(m, "poke.txt")), within=10, what="the listing")
    cloudfs("status", "--wait", "--timeout", "30", m.mountpoint)
    followed = [n["ns"] for n in
                cloudfs("--json", "status", m.mountpoint)["mounts"][0]["namespaces"]]
    assert ns in followed, followed
    assert os.listdir(at(m, "proj", "sub")) == ["b.txt"]
    assert read(at(m, "proj", "sub", "b.txt")) == b"beta\n"
    assert "no longer shared" not in m.log_text()


def test_share_returns_once_the_mount_shows_the_shared_folder(alice, bob, mount, proxy):
    """So that an unshare (or a script) right after it finds the shared
    folder: the harness once unshared at once and was told 'w2' is not a
    shared folder."""
    m = mount(alice.clone(proxy.url))
    os.mkdir(at(m, "proj"))
    cloudfs("status", "--wait", m.mountpoint)
    proxy.hold(rf"GET /meta/ns/{alice.root_ns}/list")
    share = subprocess.Popen([CLOUDFS, "share", at(m, "proj"), "bob"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    assert share.poll() is None, "share returned before the mount showed it"
    proxy.release()
    assert share.wait(timeout=30) == 0, share.stderr.read()
    cloudfs("unshare", at(m, "proj"), "bob")
