"""A mount of a cache directory that was mounted before resumes from where
the last mount stopped: it lists only what changed since (not the whole
namespace again), shows those changes at once, keeps the content it
fetched, and keeps every entry's inode number."""

import errno
import os
import time
import urllib.parse

import pytest

from cfs_fs import (Dir, File, make_local, payload, put_tree, read, rewrite, server_listing,
                    timed, tree_of, until, until_server_holds)
from cfs_server import BLOCK_SIZE

# More entries than one page of a listing (the driver asks for 1000).
TREE = {
    "keep.bin": File(payload(BLOCK_SIZE + 1, "keep")),
    "other.bin": File(payload(1000, "other")),
    "gone.txt": File(b"deleted while unmounted"),
    "docs": Dir(0o750),
    "docs/a.txt": File(b"a"),
    "empty": Dir(),
    **{f"empty/{i:04d}": File(b"") for i in range(1001)},
}
CHANGED = {k: v for k, v in TREE.items() if k not in ("gone.txt", "docs", "docs/a.txt")}
CHANGED.update({"papers": Dir(0o750), "papers/a.txt": File(b"a"),
                "other.bin": File(b"rewritten while unmounted"),
                "new.txt": File(b"created while unmounted")})


def change_while_unmounted(client):
    """TREE becomes CHANGED."""
    t = File().mtime_ns
    rewrite(client, client.root_ns, "other.bin", b"rewritten while unmounted", mtime_ns=t)
    client.write_file(client.root_ns, "new.txt", b"created while unmounted", mtime_ns=t)
    client.commit_ok(client.root_ns, {"op": "delete", "path": "gone.txt"},
                     {"op": "move", "path": "docs", "to": "papers"})


def list_requests(server, since):
    """The listings the server answered after byte SINCE of its log."""
    with open(server.log_path) as f:
        f.seek(since)
        return [line for line in f if "GET /meta/ns/" in line and "/list " in line]


@pytest.fixture
def first(server, alice, mount):
    """A first mount of TREE that read keep.bin, unmounted again."""
    put_tree(alice, alice.root_ns, TREE)
    m = mount(alice)
    assert read(os.path.join(m.mountpoint, "keep.bin")) == TREE["keep.bin"].data
    m.unmount()
    return m


def test_a_remount_shows_what_changed_while_unmounted_listing_only_the_changes(
        server, alice, first, mount, tmp_path):
    assert f"namespace {alice.root_ns} listed" in first.log_text()
    change_while_unmounted(alice)
    make_local(tmp_path / "ref", CHANGED)
    log_offset = os.path.getsize(server.log_path)

    m = mount(alice, cache=first.cache)

    assert tree_of(m.mountpoint) == tree_of(tmp_path / "ref")
    assert "listed" not in m.log_text(), m.log_text()
    # From cursor 0 the namespace takes two pages; the changes take one.
    assert len(list_requests(server, log_offset)) == 1, list_requests(server, log_offset)


def test_content_fetched_by_the_first_mount_reads_after_a_remount_without_the_server(
        server, alice, first, mount):
    m = mount(alice, cache=first.cache)

    server.stop()

    assert read(os.path.join(m.mountpoint, "keep.bin")) == TREE["keep.bin"].data
    # The server is really gone: what was never fetched cannot be read.
    result, _ = timed(lambda: read(os.path.join(m.mountpoint, "other.bin")), 60)
    assert isinstance(result, OSError) and result.errno == errno.EIO, result


def test_inode_numbers_survive_a_rename_and_a_remount_and_are_never_reused(
        alice, first, mount):
    m = mount(alice, cache=first.cache)
    before = {p: os.lstat(os.path.join(m.mountpoint, p)).st_ino
              for p in ("keep.bin", "gone.txt", "docs", "docs/a.txt")}
    m.unmount()
    change_while_unmounted(alice)

    m = mount(alice, cache=first.cache)

    after = {p: os.lstat(os.path.join(m.mountpoint, p)).st_ino
             for p in ("keep.bin", "papers", "papers/a.txt", "new.txt")}
    assert [after["keep.bin"], after["papers"], after["papers/a.txt"]] == \
        [before["keep.bin"], before["docs"], before["docs/a.txt"]]
    assert after["new.txt"] not in before.values()


def test_changes_left_queued_follow_a_folder_moved_elsewhere_while_unmounted(
        server, alice, mount):
    # A mount that could not send its last changes leaves them queued, and
    # the next mount resends them.  Here the server moved their folder
    # meanwhile: the resent create is refused (its folder is not there),
    # and must wait for the listing that shows where the folder went, while
    # the rest of the queue (a rename of the same file, which cannot go
    # before it) must not hold that listing back.  CI met this deadlock.
    m = mount(alice, timeout=2)
    os.mkdir(os.path.join(m.mountpoint, "docs"))
    until(lambda: "docs" in server_listing(alice, alice.root_ns), within=10,
          what="docs on the server")
    url = m.url
    server.stop()
    with open(os.path.join(m.mountpoint, "docs", "draft.txt"), "wb") as f:
        f.write(b"written while the server was away")
    time.sleep(0.5)  # settled and queued
    os.rename(os.path.join(m.mountpoint, "docs", "draft.txt"),
              os.path.join(m.mountpoint, "docs", "note.txt"))
    m.unmount()
    server.start(listen=f"127.0.0.1:{urllib.parse.urlparse(url).port}")
    alice.commit_ok(alice.root_ns, {"op": "move", "path": "docs", "to": "papers"})

    m2 = mount(alice, cache=m.cache, timeout=2)

    until_server_holds(alice, {"papers/note.txt": b"written while the server was away"},
                       within=30)
    assert read(os.path.join(m2.mountpoint, "papers", "note.txt")) == \
        b"written while the server was away"
    assert not os.path.exists(os.path.join(m2.mountpoint, "docs"))
