"""Hard links on the mount. A further name of a node (a LINK entry on the
server, op "link") is shown as that node's inode: one st_ino for every
name, st_nlink counting them, writes through any name changing the one
content; unlinking one name keeps the others, and unlinking (or renaming
over) the node's own name leaves it at one of its other names at once,
as the server does (cloudfs-protocol(7), "hard links"). link(2) on the
mount is still EPERM (mount.cloudfs(8), BUGS)."""

import errno
import os
import sqlite3
import subprocess

import pytest

from cfs_fs import at, read, until


def link(client, path, to):
    client.commit_ok(client.root_ns, {"op": "link", "path": path, "to": to})


def content_at(client, path):
    """The block list and size at PATH on the server, through a link."""
    snap, _ = client.snapshot(client.root_ns)
    e = snap[path]
    if e["kind"] == "link":
        (e,) = [f for f in snap.values() if f["node"] == e["of"]]
    return e["blocks"], e["size"]


def server_names(client):
    """{path: kind} on the server."""
    return {p: e["kind"] for p, e in client.snapshot(client.root_ns)[0].items()}


def append_synced(path, data):
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@pytest.fixture
def linked(alice, mount):
    """alice's a.txt with a further name, b.txt, made through the
    protocol; her mount, and the client."""
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "b.txt")
    return mount(alice), alice


def test_link_on_the_mount_stays_eperm_and_sends_nothing(linked):
    m, alice = linked
    os.mkdir(at(m, "d"))
    for src in ("a.txt", "d"):
        with pytest.raises(OSError) as e:
            os.link(at(m, src), at(m, "hard"))
        assert e.value.errno == errno.EPERM
    assert not os.path.exists(at(m, "hard"))
    until(lambda: "d" in alice.snapshot(alice.root_ns)[0], within=30, what="d on the server")
    assert "hard" not in alice.snapshot(alice.root_ns)[0]


def test_every_name_of_a_node_is_its_inode_with_its_link_count(alice, mount):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "b.txt")
    link(alice, "b.txt", "d/c.txt")
    m = mount(alice)
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt", "d"]
    names = [at(m, "a.txt"), at(m, "b.txt"), at(m, "d", "c.txt")]
    stats = [os.stat(p) for p in names]
    assert len({s.st_ino for s in stats}) == 1
    assert [s.st_nlink for s in stats] == [3, 3, 3]
    assert all(read(p) == b"the one content\n" for p in names)
    # readdir's inode numbers are the same as stat's (find -samefile, du).
    inos = {e.name: e.inode() for e in os.scandir(m.mountpoint)}
    assert inos["a.txt"] == inos["b.txt"] == stats[0].st_ino
    assert os.stat(at(m, "d")).st_nlink == 2
    du = subprocess.run(["find", m.mountpoint, "-samefile", names[0]],
                        capture_output=True, text=True, check=True)
    assert sorted(du.stdout.split()) == sorted(names)


def test_writes_through_any_name_change_the_one_content(linked):
    m, alice = linked
    append_synced(at(m, "b.txt"), b"more\n")
    assert read(at(m, "a.txt")) == b"the one content\nmore\n"
    with open(at(m, "a.txt"), "r+b") as f:
        f.write(b"THE")
        f.flush()
        os.fsync(f.fileno())
    want = b"THE one content\nmore\n"
    assert read(at(m, "b.txt")) == want

    def both_changed():
        a, b = content_at(alice, "a.txt"), content_at(alice, "b.txt")
        return a == b and a[1] == len(want)
    until(both_changed, within=30, what="the writes on the server")
    assert server_names(alice) == {"a.txt": "file", "b.txt": "link"}
    assert "conflicted copy" not in " ".join(os.listdir(m.mountpoint))


def test_unlinking_a_further_name_keeps_the_node(linked):
    m, alice = linked
    os.unlink(at(m, "b.txt"))
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt"]
    until(lambda: server_names(alice) == {"a.txt": "file"}, within=30,
          what="the link's delete on the server")
    assert read(at(m, "a.txt")) == b"the one content\n"


def test_unlinking_the_nodes_own_name_leaves_it_at_its_other_name_at_once(linked):
    m, alice = linked
    ino = os.stat(at(m, "b.txt")).st_ino
    with open(at(m, "b.txt"), "ab") as f:
        os.unlink(at(m, "a.txt"))
        # No moment without it: the other name shows the node still.
        assert read(at(m, "b.txt")) == b"the one content\n"
        st = os.stat(at(m, "b.txt"))
        assert (st.st_ino, st.st_nlink) == (ino, 1)
        f.write(b"written after the unlink\n")
        f.flush()
        os.fsync(f.fileno())
    want = b"the one content\nwritten after the unlink\n"
    until(lambda: server_names(alice) == {"b.txt": "file"}
          and content_at(alice, "b.txt")[1] == len(want),
          within=30, what="the node at b.txt on the server, with the write")
    assert sorted(os.listdir(m.mountpoint)) == ["b.txt"]
    assert read(at(m, "b.txt")) == want
    assert os.stat(at(m, "b.txt")).st_ino == ino


