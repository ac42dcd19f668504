"""The mount shows the user's namespaces as one tree: the root namespace's
files, directories and symlinks with their names, sizes, modes, mtimes and
targets, and every shared folder at its mount path."""

import errno
import os
import stat
import subprocess

import pytest

from cfs_fs import Dir, File, Link, MiB, make_local, payload, put_tree, tree_of
from cfs_server import BLOCK_SIZE

T = 1_700_000_000_123_456_789  # an mtime with nanoseconds

ALICE = {
    "docs": Dir(0o750, T + 1),
    "docs/empty": Dir(0o700, T + 2),
    "docs/deep": Dir(0o755, T + 3),
    "docs/deep/er": Dir(0o711, T + 4),
    "docs/deep/er/est.txt": File(b"at the bottom\n", 0o640, T + 5),
    "docs/a.txt": File(b"hello\n", 0o644, T + 6),
    "bin": Dir(0o755, T + 7),
    "bin/run.sh": File(b"#!/bin/sh\necho hi\n", 0o755, T + 8),
    "bin/owner-only": File(b"#!/bin/sh\n", 0o700, T + 9),
    "private.key": File(b"secret", 0o600, T + 10),
    "readonly.txt": File(b"look, don't touch", 0o444, T + 11),
    "empty": File(b"", 0o644, T + 12),
    "big.bin": File(payload(BLOCK_SIZE + 10, "big"), 0o644, T + 13),
    "before-1970": File(b"old", 0o644, -1_500_000_001),
    "names with spaces & \u00fcn\u00efc\u00f6d\u00e9 \u2603": File(b"x", 0o644, T + 14),
    "n" * 255: File(b"the longest name", 0o644, T + 15),
    "link": Link("docs/a.txt", T + 16),
    "dir-link": Link("docs/deep", T + 17),
    "dangling": Link("no/such/target", T + 18),
    "absolute": Link("/etc/hostname", T + 19),
    "long-target": Link("x/" * 2047 + "y", T + 20),
    "many": Dir(0o755, T + 21),
    # Enough entries that a listing takes several readdir calls.
    **{f"many/file-{i:04d}": File(f"{i}\n".encode(), 0o644, T + 100 + i) for i in range(300)},
}

BOB_PHOTOS = {
    "Photos": Dir(0o750, T + 30),
    "Photos/2024": Dir(0o755, T + 31),
    "Photos/2024/beach.jpg": File(payload(MiB + 7, "beach"), 0o644, T + 32),
    "Photos/2024/sunset.jpg": File(payload(2 * BLOCK_SIZE + 1, "sunset"), 0o600, T + 33),
    "Photos/edit.sh": File(b"#!/bin/sh\nconvert \"$@\"\n", 0o755, T + 34),
    "Photos/latest": Link("2024/sunset.jpg", T + 35),
}


def share(owner, path, *members):
    """OWNER shares the folder at PATH of their root namespace with
    MEMBERS; returns the shared folder's namespace."""
    r = owner.post(f"/meta/ns/{owner.root_ns}/share", {"path": path})
    assert r.status == 200, r
    for m in members:
        assert owner.post(f"/meta/ns/{r.json['ns']}/invite", {"user": m.name}).status == 200
    return r.json["ns"]


def mount_entry(client, path):
    """The row of the shared folder's mount at PATH in CLIENT's root."""
    (e,) = [e for e in client.snapshot(client.root_ns)[0].values() if e["path"] == path]
    assert e["kind"] == "mount", e
    return e


def test_the_mount_shows_every_file_directory_and_symlink_put_on_the_server(
        alice, tmp_path, mount):
    put_tree(alice, alice.root_ns, ALICE)
    make_local(tmp_path / "ref", ALICE)

    m = mount(alice)

    # Complete as soon as the mount appears: no polling.
    assert tree_of(m.mountpoint) == tree_of(tmp_path / "ref")


