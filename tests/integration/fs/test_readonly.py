"""A mount made with -o ro: every change through it fails with EROFS, and
nothing changes, in the mount or on the server."""

import errno
import os

import pytest

from cfs_fs import Dir, File, Link, mounts, put_tree, tree_of
from cfs_server import Server

TREE = {"a.txt": File(b"a"), "dir": Dir(), "dir/b.txt": File(b"b"), "link": Link("a.txt")}

CHANGES = {
    "create a file": lambda p: open(os.path.join(p, "new.txt"), "wb"),
    "open a file for writing": lambda p: open(os.path.join(p, "a.txt"), "r+b"),
    "truncate a file": lambda p: os.truncate(os.path.join(p, "a.txt"), 0),
    "append to a file": lambda p: open(os.path.join(p, "a.txt"), "ab"),
    "make a directory": lambda p: os.mkdir(os.path.join(p, "newdir")),
    "remove a file": lambda p: os.unlink(os.path.join(p, "a.txt")),
    "remove a directory": lambda p: os.rmdir(os.path.join(p, "dir")),
    "rename": lambda p: os.rename(os.path.join(p, "a.txt"), os.path.join(p, "c.txt")),
    "make a symlink": lambda p: os.symlink("a.txt", os.path.join(p, "newlink")),
    "make a hard link": lambda p: os.link(os.path.join(p, "a.txt"), os.path.join(p, "hard")),
    "change a mode": lambda p: os.chmod(os.path.join(p, "a.txt"), 0o600),
    "change times": lambda p: os.utime(os.path.join(p, "a.txt"), (0, 0)),
    "set an attribute": lambda p: os.setxattr(os.path.join(p, "a.txt"), "user.x", b"1"),
}


@pytest.fixture(scope="module")
def readonly(tmp_path_factory):
    """One server and one read-only mount of TREE for the module: nothing
    changes it."""
    d = tmp_path_factory.mktemp("readonly")
    server = Server(d / "data", d / "cloudfsd.log").start()
    alice = server.user("alice")
    put_tree(alice, alice.root_ns, TREE)
    with mounts(d) as mount:
        yield alice, mount(alice, ro=None)
    server.stop()


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_through_the_mount_fails_with_erofs_and_changes_nothing(readonly, change):
    alice, m = readonly
    before, server_before = tree_of(m.mountpoint), alice.snapshot(alice.root_ns)

    with pytest.raises(OSError) as e:
        opened = CHANGES[change](m.mountpoint)
        opened.close()  # (only reached if it did not fail)

    assert e.value.errno == errno.EROFS, e.value
    assert tree_of(m.mountpoint) == before
    assert alice.snapshot(alice.root_ns) == server_before