def test_renames_over_and_of_names(linked):
    m, alice = linked
    # Onto another name of the same node: nothing changes (rename(2)).
    os.rename(at(m, "b.txt"), at(m, "a.txt"))
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt"]
    # A further name moves like any name.
    os.mkdir(at(m, "d"))
    os.rename(at(m, "b.txt"), at(m, "d", "b.txt"))
    assert os.stat(at(m, "d", "b.txt")).st_ino == os.stat(at(m, "a.txt")).st_ino
    # A file saved over the node's own name: the node lives on at d/b.txt.
    with open(at(m, "new"), "wb") as f:
        f.write(b"saved over\n")
    os.rename(at(m, "new"), at(m, "a.txt"))
    assert read(at(m, "a.txt")) == b"saved over\n"
    assert read(at(m, "d", "b.txt")) == b"the one content\n"
    assert os.stat(at(m, "d", "b.txt")).st_nlink == 1
    until(lambda: server_names(alice) == {"a.txt": "file", "d": "dir", "d/b.txt": "file"},
          within=30, what="the renames on the server")
    assert content_at(alice, "d/b.txt")[1] == len(b"the one content\n")
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "d"]
    assert read(at(m, "d", "b.txt")) == b"the one content\n"


def test_a_folder_that_holds_a_links_name_is_not_empty(alice, mount):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "d/b.txt")
    m = mount(alice)
    assert os.listdir(at(m, "d")) == ["b.txt"]
    with pytest.raises(OSError) as e:
        os.rmdir(at(m, "d"))
    assert e.value.errno == errno.ENOTEMPTY
    subprocess.run(["rm", "-rf", at(m, "d")], check=True)
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    until(lambda: server_names(alice) == {"a.txt": "file"}, within=30,
          what="d gone from the server")
    assert read(at(m, "a.txt")) == b"the one content\n"


def test_a_second_mount_sees_names_come_and_go(linked, mount):
    m, alice = linked
    m2 = mount(alice)
    assert os.stat(at(m2, "a.txt")).st_nlink == 2
    link(alice, "a.txt", "c.txt")
    until(lambda: os.stat(at(m2, "a.txt")).st_nlink == 3, within=30,
          what="the new name's count on the second mount")
    assert os.stat(at(m2, "c.txt")).st_ino == os.stat(at(m2, "a.txt")).st_ino
    os.unlink(at(m, "a.txt"))
    # The kernel of the second mount is told: every name's count drops.
    until(lambda: sorted(os.listdir(m2.mountpoint)) == ["b.txt", "c.txt"]
          and os.stat(at(m2, "b.txt")).st_nlink == 2
          and os.stat(at(m2, "c.txt")).st_nlink == 2,
          within=30, what="the node at one of its names on the second mount")
    append_synced(at(m2, "c.txt"), b"from the second mount\n")
    want = b"the one content\nfrom the second mount\n"
    until(lambda: read(at(m, "b.txt")) == want, within=30, what="the write on the first mount")
    assert os.stat(at(m, "b.txt")).st_nlink == 2
    assert os.stat(at(m, "b.txt")).st_ino == os.stat(at(m, "c.txt")).st_ino


def test_names_survive_a_remount_and_a_kill_9(linked, mount):
    m, alice = linked
    ino = os.stat(at(m, "a.txt")).st_ino
    m.unmount()
    m = mount(alice, cache=m.cache)
    st = os.stat(at(m, "b.txt"))
    assert (st.st_ino, st.st_nlink) == (ino, 2)
    os.unlink(at(m, "a.txt"))
    append_synced(at(m, "b.txt"), b"fsynced\n")
    m.kill9()
    m = mount(alice, cache=m.cache)
    want = b"the one content\nfsynced\n"
    assert read(at(m, "b.txt")) == want
    until(lambda: server_names(alice) == {"b.txt": "file"}
          and content_at(alice, "b.txt")[1] == len(want),
          within=30, what="the unlink and the write on the server")
    assert sorted(os.listdir(m.mountpoint)) == ["b.txt"]
    assert os.stat(at(m, "b.txt")).st_nlink == 1


def test_a_cache_from_before_links_lists_again_and_shows_them(linked, mount):
    """A cache of schema 6 took links as no entry: its next mount lists
    every namespace again, so that they show."""
    m, alice = linked
    assert os.stat(at(m, "a.txt")).st_nlink == 2
    m.unmount()
    db = sqlite3.connect(os.path.join(m.cache, "cache.db"))
    db.executescript("DELETE FROM entries WHERE kind = 9;"
                     "DROP INDEX entries_links;"
                     "ALTER TABLE entries DROP COLUMN link_of;"
                     "ALTER TABLE shadow DROP COLUMN link_of;"
                     "PRAGMA user_version = 6;")
    db.close()
    m = mount(alice, cache=m.cache)
    until(lambda: sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt"], within=30,
          what="the link after the upgrade")
    assert os.stat(at(m, "a.txt")).st_nlink == 2
    assert read(at(m, "b.txt")) == b"the one content\n"
