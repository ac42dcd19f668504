"""A rename into a folder, queued when another mount of the same user
shares that folder: the move reaches the server after the folder became
the mount of a new namespace, and a move across namespaces is refused.
The user renamed a file: it must end where the user moved it, with its
name and content, gone from its old place, and never as a conflicted
copy of itself (DESIGN.md, "a conflict is another device's edit")."""

import os

import pytest

from cfs_fs import at, cloudfs, exists, read, server_listing, until, until_server_holds
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from test_share import all_arrived, shared_ns, write


def rename_into_a_folder_shared_meanwhile(alice, mount, proxy, new=None, **options):
    """Mounts MA (through PROXY, with OPTIONS) and another mount of alice
    with proj/keep.txt and top.txt; holds MA's commits, writes NEW into
    top.txt if given, renames it to proj/moved.txt, and shares proj with
    bob from the other mount while the rename waits in the proxy.
    Returns MA, the other mount and the shared namespace; the proxy still
    holds the rename."""
    ma = mount(alice.clone(proxy.url), settle=0, **options)
    other = mount(alice)
    os.makedirs(at(ma, "proj"))
    write(at(ma, "proj", "keep.txt"), b"kept\n")
    write(at(ma, "top.txt"), b"version 1\n")
    cloudfs("status", "--wait", ma.mountpoint)
    until(lambda: read(at(other, "top.txt")) == b"version 1\n", within=10,
          what="the files in the other mount")

    proxy.hold(r"POST /meta/ns/\d+/commit")
    if new is not None:
        write(at(ma, "top.txt"), new)
    os.rename(at(ma, "top.txt"), at(ma, "proj", "moved.txt"))
    proxy.wait_held(1)
    cloudfs("share", at(other, "proj"), "bob")
    return ma, other, shared_ns(alice, "proj")


@pytest.mark.parametrize("edited", [False, True])
def test_a_queued_rename_into_a_folder_another_mount_shares_ends_there(
        alice, bob, mount, proxy, edited):
    data = b"version 2\n" if edited else b"version 1\n"
    ma, other, ns = rename_into_a_folder_shared_meanwhile(
        alice, mount, proxy, new=data if edited else None)
    proxy.release()
    all_arrived(alice, bob, [(ma, "proj"), (other, "proj")], ns,
                {"keep.txt": b"kept\n", "moved.txt": data}, mount)
    assert "top.txt" not in server_listing(alice, alice.root_ns)
    for m in (ma, other):
        until(lambda: not exists(at(m, "top.txt")), within=10,
              what=f"top.txt gone from {m.mountpoint}")
        assert sorted(os.listdir(at(m, "proj"))) == ["keep.txt", "moved.txt"]


def test_the_two_halves_of_a_move_into_a_folder_shared_since_survive_lost_answers(
        alice, bob, mount, proxy):
    """The move goes as the file's create in the shared namespace, then
    the original's delete: with the create's answer lost, it is sent
    again and applied once; the file is neither doubled nor lost."""
    ma, other, ns = rename_into_a_folder_shared_meanwhile(
        alice, mount, proxy, new=b"version 2\n")
    proxy.lose(rf"POST /meta/ns/{ns}/commit")
    proxy.release()
    proxy.wait_lost(1, within=60)  # the create's answer
    proxy.lose(None)
    # A lost answer costs the request's timeout (30 s) before it goes again.
    until_server_holds(alice, {"moved.txt": b"version 2\n"}, ns=ns, within=90,
                       what="the moved file in the shared namespace")
    all_arrived(alice, bob, [(ma, "proj"), (other, "proj")], ns,
                {"keep.txt": b"kept\n", "moved.txt": b"version 2\n"}, mount)
    assert "top.txt" not in server_listing(alice, alice.root_ns)
    until(lambda: not exists(at(ma, "top.txt")), within=10, what="top.txt gone")
    assert sorted(os.listdir(at(ma, "proj"))) == ["keep.txt", "moved.txt"]


def test_a_kill_9_between_the_two_halves_of_a_move_into_a_folder_shared_since(
        alice, bob, mount, proxy):
    """The create in the shared namespace is committed, the original's
    delete is on its way when the mount is killed: the remount sends the
    delete, and the file is at the one place the user moved it to."""
    ma, other, ns = rename_into_a_folder_shared_meanwhile(
        alice, mount, proxy, new=b"version 2\n", timeout=10)
    # The shared namespace's commits go; the root's, one at a time, until
    # the create is on the server: the next one of the root is the delete.
    proxy.hold(rf"POST /meta/ns/{alice.root_ns}/commit")
    for _ in range(50):
        until(lambda: "moved.txt" in server_listing(alice, ns) or proxy.held > 0,
              within=30, what="a commit of the root, or the create")
        if "moved.txt" in server_listing(alice, ns):
            break
        proxy.pass_held(1)
        until(lambda: proxy.passes == 0, within=10, what="the commit let go")
    proxy.wait_held(1)  # the original's delete
    assert "top.txt" in server_listing(alice, alice.root_ns)
    ma.kill9()
    proxy.cut()
    proxy.release()

    m2 = mount(alice.clone(proxy.url), cache=ma.cache, settle=0, timeout=10)
    until(lambda: "top.txt" not in server_listing(alice, alice.root_ns), within=30,
          what="the original's delete")
    all_arrived(alice, bob, [(m2, "proj"), (other, "proj")], ns,
                {"keep.txt": b"kept\n", "moved.txt": b"version 2\n"}, mount)
    until(lambda: not exists(at(m2, "top.txt")), within=10, what="top.txt gone")
    assert sorted(os.listdir(at(m2, "proj"))) == ["keep.txt", "moved.txt"]
