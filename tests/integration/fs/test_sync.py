"""A change committed elsewhere shows in the mount within a second: new
content, a new file, a delete, a rename or move of a file or of a
directory with its contents, a mode or mtime change, a shared folder that
appears or is left. Open handles read the new content; a file deleted
elsewhere stays readable through the handles open on it.

Each test first looks at what will change (so that the kernel caches it),
then commits from another client and polls the mount for at most 1 s."""

import os
import stat
import subprocess

import pytest

from cfs_fs import (at, Dir, exists, File, Link, make_local, MiB, payload, put_tree, read,
                    rewrite, tree_of, until)
from cfs_server import BLOCK_SIZE

TREE = {
    "a.txt": File(b"the old content\n"),
    "big.bin": File(payload(BLOCK_SIZE + 5, "old big")),
    "docs": Dir(0o755),
    "docs/deep": Dir(0o750),
    "docs/deep/b.txt": File(b"b" * 1000, 0o600),
    "docs/c.sh": File(b"#!/bin/sh\n", 0o755),
    "docs/link": Link("deep/b.txt"),
    "papers": Dir(0o755),
}


@pytest.fixture
def mounted(alice, mount):
    """Alice's mount of TREE, and another client of hers to change it."""
    put_tree(alice, alice.root_ns, TREE)
    return mount(alice), alice.clone()


def look_at_everything(m):
    """Reads the whole mount, so that the kernel caches names, attributes
    and content (and the next look must be invalidated to change)."""
    tree_of(m.mountpoint)


@pytest.mark.parametrize("new", [payload(2 * BLOCK_SIZE + 3, "longer"), b"short",
                                 b"the new content\n"], ids=["longer", "shorter", "same-size"])
def test_new_content_committed_elsewhere_shows_within_a_second(mounted, new):
    m, other = mounted
    look_at_everything(m)

    rewrite(other, other.root_ns, "a.txt", new)

    until(lambda: read(at(m, "a.txt")) == new, what="new content")
    assert os.stat(at(m, "a.txt")).st_size == len(new)
    assert subprocess.run(["cat", at(m, "a.txt")], capture_output=True).stdout == new


def test_a_file_created_elsewhere_shows_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)
    assert not exists(at(m, "docs", "new.txt"))  # a lookup that failed

    other.write_file(other.root_ns, "docs/new.txt", b"fresh", mode=0o640)

    until(lambda: "new.txt" in os.listdir(at(m, "docs")) and
          read(at(m, "docs", "new.txt")) == b"fresh", what="the new file")
    assert stat.S_IMODE(os.stat(at(m, "docs", "new.txt")).st_mode) == 0o640


def test_a_folder_listed_before_lists_what_changes_in_it_elsewhere(mounted):
    """The kernel keeps a folder's listing once it read it (a walk of a
    listed tree costs no round trip), so every change made elsewhere must
    reach it: an entry that comes, goes, or is renamed in, out or within;
    and the folder's mtime moves, as POSIX has it for a changed folder."""
    m, other = mounted
    papers = at(m, "papers")
    assert os.listdir(papers) == []
    before = os.stat(papers).st_mtime_ns

    other.write_file(other.root_ns, "papers/one.txt", b"1")
    until(lambda: os.listdir(papers) == ["one.txt"], what="the new entry")
    assert os.stat(papers).st_mtime_ns > before
    other.commit_ok(other.root_ns, {"op": "move", "path": "a.txt", "to": "papers/two.txt"})
    until(lambda: sorted(os.listdir(papers)) == ["one.txt", "two.txt"] and
          "a.txt" not in os.listdir(m.mountpoint), what="the entry moved in")
    other.commit_ok(other.root_ns, {"op": "move", "path": "papers/one.txt",
                                    "to": "papers/uno.txt"})
    until(lambda: sorted(os.listdir(papers)) == ["two.txt", "uno.txt"], what="the rename")
    other.commit_ok(other.root_ns, {"op": "move", "path": "papers/two.txt", "to": "a.txt"})
    other.commit_ok(other.root_ns, {"op": "delete", "path": "papers/uno.txt"})
    until(lambda: os.listdir(papers) == [] and "a.txt" in os.listdir(m.mountpoint),
          what="the entries gone")
    assert read(at(m, "a.txt")) == TREE["a.txt"].data


