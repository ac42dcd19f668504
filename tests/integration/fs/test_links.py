"""Hard links made through the protocol (op "link") and a mount that does
not show them yet: link(2) stays EPERM there, and whatever the mount does
next to a linked file loses no byte of it. The node keeps its own name on
the mount; its further names are not shown."""

import errno
import os

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


def test_the_node_shows_at_its_own_name_and_writes_reach_every_name(linked):
    m, alice = linked
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt"]
    assert read(at(m, "a.txt")) == b"the one content\n"
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    with open(at(m, "a.txt"), "ab") as f:
        f.write(b"more\n")
        os.fsync(f.fileno())
    snap = alice.snapshot(alice.root_ns)[0]

    def both_changed():
        a, b = content_at(alice, "a.txt"), content_at(alice, "b.txt")
        return a == b and a[1] == len(b"the one content\nmore\n")
    until(both_changed, within=30, what="the write through a.txt on the server")
    assert snap["b.txt"]["kind"] == "link"


def test_deleting_the_nodes_name_on_the_mount_keeps_the_content_at_its_other_name(linked):
    m, alice = linked
    os.unlink(at(m, "a.txt"))
    until(lambda: read(at(m, "b.txt")) == b"the one content\n", within=30,
          what="the file at its other name")
    assert sorted(os.listdir(m.mountpoint)) == ["b.txt"]
    snap = alice.snapshot(alice.root_ns)[0]
    assert list(snap) == ["b.txt"] and snap["b.txt"]["kind"] == "file"


def test_a_file_the_mount_makes_at_a_links_name_never_writes_into_the_linked_file(linked):
    m, alice = linked
    before = content_at(alice, "a.txt")
    with open(at(m, "b.txt"), "wb") as f:
        f.write(b"mine\n")
        os.fsync(f.fileno())

    def kept_apart():
        copies = [n for n in os.listdir(m.mountpoint) if "conflicted copy" in n]
        return any(read(at(m, n)) == b"mine\n" for n in copies)
    until(kept_apart, within=30, what="the mount's b.txt as a conflicted copy")
    assert content_at(alice, "a.txt") == before == content_at(alice, "b.txt")
    assert alice.snapshot(alice.root_ns)[0]["b.txt"]["kind"] == "link"


def test_a_folder_that_holds_only_a_links_name_is_refused_and_comes_back(alice, mount):
    """rmdir(2) of a folder the mount shows empty, where the server holds
    a further name of a file the mount does not show: the server refuses
    the delete (not empty), the folder comes back, and no name and no
    byte is lost (mount.cloudfs(8), BUGS)."""
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "d/b.txt")
    m = mount(alice)
    assert os.listdir(at(m, "d")) == []
    os.rmdir(at(m, "d"))
    until(lambda: os.path.isdir(at(m, "d")), within=30, what="d back on the mount")
    snap = alice.snapshot(alice.root_ns)[0]
    assert sorted(snap) == ["a.txt", "d", "d/b.txt"]
    assert content_at(alice, "d/b.txt") == content_at(alice, "a.txt")
    assert read(at(m, "a.txt")) == b"the one content\n"
    assert "refused delete 'd'" in m.log_text()