def test_a_shared_folder_shows_at_its_mount_path_in_the_members_mount(
        alice, bob, tmp_path, mount):
    put_tree(alice, alice.root_ns, {"Photos": Dir(0o755, T), "Photos/mine.txt": File(b"alice's")})
    put_tree(bob, bob.root_ns, BOB_PHOTOS)
    share(bob, "Photos", alice)
    # Alice has a Photos of her own: bob's arrives as "Photos (2)".
    row = mount_entry(alice, "Photos (2)")
    ref = {"Photos": Dir(0o755, T), "Photos/mine.txt": File(b"alice's"),
           "Photos (2)": Dir(row["mode"], row["mtime_ns"]),
           **{p.replace("Photos", "Photos (2)", 1): n for p, n in BOB_PHOTOS.items()
              if p != "Photos"}}
    make_local(tmp_path / "ref", ref)

    m = mount(alice)

    assert tree_of(m.mountpoint) == tree_of(tmp_path / "ref")
    assert stat.S_ISDIR(os.lstat(os.path.join(m.mountpoint, "Photos (2)")).st_mode)


def test_the_sharers_mount_shows_the_shared_folder_where_it_was(bob, alice, tmp_path, mount):
    put_tree(bob, bob.root_ns, BOB_PHOTOS)
    share(bob, "Photos", alice)
    row = mount_entry(bob, "Photos")
    make_local(tmp_path / "ref", {**BOB_PHOTOS, "Photos": Dir(row["mode"], row["mtime_ns"])})

    m = mount(bob)

    assert tree_of(m.mountpoint) == tree_of(tmp_path / "ref")


def test_every_entry_belongs_to_the_mounting_user_with_its_links_and_the_servers_times(
        alice, mount):
    put_tree(alice, alice.root_ns, {k: v for k, v in ALICE.items() if not k.startswith("many")})
    listed = alice.snapshot(alice.root_ns)[0]

    m = mount(alice)

    for rel in ["."] + list(tree_of(m.mountpoint)):
        path = os.path.join(m.mountpoint, rel)
        st = os.lstat(path)
        # A folder: 2 and one per subfolder, as on a local disk; else 1.
        links = 2 + sum(e.is_dir(follow_symlinks=False) for e in os.scandir(path)) \
            if stat.S_ISDIR(st.st_mode) else 1
        assert (st.st_uid, st.st_gid, st.st_nlink) == (os.getuid(), os.getgid(), links), rel
        # The root has no row on the server: its times are the mount's birth.
        e = listed.get(rel, {"atime_ns": st.st_mtime_ns, "mtime_ns": st.st_mtime_ns,
                             "ctime_ns": st.st_mtime_ns})
        assert (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns) == \
            (e["atime_ns"], e["mtime_ns"], e["ctime_ns"]), rel


def test_statfs_reports_the_disk_of_the_cache_directory(alice, mount):
    m = mount(alice)

    got, disk = os.statvfs(m.mountpoint), os.statvfs(m.cache)

    assert (got.f_bsize, got.f_blocks) == (disk.f_bsize, disk.f_blocks)
    assert got.f_namemax == 255


def test_no_extended_attribute_is_listed_and_others_than_ours_are_unsupported(alice, mount):
    put_tree(alice, alice.root_ns, {"a.txt": File(b"a")})
    m = mount(alice)
    path = os.path.join(m.mountpoint, "a.txt")

    # The user.cloudfs.* ones are read by name only (test_cli.py); no other
    # is kept, and saying so (not "absent") lets tools stop asking.
    assert os.listxattr(path) == []
    for name in ("user.x", "security.selinux", "system.posix_acl_access"):
        with pytest.raises(OSError) as e:
            os.getxattr(path, name)
        assert e.value.errno == errno.ENOTSUP, name


def test_ls_l_asks_for_no_attribute_per_file(alice, mount):
    """ls -l asks each file for its SELinux label and ACL, two FUSE round
    trips a file with warm caches, unless the first answer says the file
    system keeps none: then it stops asking for the whole mount."""
    put_tree(alice, alice.root_ns, {f"f{i}": File(b"x") for i in range(20)})
    m = mount(alice)
    p = subprocess.run(["strace", "-f", "-e", "trace=getxattr,lgetxattr", "ls", "-l",
                        m.mountpoint], capture_output=True, text=True, check=True)
    asked = [line for line in p.stderr.splitlines() if "getxattr(" in line]
    assert len(p.stdout.splitlines()) == 21  # "total" and the 20 files
    assert 0 < len(asked) <= 3, asked