def test_a_file_deleted_elsewhere_disappears_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)

    other.commit_ok(other.root_ns, {"op": "delete", "path": "docs/c.sh"})

    until(lambda: not exists(at(m, "docs", "c.sh")) and
          "c.sh" not in os.listdir(at(m, "docs")), what="the delete")


def test_a_file_renamed_elsewhere_moves_within_a_second_keeping_its_inode(mounted):
    m, other = mounted
    look_at_everything(m)
    ino = os.stat(at(m, "a.txt")).st_ino

    other.commit_ok(other.root_ns, {"op": "move", "path": "a.txt", "to": "papers/renamed.txt"})

    until(lambda: not exists(at(m, "a.txt")) and
          read(at(m, "papers", "renamed.txt")) == TREE["a.txt"].data, what="the rename")
    assert "a.txt" not in os.listdir(m.mountpoint)
    assert os.stat(at(m, "papers", "renamed.txt")).st_ino == ino


def test_a_file_replaced_by_a_symlink_elsewhere_shows_as_the_symlink_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)

    other.commit_ok(other.root_ns, {"op": "symlink", "path": "a.txt", "target": "docs/c.sh",
                                    "base_jid": other.snapshot(other.root_ns)[0]["a.txt"]["jid"]})

    until(lambda: stat.S_ISLNK(os.lstat(at(m, "a.txt")).st_mode) and
          os.readlink(at(m, "a.txt")) == "docs/c.sh", what="the symlink")
    assert read(at(m, "a.txt")) == TREE["docs/c.sh"].data


def test_a_symlink_replaced_by_a_file_elsewhere_shows_as_the_file_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)

    rewrite(other, other.root_ns, "docs/link", b"a file now")

    until(lambda: stat.S_ISREG(os.lstat(at(m, "docs", "link")).st_mode) and
          read(at(m, "docs", "link")) == b"a file now", what="the file")


def test_a_directory_renamed_elsewhere_moves_with_its_contents_within_a_second(
        mounted, tmp_path):
    m, other = mounted
    make_local(tmp_path / "ref", {p[len("docs/"):]: n for p, n in TREE.items()
                                  if p.startswith("docs/")})
    look_at_everything(m)

    other.commit_ok(other.root_ns, {"op": "move", "path": "docs", "to": "papers/moved"})

    until(lambda: not exists(at(m, "docs")) and
          tree_of(at(m, "papers", "moved")) == tree_of(tmp_path / "ref"),
          what="the moved directory")
    assert not exists(at(m, "docs", "deep", "b.txt"))


def test_a_directory_deleted_elsewhere_disappears_with_its_contents_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)

    other.commit_ok(other.root_ns, {"op": "delete", "path": "docs", "recursive": True})

    until(lambda: not exists(at(m, "docs")) and "docs" not in os.listdir(m.mountpoint),
          what="the delete")
    assert not exists(at(m, "docs", "deep", "b.txt"))


def test_a_mode_and_mtime_change_shows_within_a_second(mounted):
    m, other = mounted
    look_at_everything(m)
    t = 1_234_567_890_123_456_789

    rewrite(other, other.root_ns, "a.txt", TREE["a.txt"].data, mode=0o755, mtime_ns=t)
    other.commit_ok(other.root_ns, {"op": "dir", "path": "docs", "mode": 0o700, "mtime_ns": t})

    until(lambda: [(stat.S_IMODE(st.st_mode), st.st_mtime_ns) for st in
                   (os.stat(at(m, "a.txt")), os.stat(at(m, "docs")))] ==
          [(0o755, t), (0o700, t)], what="the new modes and mtimes")


