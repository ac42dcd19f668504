"""A rename into a folder, queued when another mount of the same user
shares that folder: the move reaches the server after the folder became
the mount of a new namespace, and a move across namespaces is refused.
The user renamed a file: it must end where the user moved it, with its
name and content, gone from its old place, and never as a conflicted
copy of itself (DESIGN.md, "a conflict is another device's edit")."""

import os

import pytest

from cfs_fs import at, cloudfs, exists, read, server_listing, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from test_share import all_arrived, shared_ns, write


@pytest.mark.parametrize("edited", [False, True])
def test_a_queued_rename_into_a_folder_another_mount_shares_ends_there(
        alice, bob, mount, proxy, edited):
    ma = mount(alice.clone(proxy.url), settle=0)
    other = mount(alice)
    os.makedirs(at(ma, "proj"))
    write(at(ma, "proj", "keep.txt"), b"kept\n")
    write(at(ma, "top.txt"), b"version 1\n")
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: read(at(other, "top.txt")) == b"version 1\n", within=10,
          what="the files in the other mount")

    proxy.hold(r"POST /meta/ns/\d+/commit")
    data = b"version 2\n" if edited else b"version 1\n"
    if edited:
        write(at(ma, "top.txt"), data)
    os.rename(at(ma, "top.txt"), at(ma, "proj", "moved.txt"))
    proxy.wait_held(1)
    cloudfs("share", at(other, "proj"), "bob")
    ns = shared_ns(alice, "proj")
    proxy.release()
    all_arrived(alice, bob, [(ma, "proj"), (other, "proj")], ns,
                {"keep.txt": b"kept\n", "moved.txt": data}, mount)
    assert "top.txt" not in server_listing(alice, alice.root_ns)
    for m in (ma, other):
        until(lambda: not exists(at(m, "top.txt")), within=10,
              what=f"top.txt gone from {m.mountpoint}")
        assert sorted(os.listdir(at(m, "proj"))) == ["keep.txt", "moved.txt"]