def share_photos(bob, *members):
    """Bob's folder Photos, shared with MEMBERS; returns its namespace."""
    put_tree(bob, bob.root_ns, {"Photos": Dir(), "Photos/cat.jpg": File(payload(MiB, "cat"))})
    ns = bob.post(f"/meta/ns/{bob.root_ns}/share", {"path": "Photos"}).json["ns"]
    for user in members:
        assert bob.post(f"/meta/ns/{ns}/invite", {"user": user.name}).status == 200
    return ns


def test_a_folder_shared_with_the_user_shows_within_a_second(mounted, bob):
    m, _ = mounted
    ns = share_photos(bob)
    look_at_everything(m)

    assert bob.post(f"/meta/ns/{ns}/invite", {"user": "alice"}).status == 200

    until(lambda: read(at(m, "Photos", "cat.jpg")) == payload(MiB, "cat"),
          what="the shared folder")


def test_a_change_in_a_shared_folder_shows_in_every_members_mount_within_a_second(
        mounted, alice, bob):
    m, _ = mounted
    ns = share_photos(bob, alice)
    until(lambda: exists(at(m, "Photos", "cat.jpg")), what="the shared folder")
    look_at_everything(m)

    bob.write_file(ns, "dog.jpg", b"woof")
    bob.commit_ok(ns, {"op": "delete", "path": "cat.jpg"})

    until(lambda: sorted(os.listdir(at(m, "Photos"))) == ["dog.jpg"] and
          read(at(m, "Photos", "dog.jpg")) == b"woof", what="bob's change")


@pytest.mark.parametrize("how", ["leave", "removed"])
def test_a_shared_folder_the_user_leaves_disappears_within_a_second(mounted, alice, bob, how):
    m, _ = mounted
    ns = share_photos(bob, alice)
    until(lambda: exists(at(m, "Photos", "cat.jpg")), what="the shared folder")
    look_at_everything(m)

    if how == "leave":
        r = alice.post(f"/meta/ns/{ns}/leave")
    else:
        r = bob.post(f"/meta/ns/{ns}/remove", {"user": "alice"})
    assert r.status == 200, r

    until(lambda: not exists(at(m, "Photos")) and "Photos" not in os.listdir(m.mountpoint),
          what="the departure")
    assert not exists(at(m, "Photos", "cat.jpg"))


def test_an_open_handle_reads_the_new_content_after_a_change_elsewhere(mounted):
    m, other = mounted
    new = payload(BLOCK_SIZE + 77, "new big")
    with open(at(m, "big.bin"), "rb", buffering=0) as f:
        assert f.read() == TREE["big.bin"].data

        rewrite(other, other.root_ns, "big.bin", new)

        until(lambda: os.pread(f.fileno(), 2 * BLOCK_SIZE, 0) == new,
              what="new content through the open handle")
        assert os.fstat(f.fileno()).st_size == len(new)


@pytest.mark.parametrize("read_first", [True, False], ids=["cached", "not-yet-read"])
def test_a_file_deleted_elsewhere_stays_readable_through_an_open_handle(mounted, read_first):
    m, other = mounted
    old = TREE["big.bin"].data
    with open(at(m, "big.bin"), "rb", buffering=0) as f:
        if read_first:
            assert f.read() == old

        other.commit_ok(other.root_ns, {"op": "delete", "path": "big.bin"})

        until(lambda: "big.bin" not in os.listdir(m.mountpoint), what="the delete")
        assert os.pread(f.fileno(), len(old) + 1, 0) == old
    with pytest.raises(FileNotFoundError):
        open(at(m, "big.bin"), "rb")


def test_an_open_handle_follows_its_file_through_a_rename_elsewhere(mounted):
    m, other = mounted
    with open(at(m, "docs", "deep", "b.txt"), "rb", buffering=0) as f:
        other.commit_ok(other.root_ns, {"op": "move", "path": "docs", "to": "papers/docs"})
        until(lambda: exists(at(m, "papers", "docs", "deep", "b.txt")), what="the move")
        rewrite(other, other.root_ns, "papers/docs/deep/b.txt", b"changed after the move")

        until(lambda: os.pread(f.fileno(), 100, 0) == b"changed after the move",
              what="new content through the handle opened before the move")
