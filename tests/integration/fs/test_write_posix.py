"""Every ordinary file operation on the mount behaves as on a local disk:
each scenario runs on the mount and on a local directory (the reference),
and what it returns, the errno of each failure, the content it reads and
the tree it leaves must be the same; then the server must hold what the
mount shows. The differences the man page lists (hard links, chown to
another user, RENAME_EXCHANGE, set-id bits, extended attributes) are
checked against the man page instead.

The mounts here use settle=1 (the default is 0.05 s), except where a test needs
content not committed yet (settle=3600), and the tests of what happens
while a closed file is being committed (settle=0: at once)."""

import ctypes
import errno
import mmap
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from cfs_fs import (Dir, File, Link, MiB, block_ids, cloudfs, listing_of, log_size, make_local,
                    payload, put_tree, read, requests_since, server_listing, sha, shape,
                    tree_of, until, until_on_server, until_server_holds,
                    unmount_drained)
from cfs_server import BLOCK_SIZE, CLOUDFS

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
T = 1_650_000_000_987_654_321  # an mtime with nanoseconds


A = 1_600_000_000_123_456_789  # an atime with nanoseconds, apart from T
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime):
    """utimensat(2) of PATH (not following a symlink) with each time in
    nanoseconds, or UTIME_NOW, or UTIME_OMIT (os.utime has neither)."""
    def ts(t):
        return Timespec(0, t) if t in (UTIME_NOW, UTIME_OMIT) else Timespec(*divmod(t, 10**9))
    times = (Timespec * 2)(ts(atime), ts(mtime))
    if libc.utimensat(AT_FDCWD, os.fsencode(path), times, AT_SYMLINK_NOFOLLOW):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def times_of(root, paths):
    """{path: (atime, mtime)} of PATHS under ROOT, symlinks not followed."""
    return {p: (os.lstat(at(root, p)).st_atime_ns, os.lstat(at(root, p)).st_mtime_ns)
            for p in paths}


def server_times(client, paths):
    """{path: (atime, mtime, ctime)} of PATHS as the server lists them."""
    entries = client.snapshot(client.root_ns)[0]
    return {p: (entries[p]["atime_ns"], entries[p]["mtime_ns"], entries[p]["ctime_ns"])
            for p in paths if p in entries}


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def attempt(fn, *args, **kw):
    """FN(ARGS): its result, or the name of the errno it failed with."""
    try:
        return fn(*args, **kw)
    except OSError as e:
        return errno.errorcode[e.errno]


def listing(root):
    """Every name under ROOT, sorted, with its type: the shape of a tree."""
    return sorted((os.path.relpath(os.path.join(d, n), root),
                   stat.S_IFMT(os.lstat(os.path.join(d, n)).st_mode))
                  for d, dirs, files in os.walk(root) for n in dirs + files)


class Both:
    """A mount and a local directory that start with the same tree."""

    def __init__(self, client, m, local):
        self.client, self.m, self.local = client, m, str(local)
        self.mnt = m.mountpoint

    def run(self, scenario):
        """Runs SCENARIO(root) on the local directory, then on the mount;
        what it returns must be equal, and so must the trees it leaves
        (but for mtimes: the two are written at different times).
        Returns what it returned."""
        expected = scenario(self.local)
        got = scenario(self.mnt)
        assert got == expected
        assert shape(tree_of(self.mnt)) == shape(tree_of(self.local))
        return got

    def on_server(self, within=30):
        """The server comes to hold exactly what the mount shows (its
        names, kinds, modes, mtimes, content, targets; not the mtimes of
        directories, see the test of those)."""
        until_on_server(self.client, self.client.root_ns,
                        lambda: listing_of(self.mnt, dir_mtimes=False), within=within,
                        dir_mtimes=False)


@pytest.fixture
def both(alice, mount, tmp_path):
    """both(tree={}, **options) -> Both: TREE put on the server and mounted
    (settle=1 unless OPTIONS say otherwise), and made in a local directory."""
    def make(tree=None, **options):
        tree = tree or {}
        put_tree(alice, alice.root_ns, tree)
        make_local(tmp_path / "local", tree)
        m = mount(alice, **{"settle": 1, **options})
        assert tree_of(m.mountpoint) == tree_of(tmp_path / "local")
        return Both(alice, m, tmp_path / "local")
    return make


def at(root, *parts):
    return os.path.join(root, *parts)


def test_o_creat_o_excl_o_trunc_and_o_append_behave_as_on_a_local_disk(both):
    b = both({"old.txt": File(b"on the server already\n")})

    def scenario(root):
        obs = []
        fd = os.open(at(root, "new.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
        obs.append(os.write(fd, b"hello world\n"))
        os.close(fd)
        obs.append(attempt(os.open, at(root, "new.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        obs.append(attempt(os.open, at(root, "old.txt"), os.O_CREAT | os.O_EXCL | os.O_RDWR))
        obs.append(attempt(os.open, at(root, "no", "such.txt"), os.O_CREAT | os.O_WRONLY))
        obs.append(attempt(os.open, at(root, "old.txt", "x"), os.O_CREAT | os.O_WRONLY))
        obs.append(attempt(os.open, at(root, "missing.txt"), os.O_WRONLY))
        for name in ("new.txt", "old.txt"):
            fd = os.open(at(root, name), os.O_RDWR | os.O_TRUNC)
            obs += [os.fstat(fd).st_size, os.read(fd, 100)]
            os.write(fd, b"truncated, then ")
            os.close(fd)
            a = os.open(at(root, name), os.O_WRONLY | os.O_APPEND)
            c = os.open(at(root, name), os.O_RDWR | os.O_APPEND)
            os.write(a, b"appended by a, ")
            os.write(c, b"by c, ")
            os.lseek(a, 0, os.SEEK_SET)  # O_APPEND writes at the end whatever the offset
            os.write(a, b"and by a again.")
            obs.append(os.pread(c, 200, 0))
            os.close(a)
            os.close(c)
            obs += [read(at(root, name)), oct(stat.S_IMODE(os.stat(at(root, name)).st_mode))]
        # O_CREAT on an existing file opens it as it is.
        fd = os.open(at(root, "old.txt"), os.O_CREAT | os.O_RDONLY, 0o600)
        obs.append(os.read(fd, 9))
        os.close(fd)
        return obs

    b.run(scenario)
    b.on_server()


def test_an_empty_file_created_and_closed_reaches_the_server(both):
    b = both()

    def scenario(root):
        open(at(root, "opened.txt"), "wb").close()
        os.close(os.open(at(root, "excl.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.mknod(at(root, "mknod.txt"), stat.S_IFREG | 0o640)
        return sorted(os.listdir(root))

    b.run(scenario)
    b.on_server(within=10)


def test_writes_at_any_offset_leave_holes_that_read_as_zeros(both):
    b = both({"base.bin": File(payload(BLOCK_SIZE + 100, "base"))})

    def scenario(root):
        obs = []
        for name in ("sparse.bin", "base.bin"):
            fd = os.open(at(root, name), os.O_CREAT | os.O_RDWR, 0o644)
            os.pwrite(fd, b"far", 10 * MiB + 5)               # a hole of 2.5 blocks
            os.pwrite(fd, b"across", BLOCK_SIZE - 3)          # straddles the first edge
            os.pwrite(fd, b"second", 2 * BLOCK_SIZE + 17)     # inside the hole
            os.pwrite(fd, b"!", 0)
            obs += [os.fstat(fd).st_size, os.pread(fd, 10, BLOCK_SIZE - 5),
                    os.pread(fd, 40, 2 * BLOCK_SIZE),
                    os.pread(fd, 10, 10 * MiB), os.pread(fd, 10, 10 * MiB + 8)]
            os.close(fd)
            data = read(at(root, name))
            obs += [len(data), data.count(0), data[:2]]
        return obs

    obs = b.run(scenario)
    assert obs[2] == b"\0" * 17 + b"second" + b"\0" * 17  # the hole between reads as zeros
    b.on_server()


def test_truncate_and_ftruncate_grow_and_shrink_across_block_edges_and_cut_bytes_stay_cut(
        both):
    original = payload(2 * BLOCK_SIZE + MiB + 3, "cut")
    b = both({"committed.bin": File(original)})

    def scenario(root):
        obs = []
        written = at(root, "written.bin")
        with open(written, "wb") as f:
            f.write(original)
        for name in ("committed.bin", "written.bin"):
            p = at(root, name)
            os.truncate(p, BLOCK_SIZE + 7)            # shrink into block 1
            obs.append((os.stat(p).st_size, read(p) == original[:BLOCK_SIZE + 7]))
            os.truncate(p, BLOCK_SIZE - 1)            # and across the edge
            os.truncate(p, 3 * BLOCK_SIZE + 2)        # grow: what was cut reads as zeros
            data = read(p)
            obs.append((len(data), data[:BLOCK_SIZE - 1] == original[:BLOCK_SIZE - 1],
                        data[BLOCK_SIZE - 1:] == bytes(len(data) - BLOCK_SIZE + 1)))
            fd = os.open(p, os.O_RDWR)
            os.ftruncate(fd, 2 * BLOCK_SIZE)          # exactly on an edge
            os.pwrite(fd, b"tail", 2 * BLOCK_SIZE - 2)
            obs.append((os.fstat(fd).st_size, os.pread(fd, 8, 2 * BLOCK_SIZE - 4)))
            os.ftruncate(fd, 2 * BLOCK_SIZE - 1)      # cut one byte of what was written
            os.ftruncate(fd, 2 * BLOCK_SIZE + 5)
            obs.append((os.fstat(fd).st_size, os.pread(fd, 12, 2 * BLOCK_SIZE - 4)))
            os.ftruncate(fd, 0)
            obs.append((os.fstat(fd).st_size, os.pread(fd, 10, 0)))
            os.ftruncate(fd, 5)                      # an empty file grown: zeros
            obs.append(os.pread(fd, 10, 0))
            os.pwrite(fd, b"end", BLOCK_SIZE + 1)
            os.close(fd)
            obs.append(read(p)[:8] + read(p)[-8:])
        return obs

    b.run(scenario)
    b.on_server()


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 1, 2, 0x10


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(length)):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_fallocate_grows_keeps_the_size_punches_holes_and_zeroes_ranges_as_a_local_disk(both):
    old = payload(BLOCK_SIZE + 5000, "old")
    b = both({"old.bin": File(old)})

    def scenario(root):
        obs = []
        fd = os.open(at(root, "new.bin"), os.O_RDWR | os.O_CREAT, 0o644)
        os.posix_fallocate(fd, 0, 3 * MiB)  # mode 0: the size grows, zeros
        os.pwrite(fd, b"x" * 100, MiB)
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 * MiB)  # no change of size
        obs.append(os.fstat(fd).st_size)
        os.close(fd)
        fd = os.open(at(root, "old.bin"), os.O_RDWR)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, BLOCK_SIZE)  # across a block
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BLOCK_SIZE + 4000, MiB)  # past EOF
        fallocate(fd, FALLOC_FL_ZERO_RANGE, BLOCK_SIZE + 4990, 20)  # grows by 10
        os.posix_fallocate(fd, 100, 10)  # inside: nothing changes
        obs += [os.fstat(fd).st_size, attempt(fallocate, fd, 0, 0, 0),
                attempt(fallocate, fd, 0, -1, 10)]
        os.close(fd)
        obs += [sha(read(at(root, p))) for p in ("new.bin", "old.bin")]
        return obs

    got = b.run(scenario)
    assert got[0] == 3 * MiB and got[1] == BLOCK_SIZE + 5010 and got[2] == got[3] == "EINVAL"
    b.on_server()
    fd = os.open(at(b.mnt, "old.bin"), os.O_RDWR)
    try:  # moving ranges (COLLAPSE_RANGE here) is not done: the man page says so
        assert attempt(fallocate, fd, 0x8, 0, BLOCK_SIZE) == errno.errorcode[errno.EOPNOTSUPP]
    finally:
        os.close(fd)


def copy_range(src, dst, n, off_in=None, off_out=None):
    """copy_file_range(2) of up to N bytes, to its end; the bytes copied."""
    fi, fo = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < n:
            k = os.copy_file_range(fi, fo, n - done,
                                   None if off_in is None else off_in + done,
                                   None if off_out is None else off_out + done)
            if k == 0:
                break
            done += k
        return done
    finally:
        os.close(fi)
        os.close(fo)


def test_copy_file_range_and_cp_copy_as_on_a_local_disk(both):
    big = payload(2 * BLOCK_SIZE + 100, "big")
    b = both({"big.bin": File(big), "small.txt": File(b"0123456789")})

    def scenario(root):
        obs = [copy_range(at(root, "big.bin"), at(root, "whole.bin"), 10 * BLOCK_SIZE),
               copy_range(at(root, "big.bin"), at(root, "middle.bin"), BLOCK_SIZE + 7,
                          off_in=BLOCK_SIZE - 3, off_out=5),  # unaligned: bytes copied
               copy_range(at(root, "small.txt"), at(root, "small.copy"), 100),
               copy_range(at(root, "big.bin"), at(root, "past-end.bin"), 10,
                          off_in=len(big) + 1)]
        with open(at(root, "open.bin"), "wb") as f:  # copied while it is being written
            f.write(b"being written")
            f.flush()
            obs.append(copy_range(at(root, "open.bin"), at(root, "open.copy"), 100))
        subprocess.run(["cp", at(root, "big.bin"), at(root, "cp.bin")], check=True)
        fi = os.open(at(root, "small.txt"), os.O_RDONLY)  # copied once it is removed
        os.unlink(at(root, "small.txt"))
        fo = os.open(at(root, "orphan.copy"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            obs.append(os.copy_file_range(fi, fo, 100))
        finally:
            os.close(fi)
            os.close(fo)
        obs += [sha(read(at(root, p))) for p in ("whole.bin", "middle.bin", "small.copy",
                                                  "open.copy", "cp.bin", "orphan.copy")]
        return obs

    b.run(scenario)
    b.on_server()


def test_a_copy_of_whole_blocks_moves_no_byte(alice, server, mount):
    big = payload(3 * BLOCK_SIZE + 12345, "copied")
    alice.write_file(alice.root_ns, "big.bin", big)
    m = mount(alice)  # an empty cache: big.bin is online only
    since = log_size(server)

    assert copy_range(at(m.mountpoint, "big.bin"), at(m.mountpoint, "copy.bin"),
                      len(big)) == len(big)
    subprocess.run(["cp", at(m.mountpoint, "big.bin"), at(m.mountpoint, "cp.bin")], check=True)
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)

    listing = server_listing(alice, alice.root_ns)
    assert listing["copy.bin"]["blocks"] == listing["cp.bin"]["blocks"] == block_ids(big)
    assert requests_since(server, since, r"(GET|PUT) /block/") == []  # nothing fetched or sent
    assert cloudfs("cache", "stat", "--json", m.mountpoint)["bytes"] == 0
    assert read(at(m.mountpoint, "copy.bin")) == big


def test_truncate_of_a_file_not_yet_committed_and_of_an_empty_file_work(both):
    b = both({"empty": File(b"")})

    def scenario(root):
        obs = []
        os.truncate(at(root, "empty"), 3 * BLOCK_SIZE)
        obs.append(read(at(root, "empty")).count(0))
        with open(at(root, "open.bin"), "wb+") as f:
            f.write(payload(BLOCK_SIZE + 10, "x"))
            f.flush()
            f.truncate(10)
            f.seek(0)
            obs.append(f.read())
            f.truncate(BLOCK_SIZE + 10)
            f.seek(0)
            obs.append(f.read()[5:20])
        return obs

    b.run(scenario)
    b.on_server()


def test_a_huge_sparse_file_commits_at_once_its_holes_one_block(alice, mount):
    """truncate -s 200G is 51,200 holes, each the same block of zeros: it
    is built, hashed and stored once, not once a hole, which took minutes
    of CPU while the file stayed unsynced (and a crash then lost it)."""
    m = mount(alice)
    size = 200 * 1024 * MiB
    open(at(m.mountpoint, "huge.img"), "wb").close()
    os.truncate(at(m.mountpoint, "huge.img"), size)
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)
    (entry,) = [e for p, e in alice.snapshot(alice.root_ns)[0].items() if p == "huge.img"]
    assert entry["size"] == size
    assert len(entry["blocks"]) == size // BLOCK_SIZE
    assert set(entry["blocks"]) == {sha(b"\0" * BLOCK_SIZE)}
    with open(at(m.mountpoint, "huge.img"), "rb") as f:
        f.seek(size - 10)
        assert f.read() == b"\0" * 10


RENAME_TREE = {
    "a.txt": File(b"a on the server"),
    "b.txt": File(b"b on the server"),
    "d1": Dir(), "d1/in.txt": File(b"in d1"),
    "empty": Dir(),
    "full": Dir(), "full/x": File(b"x"),
    "sub": Dir(), "sub/deep": Dir(),
}


def test_rename_of_files_and_directories_succeeds_and_fails_as_on_a_local_disk(both):
    b = both(RENAME_TREE)

    def scenario(root):
        obs = []

        def step(fn, *args):
            obs.append((attempt(fn, *[at(root, a) if isinstance(a, str) else a for a in args]),
                        listing(root)))

        with open(at(root, "new.txt"), "wb") as f:  # not on the server yet
            f.write(b"new, local")
        os.mkdir(at(root, "newdir"))
        step(os.rename, "a.txt", "b.txt")            # over an existing file
        step(os.rename, "new.txt", "a.txt")          # a new file to a freed name
        step(os.rename, "d1", "empty")               # a directory over an empty one
        step(os.rename, "empty", "full")             # over a non-empty one: ENOTEMPTY
        step(os.rename, "b.txt", "full")             # a file over a directory: EISDIR
        step(os.rename, "full", "b.txt")             # a directory over a file: ENOTDIR
        step(os.rename, "sub", "sub/deep/sub")       # into itself: EINVAL
        step(os.rename, "nothing", "x")              # ENOENT
        step(os.rename, "a.txt", "nowhere/a.txt")    # ENOENT
        step(os.rename, "a.txt", "b.txt/a.txt")      # ENOTDIR
        step(os.rename, "a.txt", "a.txt")            # onto itself: nothing happens
        step(renameat2, "a.txt", "b.txt", RENAME_NOREPLACE)     # EEXIST
        step(renameat2, "full", "empty", RENAME_NOREPLACE)      # EEXIST
        step(renameat2, "a.txt", "c.txt", RENAME_NOREPLACE)     # a free name: works
        step(os.rename, "newdir", "full/newdir")     # a new directory into another
        step(os.rename, "full", "sub/deep/full")     # a directory with its contents
        step(os.rename, "sub", "moved")
        obs.append([read(at(root, p)) for p in
                    ("b.txt", "c.txt", "empty/in.txt", "moved/deep/full/x")])
        return obs

    b.run(scenario)
    b.on_server()


def test_rename_exchange_fails_with_einval_and_changes_nothing_unlike_a_local_disk(both):
    # The man page: "RENAME_EXCHANGE fails with EINVAL". A local ext4 or
    # tmpfs swaps the two names; this is the one documented difference.
    b = both({"a.txt": File(b"a"), "b.txt": File(b"b")})
    before = tree_of(b.mnt)

    with pytest.raises(OSError) as e:
        renameat2(at(b.mnt, "a.txt"), at(b.mnt, "b.txt"), RENAME_EXCHANGE)

    assert e.value.errno == errno.EINVAL
    assert tree_of(b.mnt) == before
    renameat2(at(b.local, "a.txt"), at(b.local, "b.txt"), RENAME_EXCHANGE)
    assert read(at(b.local, "a.txt")) == b"b"  # (the local disk does swap them)


def test_an_unlinked_open_file_stays_readable_and_writable_until_closed_and_is_not_committed(
        both):
    b = both({"server.txt": File(b"on the server, then unlinked")})

    def scenario(root):
        obs = []
        with open(at(root, "local.txt"), "wb") as f:
            f.write(b"written, then unlinked")
        for name in ("server.txt", "local.txt"):
            p = at(root, name)
            r = open(p, "rb", buffering=0)
            w = open(p, "r+b", buffering=0)
            os.unlink(p)
            obs += [os.path.exists(p), attempt(os.stat, p), name in os.listdir(root)]
            obs.append(r.read())
            w.seek(0, os.SEEK_END)
            w.write(b" and written after")
            r.seek(0)
            obs += [r.read(), os.fstat(w.fileno()).st_size]
            r.close()
            w.close()
            obs.append(attempt(os.stat, p))
        return obs

    b.run(scenario)
    b.on_server()
    unmount_drained(b.m)
    assert server_listing(b.client, b.client.root_ns) == {}


def test_mkdir_and_rmdir_succeed_and_fail_as_on_a_local_disk(both):
    b = both({"full": Dir(), "full/x": File(b"x"), "f.txt": File(b"f")})

    def scenario(root):
        obs = []
        for fn, *args in [(os.mkdir, "d", 0o700), (os.mkdir, "d/e", 0o751), (os.mkdir, "d"),
                          (os.mkdir, "f.txt"), (os.mkdir, "no/such"), (os.mkdir, "f.txt/x"),
                          (os.rmdir, "full"), (os.rmdir, "f.txt"), (os.rmdir, "none"),
                          (os.unlink, "full"), (os.rmdir, "d"), (os.rmdir, "d/e"),
                          (os.rmdir, "d"), (os.unlink, "full/x"), (os.rmdir, "full"),
                          (os.mkdir, "full"), (os.makedirs, "a/b/c")]:
            obs.append((attempt(fn, at(root, args[0]), *args[1:]), listing(root)))
        obs.append([oct(stat.S_IMODE(os.stat(at(root, p)).st_mode)) for p in ("full", "a/b/c")])
        return obs

    b.run(scenario)
    b.on_server()


def test_a_folders_link_count_is_two_and_one_per_subfolder_as_on_a_local_disk(both):
    b = both({"a": Dir(), "a/f.txt": File(b"f"), "a/b": Dir()})

    def scenario(root):
        nlinks = lambda: [os.stat(at(root, p)).st_nlink  # noqa: E731
                          for p in ("", "a", "a/b")]
        obs = [nlinks()]
        os.makedirs(at(root, "a/c/d"))
        os.symlink("b", at(root, "a/link-to-b"))  # not a folder
        obs.append(nlinks())
        os.rename(at(root, "a/c"), at(root, "c"))
        os.rmdir(at(root, "a/b"))
        obs.append([os.stat(at(root, p)).st_nlink for p in ("", "a", "c", "c/d")])
        return obs

    assert b.run(scenario) == [[3, 3, 2], [3, 4, 2], [4, 2, 3, 2]]


def test_symlink_and_readlink_behave_as_on_a_local_disk(both):
    b = both({"target.txt": File(b"the target"), "old-link": Link("target.txt")})

    def scenario(root):
        obs = []
        os.symlink("target.txt", at(root, "link"))
        os.symlink("../no/such/thing", at(root, "dangling"))
        os.symlink("x/" * 1500 + "y", at(root, "long"))
        obs += [os.readlink(at(root, p)) for p in ("link", "dangling", "old-link")]
        obs += [read(at(root, "link")), attempt(read, at(root, "dangling")),
                attempt(os.symlink, "x", at(root, "link")),
                attempt(os.symlink, "x", at(root, "target.txt")),
                attempt(os.readlink, at(root, "target.txt")),
                os.lstat(at(root, "long")).st_size,
                stat.S_ISLNK(os.lstat(at(root, "link")).st_mode)]
        with open(at(root, "link"), "ab") as f:  # writes through a symlink reach its target
            f.write(b", appended")
        os.rename(at(root, "link"), at(root, "renamed-link"))
        os.unlink(at(root, "old-link"))
        obs += [read(at(root, "target.txt")), os.readlink(at(root, "renamed-link"))]
        return obs

    b.run(scenario)
    b.on_server()


def test_chmod_sets_the_permission_bits_and_the_server_keeps_them(both):
    b = both({"a.sh": File(b"#!/bin/sh\n"), "d": Dir(0o755), "d/f": File(b"f", 0o600)})

    def scenario(root):
        with open(at(root, "new.txt"), "wb") as f:
            f.write(b"new")
            os.fchmod(f.fileno(), 0o604)      # while it is being written
        for p, mode in [("a.sh", 0o755), ("d", 0o700), ("d/f", 0o640), ("new.txt", 0o400)]:
            os.chmod(at(root, p), mode)
        return [oct(stat.S_IMODE(os.stat(at(root, p)).st_mode))
                for p in ("a.sh", "d", "d/f", "new.txt")]

    assert b.run(scenario) == ["0o755", "0o700", "0o640", "0o400"]
    b.on_server()


def test_set_id_and_sticky_bits_are_never_stored(both):
    b = both({"a.sh": File(b"#!/bin/sh\n"), "d": Dir()})

    os.chmod(at(b.mnt, "a.sh"), 0o4755)
    os.chmod(at(b.mnt, "d"), 0o1777)

    modes = {p: stat.S_IMODE(os.stat(at(b.mnt, p)).st_mode) for p in ("a.sh", "d")}
    assert modes == {"a.sh": 0o755, "d": 0o777}
    b.on_server()


def test_utimensat_sets_the_mtime_to_the_nanosecond_and_the_server_keeps_it(both):
    b = both({"old.txt": File(b"old"), "d": Dir(), "link": Link("old.txt")})

    def scenario(root):
        with open(at(root, "new.txt"), "wb") as f:
            f.write(b"being written")
            f.flush()
            os.utime(f.fileno(), ns=(T, T + 1))  # futimens before close, as cp -p does
        os.utime(at(root, "old.txt"), ns=(T, T + 2))
        os.utime(at(root, "d"), ns=(T, T + 3))
        os.utime(at(root, "link"), ns=(T, T + 4), follow_symlinks=False)
        return [os.lstat(at(root, p)).st_mtime_ns for p in ("new.txt", "old.txt", "d", "link")]

    assert b.run(scenario) == [T + 1, T + 2, T + 3, T + 4]
    until_on_server(b.client, b.client.root_ns, listing_of(b.mnt))


def test_utimensat_keeps_atime_apart_from_mtime_to_the_nanosecond_here_after_a_remount_and_on_another_mount(
        both, mount):
    b = both({"old.txt": File(b"old"), "d": Dir(), "link": Link("old.txt")})
    paths = ("new.txt", "old.txt", "d", "link")

    def scenario(root):
        with open(at(root, "new.txt"), "wb") as f:
            f.write(b"being written")
            f.flush()
            os.utime(f.fileno(), ns=(A + 1, T + 1))  # futimens before close, as cp -p does
        os.utime(at(root, "old.txt"), ns=(A + 2, T + 2))
        os.utime(at(root, "d"), ns=(A + 3, T + 3))
        os.utime(at(root, "link"), ns=(A + 4, T + 4), follow_symlinks=False)
        return times_of(root, paths)

    want = {p: (A + i, T + i) for i, p in enumerate(paths, 1)}
    assert b.run(scenario) == want
    until(lambda: {p: t[:2] for p, t in server_times(b.client, paths).items()} == want,
          within=30, what="the times on the server")
    unmount_drained(b.m)
    again = mount(b.client, cache=b.m.cache)
    assert times_of(again.mountpoint, paths) == want
    other = mount(b.client)
    assert times_of(other.mountpoint, paths) == want


def test_utime_omit_keeps_the_other_time_and_utime_now_sets_the_clock_as_locally(both):
    b = both({"f.txt": File(b"f")})
    slack = 50_000_000  # the kernel's clock for UTIME_NOW lags a tick
    steps = [(A, T), (UTIME_OMIT, T + 5), (A + 7, UTIME_OMIT), (UTIME_NOW, UTIME_OMIT),
             (UTIME_OMIT, UTIME_NOW), (UTIME_OMIT, UTIME_OMIT), (UTIME_NOW, UTIME_NOW)]

    def scenario(root):
        p = at(root, "f.txt")
        obs = []
        before = times_of(root, ["f.txt"])["f.txt"]
        for atime, mtime in steps:
            t0 = time.time_ns() - slack
            utimensat(p, atime, mtime)
            t1 = time.time_ns() + slack
            after = times_of(root, ["f.txt"])["f.txt"]
            obs.append(tuple("kept" if t == old else "now" if t0 <= t <= t1 else t
                             for t, old in zip(after, before)))
            before = after
        obs.append(before[0] == before[1])  # one now for both
        return obs

    assert b.run(scenario) == [(A, T), ("kept", T + 5), (A + 7, "kept"), ("now", "kept"),
                               ("kept", "now"), ("kept", "kept"), ("now", "now"), True]
    want = times_of(b.mnt, ["f.txt"])
    until(lambda: {p: t[:2] for p, t in server_times(b.client, ["f.txt"]).items()} == want,
          within=30, what="the times on the server")


def test_ctime_follows_every_change_never_a_read_and_never_goes_back(both, mount):
    b = both({"f.txt": File(b"content"), "d": Dir()})

    def scenario(root):
        where = [at(root, "f.txt")]

        def append():
            with open(where[0], "ab") as f:
                f.write(b" and more")

        def rename():
            os.rename(where[0], at(root, "d", "g.txt"))
            where[0] = at(root, "d", "g.txt")

        steps = [("chmod", lambda: os.chmod(where[0], 0o600)),
                 ("write", append),
                 ("read", lambda: read(where[0])),
                 ("truncate", lambda: os.truncate(where[0], 3)),
                 ("utimensat", lambda: os.utime(where[0], ns=(A, T))),
                 ("rename", rename),
                 ("chown", lambda: os.chown(where[0], os.getuid(), os.getgid())),
                 ("stat", lambda: os.stat(where[0]))]
        obs = []
        for name, step in steps:
            before = os.stat(where[0]).st_ctime_ns
            time.sleep(0.02)  # past the coarse clock's tick of a local disk
            step()
            after = os.stat(where[0]).st_ctime_ns
            obs.append((name, "later" if after > before else "same" if after == before
                        else "earlier"))
        return obs

    assert b.run(scenario) == [("chmod", "later"), ("write", "later"), ("read", "same"),
                               ("truncate", "later"), ("utimensat", "later"),
                               ("rename", "later"), ("chown", "later"), ("stat", "same")]
    path = at(b.mnt, "d", "g.txt")
    last = os.stat(path).st_ctime_ns
    assert last > T  # utimensat never sets it
    until(lambda: server_times(b.client, ["d/g.txt"]).get("d/g.txt", (0, 0, 0))[2] == last,
          within=30, what="the ctime on the server")
    time.sleep(1)  # the mount lists what it committed
    assert os.stat(path).st_ctime_ns == last
    unmount_drained(b.m)
    again = mount(b.client, cache=b.m.cache)
    assert os.stat(at(again.mountpoint, "d", "g.txt")).st_ctime_ns == last
    other = mount(b.client)
    assert os.stat(at(other.mountpoint, "d", "g.txt")).st_ctime_ns == last


def test_reads_leave_the_atime_as_it_was_set_as_with_noatime(both, mount):
    b = both({"f.txt": File(payload(3 * BLOCK_SIZE // 2, "f")), "d": Dir()})
    os.utime(at(b.mnt, "f.txt"), ns=(A, T))
    os.utime(at(b.mnt, "d"), ns=(A, T))
    want = times_of(b.mnt, ["f.txt", "d"])
    assert want == {"f.txt": (A, T), "d": (A, T)}

    read(at(b.mnt, "f.txt"))
    with open(at(b.mnt, "f.txt"), "rb") as f:
        os.pread(f.fileno(), 10, BLOCK_SIZE)
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            mm[:10]
    os.listdir(at(b.mnt, "d"))
    assert times_of(b.mnt, ["f.txt", "d"]) == want
    other = mount(b.client, noatime=None)  # accepted, and the same
    read(at(other.mountpoint, "f.txt"))
    time.sleep(1)  # whatever the other mount could have sent
    assert times_of(b.mnt, ["f.txt", "d"]) == times_of(other.mountpoint, ["f.txt", "d"]) == want


def test_a_write_after_utimensat_makes_the_mtime_now_again(both):
    b = both({"f.txt": File(b"f")})
    os.utime(at(b.mnt, "f.txt"), ns=(T, T))

    with open(at(b.mnt, "f.txt"), "ab") as f:
        f.write(b" and more")

    assert os.stat(at(b.mnt, "f.txt")).st_mtime_ns > T
    b.on_server()


def test_statfs_reports_the_disk_of_the_cache_directory(both):
    b = both()

    got, cache = os.statvfs(b.mnt), os.statvfs(b.m.cache)

    assert (got.f_bsize, got.f_frsize, got.f_blocks) == (cache.f_bsize, cache.f_frsize,
                                                         cache.f_blocks)
    assert abs(got.f_bavail - cache.f_bavail) * cache.f_frsize < 256 * MiB
    assert got.f_namemax == 255


def test_a_chmod_after_an_fsync_with_nothing_written_since_reaches_the_server(both):
    """The fsync committed the content; the commit at close has no byte
    to send, but the new mode must still go (it stayed in the mount)."""
    b = both()

    def scenario(root):
        fd = os.open(at(root, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, b"synced", 0)
        os.fsync(fd)
        os.chmod(at(root, "f"), 0o700)
        os.close(fd)
        return oct(stat.S_IMODE(os.stat(at(root, "f")).st_mode))

    assert b.run(scenario) == "0o700"
    b.on_server()


@pytest.mark.parametrize("sync", [os.fsync, os.fdatasync], ids=["fsync", "fdatasync"])
def test_fsync_of_a_file_still_open_commits_it_and_it_reaches_the_server(both, sync):
    # settle=3600: nothing but the fsync commits while the file is open.
    b = both({"old.txt": File(b"old content")}, settle=3600)
    data = payload(BLOCK_SIZE + 5, "synced")

    with open(at(b.mnt, "new.bin"), "wb") as f, open(at(b.mnt, "old.txt"), "r+b") as g:
        f.write(data)
        g.write(b"NEW")
        f.flush()
        g.flush()
        sync(f.fileno())
        sync(g.fileno())

        until_on_server(b.client, b.client.root_ns, listing_of(b.mnt), what="the fsync'ed files")
        assert read(at(b.mnt, "new.bin")) == data
        assert read(at(b.mnt, "old.txt")) == b"NEW content"


def test_mmap_reads_the_files_content(both):
    data = payload(BLOCK_SIZE + MiB, "mapped")
    b = both({"m.bin": File(data)})

    with open(at(b.mnt, "m.bin"), "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
        assert len(mm) == len(data)
        assert mm[BLOCK_SIZE - 10:BLOCK_SIZE + 10] == data[BLOCK_SIZE - 10:BLOCK_SIZE + 10]
        assert mm[:] == data


def test_writes_through_a_shared_writable_mmap_reach_the_server(both):
    b = both({"old.bin": File(payload(BLOCK_SIZE + 100, "old"))})

    def scenario(root):
        for name in ("new.bin", "old.bin"):
            with open(at(root, name), "a+b") as f:
                f.truncate(BLOCK_SIZE + 4096)
                with mmap.mmap(f.fileno(), BLOCK_SIZE + 4096, flags=mmap.MAP_SHARED) as mm:
                    mm[0:5] = b"first"
                    mm[BLOCK_SIZE - 2:BLOCK_SIZE + 3] = b"EDGE!"
                    mm[-4:] = b"last"
                    mm.flush()            # msync
                    mm[100:105] = b"after"  # written back at munmap or close
        return [read(at(root, n)) for n in ("new.bin", "old.bin")]

    b.run(scenario)
    b.on_server()


def test_hard_links_count_and_share_content_as_on_a_local_disk(both):
    b = both({"a.txt": File(b"a"), "d": Dir(), "other": File(b"other")})

    def scenario(root):
        names = ("a.txt", "b.txt", "d/c.txt")
        counts = lambda: [attempt(lambda p: os.stat(p).st_nlink, at(root, p))  # noqa: E731
                          for p in names]
        same = lambda: len({os.stat(at(root, p)).st_ino  # noqa: E731
                            for p in names if os.path.exists(at(root, p))})
        obs = [attempt(os.link, at(root, "a.txt"), at(root, "b.txt")),
               attempt(os.link, at(root, "b.txt"), at(root, "d/c.txt")),
               attempt(os.link, at(root, "a.txt"), at(root, "other")),
               attempt(os.link, at(root, "d"), at(root, "d2")),
               attempt(os.link, at(root, "none"), at(root, "x")),
               counts(), same()]
        with open(at(root, "d/c.txt"), "ab") as f:
            f.write(b" through c")
        obs.append(read(at(root, "a.txt")))
        os.rename(at(root, "b.txt"), at(root, "a.txt"))  # names of one file
        obs.append((counts(), listing(root)))
        os.rename(at(root, "other"), at(root, "b.txt"))  # over a link
        obs.append((counts(), read(at(root, "b.txt"))))
        os.unlink(at(root, "a.txt"))  # the file's first name
        obs.append((counts(), read(at(root, "d/c.txt")), listing(root)))
        os.link(at(root, "d/c.txt"), at(root, "a.txt"))
        os.rename(at(root, "b.txt"), at(root, "a.txt"))  # over the new name
        obs.append((counts(), read(at(root, "a.txt")), read(at(root, "d/c.txt"))))
        return obs

    obs = b.run(scenario)
    assert obs[:7] == [None, None, "EEXIST", "EPERM", "ENOENT", [3, 3, 3], 1]
    b.on_server()


def test_fifos_sockets_and_devices_are_made_renamed_and_removed_as_on_a_local_disk(both):
    b = both({"a.txt": File(b"a")})

    def scenario(root):
        obs = []
        os.mkfifo(at(root, "pipe"), 0o640)
        os.mknod(at(root, "tty"), stat.S_IFCHR | 0o620, os.makedev(4, 64))
        os.mknod(at(root, "disk"), stat.S_IFBLK | 0o660, os.makedev(259, 1048575))
        with socket.socket(socket.AF_UNIX) as srv:
            srv.bind(at(root, "sock"))
            srv.listen()
            with socket.socket(socket.AF_UNIX) as cli:  # the kernel's socket, found by path
                cli.connect(at(root, "sock"))
                conn, _ = srv.accept()
                cli.sendall(b"ping")
                obs.append(conn.recv(4))
                conn.close()
        fd = os.open(at(root, "pipe"), os.O_RDWR)  # a FIFO works, locally
        os.write(fd, b"through the fifo")
        obs.append(os.read(fd, 100))
        os.close(fd)
        for name in ("pipe", "tty", "disk", "sock"):
            st = os.lstat(at(root, name))
            dev = stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            obs.append((name, stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)),
                        st.st_size, (os.major(st.st_rdev), os.minor(st.st_rdev)) if dev else 0))
        obs += [attempt(os.mkfifo, at(root, "pipe")), attempt(os.mkfifo, at(root, "a.txt")),
                attempt(os.mknod, at(root, "no/such"), stat.S_IFIFO | 0o600),
                attempt(os.mkdir, at(root, "tty")), attempt(os.rmdir, at(root, "tty")),
                attempt(os.listdir, at(root, "pipe"))]
        os.chmod(at(root, "pipe"), 0o600)
        os.rename(at(root, "pipe"), at(root, "renamed-pipe"))
        os.rename(at(root, "tty"), at(root, "a.txt"))  # over a file
        os.unlink(at(root, "disk"))
        obs.append(listing(root))
        return obs

    b.run(scenario)
    b.on_server()


def test_special_files_made_on_one_mount_show_on_another_and_after_a_remount(alice, mount):
    a, b = mount(alice), mount(alice)
    os.mkfifo(at(a.mountpoint, "pipe"), 0o600)
    os.mknod(at(a.mountpoint, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(at(a.mountpoint, "loop"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(at(a.mountpoint, "sock"))
    made = tree_of(a.mountpoint)
    assert len(made) == 4

    until(lambda: tree_of(b.mountpoint) == made, within=10,
          what="the special files on the second mount")
    fd = os.open(at(b.mountpoint, "pipe"), os.O_RDWR | os.O_NONBLOCK)
    os.write(fd, b"x")
    assert os.read(fd, 1) == b"x"
    os.close(fd)
    unmount_drained(a)
    again = mount(alice, cache=a.cache)
    assert tree_of(again.mountpoint) == made
    assert server_listing(alice, alice.root_ns)["null"]["target"] == "1:3"
def test_setting_an_extended_attribute_fails_with_eopnotsupp(both):
    b = both({"a.txt": File(b"a")})

    for call in (lambda p: os.setxattr(p, "user.x", b"1"), lambda p: os.removexattr(p, "user.x")):
        with pytest.raises(OSError) as e:
            call(at(b.mnt, "a.txt"))
        assert e.value.errno == errno.EOPNOTSUPP


def test_chown_to_another_user_fails_with_eperm_and_to_the_same_user_works(both):
    b = both({"a.txt": File(b"a")})
    p = at(b.mnt, "a.txt")
    st = os.stat(p)

    os.chown(p, st.st_uid, st.st_gid)
    os.chown(p, -1, st.st_gid)
    for uid, gid in [(st.st_uid + 1000, -1), (-1, st.st_gid + 1000)]:
        with pytest.raises(OSError) as e:
            os.chown(p, uid, gid)
        assert e.value.errno == errno.EPERM
    assert (os.stat(p).st_uid, os.stat(p).st_gid) == (st.st_uid, st.st_gid)


def test_a_write_then_a_read_return_what_was_written_before_any_commit(both):
    # settle=3600 and the file open: nothing is committed during the test.
    b = both({"old.bin": File(payload(BLOCK_SIZE + 10, "old"))}, settle=3600)
    server_before = b.client.snapshot(b.client.root_ns)
    new = payload(3 * MiB, "new")

    with open(at(b.mnt, "old.bin"), "r+b", buffering=0) as f, \
            open(at(b.mnt, "new.bin"), "w+b", buffering=0) as g:
        f.seek(BLOCK_SIZE - MiB)
        f.write(new)
        g.write(new)
        f.seek(BLOCK_SIZE - MiB)
        g.seek(0)
        assert f.read(len(new)) == new and g.read() == new
        # Through another handle and another process too.
        with open(at(b.mnt, "old.bin"), "rb") as r:
            r.seek(BLOCK_SIZE - MiB)
            assert r.read(len(new)) == new
        assert subprocess.run(["cat", at(b.mnt, "new.bin")], capture_output=True).stdout == new
        assert os.stat(at(b.mnt, "old.bin")).st_size == BLOCK_SIZE - MiB + len(new)

        assert b.client.snapshot(b.client.root_ns) == server_before


def test_a_file_renamed_while_being_written_is_committed_under_its_new_name(both):
    b = both({"d": Dir()})

    def scenario(root):
        with open(at(root, "draft.txt"), "wb") as f:
            f.write(b"first part, ")
            f.flush()
            os.rename(at(root, "draft.txt"), at(root, "d", "final.txt"))
            f.write(b"second part")
        return read(at(root, "d", "final.txt"))

    assert b.run(scenario) == b"first part, second part"
    b.on_server()


def test_creating_removing_and_renaming_entries_change_the_directorys_mtime_as_locally(both):
    b = both({"d": Dir(mtime_ns=T), "d/old.txt": File(b"old"), "e": Dir(mtime_ns=T)})

    def scenario(root):
        obs = []
        for step in [lambda: open(at(root, "d", "new.txt"), "wb").close(),
                     lambda: os.mkdir(at(root, "d", "sub")),
                     lambda: os.rename(at(root, "d", "new.txt"), at(root, "e", "new.txt")),
                     lambda: os.unlink(at(root, "d", "old.txt")),
                     lambda: os.rmdir(at(root, "d", "sub"))]:
            os.utime(at(root, "d"), ns=(T, T))
            os.utime(at(root, "e"), ns=(T, T))
            step()
            obs.append([os.stat(at(root, p)).st_mtime_ns != T for p in ("d", "e")])
        return obs

    b.run(scenario)


def test_a_tree_written_through_the_mount_shows_the_same_in_a_fresh_mount(both, mount):
    b = both()
    tree = {"d": Dir(0o750, T), "d/f.txt": File(b"f", 0o600, T + 1), "l": Link("d/f.txt", T + 2),
            "big.bin": File(payload(2 * BLOCK_SIZE + 1, "big"), 0o644, T + 3)}

    make_local(b.mnt, tree)
    unmount_drained(b.m)

    fresh = mount(b.client)
    make_local(b.local, tree)
    assert tree_of(fresh.mountpoint) == tree_of(b.local)


# While a closed file is being committed (settle=0: at once), the mount
# still shows what was written: "later reads of the file show what was
# written", and a change made meanwhile is not lost.

def test_a_file_read_right_after_its_close_reads_what_was_written(both):
    b = both(settle=0)
    wrong = []

    for i in range(20):
        p = at(b.mnt, f"f{i}.bin")
        data = payload(2 * BLOCK_SIZE + i, i)
        with open(p, "wb") as f:
            f.write(data)
        size, got = os.stat(p).st_size, read(p)
        if (size, got) != (len(data), data):
            wrong.append((i, size, len(got)))

    assert not wrong, f"(file, size shown, bytes read) that are not what was written: {wrong}"


def test_a_file_truncated_right_after_its_close_keeps_what_was_written_before_the_cut(both):
    b = both(settle=0)
    wrong = []

    for i in range(20):
        p = at(b.mnt, f"f{i}.bin")
        data = payload(BLOCK_SIZE + 1000 + i, i)
        with open(p, "wb") as f:
            f.write(data)
        os.truncate(p, BLOCK_SIZE + 10)
        got = read(p)
        if got != data[:BLOCK_SIZE + 10]:
            wrong.append((i, len(got)))

    assert not wrong, f"(file, bytes read) after the cut: {wrong}"
    b.on_server()


def test_a_file_rewritten_right_after_its_close_reaches_the_server_with_its_last_content(
        both):
    b = both(settle=0)
    files = {}

    for i in range(40):
        p = at(b.mnt, f"f{i}.bin")
        with open(p, "wb") as f:
            f.write(payload(30000, f"first{i}"))
        with open(p, "r+b") as f:  # a new write session while the first commits
            f.write(payload(1000, f"second{i}"))
        files[f"f{i}.bin"] = payload(1000, f"second{i}") + payload(30000, f"first{i}")[1000:]

    until_server_holds(b.client, files, "the last content of every file", within=15)
    for name, data in files.items():
        assert read(at(b.mnt, name)) == data


def test_an_mtime_set_right_after_a_close_is_kept_in_the_mount_and_on_the_server(both):
    # What tar, rsync and cp -p do: write, close, then set the mtime.
    b = both(settle=0)

    for i in range(50):
        p = at(b.mnt, f"f{i}.txt")
        with open(p, "wb") as f:
            f.write(payload(1000 + i, i))
        os.utime(p, ns=(T, T + i))

    assert {n: os.stat(at(b.mnt, n)).st_mtime_ns for n in os.listdir(b.mnt)} == \
        {f"f{i}.txt": T + i for i in range(50)}
    b.on_server()


def statx_size(path):
    """The size of PATH from the file system itself, never the kernel's
    cache of attributes (statx with AT_STATX_FORCE_SYNC)."""
    buf = ctypes.create_string_buffer(256)
    if libc.statx(AT_FDCWD, os.fsencode(path), 0x2000, 0x200, buf):  # FORCE_SYNC, SIZE
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return int.from_bytes(buf.raw[40:48], "little")  # stx_size


def test_a_file_stated_while_its_close_commits_shows_what_was_written(both):
    # The race of cfsrand seed 105: a getattr that read the entry just
    # before the settling session committed, and looked for the session
    # just after it left, answered the entry's older size (0, for a new
    # file), which the kernel then kept.  Two threads ask the driver
    # itself for the size of the file written last, as its close commits.
    b = both(settle=0)
    state = {"file": None, "stop": False}
    wrong = []

    def stat_loop():
        while not state["stop"]:
            file = state["file"]  # (path, size written), closed
            if file is None:
                continue
            got = statx_size(file[0])
            if got != file[1]:
                wrong.append((*file, got))

    threads = [threading.Thread(target=stat_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(1500):
            p = at(b.mnt, f"f{i}.bin")
            data = payload(100 + i, i)
            with open(p, "wb") as f:
                f.write(data)
            state["file"] = (p, len(data))
            time.sleep(0.002)
    finally:
        state["stop"] = True
        for t in threads:
            t.join()

    assert not wrong, f"(file, size written, size shown): {wrong[:20]}"


# What the server would refuse later fails at the system call instead:
# names over 255 bytes, and paths over 4,096 bytes from the namespace's
# root, whether made by a create or by moving a folder deeper.  (A local
# disk takes such paths; accepting them here lost the file later.)

def dig(root, level, depth):
    """Makes DEPTH folders named LEVEL, each in the last, under ROOT
    (by file descriptors: their path may pass PATH_MAX). Returns open
    descriptors of ROOT and of the deepest; close both."""
    top = fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(level, dir_fd=fd)
        fd, old = os.open(level, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        if old != top:
            os.close(old)
    return top, fd


def enametoolong(fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    assert e.value.errno == errno.ENAMETOOLONG, e.value


def test_a_name_over_255_bytes_fails_with_enametoolong_and_255_works(both):
    b = both()
    long, ok = "n" * 256, "n" * 255
    os.mkdir(at(b.mnt, "d"))
    os.close(os.open(at(b.mnt, "d", "f"), os.O_CREAT | os.O_WRONLY, 0o644))

    enametoolong(os.open, at(b.mnt, long), os.O_CREAT | os.O_WRONLY, 0o644)
    enametoolong(os.mkdir, at(b.mnt, long))
    enametoolong(os.symlink, "d", at(b.mnt, long))
    enametoolong(os.mknod, at(b.mnt, long), 0o644 | stat.S_IFREG)
    enametoolong(os.rename, at(b.mnt, "d", "f"), at(b.mnt, long))
    with open(at(b.mnt, ok), "wb") as f:
        f.write(b"a name of 255 bytes")

    assert sorted(os.listdir(b.mnt)) == ["d", ok]
    b.on_server()


def test_a_path_over_4096_bytes_in_its_namespace_fails_at_the_system_call(both, alice):
    b = both()
    level = "d" * 250  # 16 levels: 16 * 251 - 1 = 4,015 bytes
    top, fd = dig(b.mnt, level, 16)
    try:
        deepest = "/".join([level] * 16)
        fits, over = "f" * 80, "f" * 81  # 4,015 + 1 + 80 = 4,096 bytes
        with open(os.open(fits, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"at the limit")
        enametoolong(os.open, over, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        enametoolong(os.mkdir, over, dir_fd=fd)
        enametoolong(os.symlink, "x", over, dir_fd=fd)
        enametoolong(os.rename, fits, over, src_dir_fd=fd, dst_dir_fd=fd)
        # A folder moved deeper takes its children's paths over the limit.
        os.mkdir(at(b.mnt, "x"))
        with open(at(b.mnt, "x", "c" * 100), "wb") as f:
            f.write(b"a child")
        enametoolong(os.rename, "x", "x", src_dir_fd=top, dst_dir_fd=fd)
        os.rename("x", "y", src_dir_fd=top, dst_dir_fd=top)  # a short move still works
        assert sorted(os.listdir(fd)) == [fits]
    finally:
        os.close(fd)
        os.close(top)

    subprocess.run([CLOUDFS, "status", "--wait", "--timeout", "60", b.mnt], check=True)
    until_server_holds(alice, {f"{deepest}/{fits}": b"at the limit",
                               "y/" + "c" * 100: b"a child"}, within=30)


def test_changes_too_many_for_one_commit_body_reach_the_server_in_several(alice, mount):
    """A commit body is capped (8 MiB); a batch of changes whose JSON is
    larger (here 450 creates whose long paths of control characters are
    escaped six bytes a byte, about 10 MiB, all settled at once by the
    unmount) goes in several commits instead of being refused whole,
    again and again."""
    m = mount(alice, settle=3600)
    level = "\x01" * 255  # 15 levels: 15 * 256 = 3,840 bytes
    top, fd = dig(m.mountpoint, level, 15)
    try:
        names = ["\x01" * 200 + f"{i:04d}" for i in range(450)]
        for name in names:
            with open(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd), "wb") as f:
                f.write(b"x")
    finally:
        os.close(fd)
        os.close(top)
    unmount_drained(m)

    listing = server_listing(alice, alice.root_ns)
    deepest = "/".join([level] * 15)
    assert [n for n in names if listing.get(f"{deepest}/{n}", {}).get("size") != 1] == []


def test_seek_hole_and_seek_data_find_the_blocks_of_zeros(alice, mount):
    """lseek(2) SEEK_HOLE and SEEK_DATA: a whole block of zeros is a hole,
    found in the block list without reading, so cp, tar and rsync skip
    it. The last, short block and a file being written count as data
    (POSIX lets a filesystem report zeros as data, never the reverse)."""
    m = mount(alice)
    path = os.path.join(m.mountpoint, "sparse.bin")
    size = 3 * BLOCK_SIZE + 6
    with open(path, "wb") as f:
        f.write(b"a" * MiB)                 # block 0: data
        f.seek(3 * BLOCK_SIZE + 5)          # blocks 1 and 2: zeros
        f.write(b"b")                       # block 3: data, short
        f.flush()
        assert os.lseek(f.fileno(), 0, os.SEEK_HOLE) == size  # being written
        assert os.lseek(f.fileno(), BLOCK_SIZE, os.SEEK_DATA) == BLOCK_SIZE
    cloudfs("status", "--wait", m.mountpoint)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_HOLE) == BLOCK_SIZE
        assert os.lseek(fd, 100, os.SEEK_DATA) == 100
        assert os.lseek(fd, BLOCK_SIZE + 7, os.SEEK_HOLE) == BLOCK_SIZE + 7
        assert os.lseek(fd, BLOCK_SIZE, os.SEEK_DATA) == 3 * BLOCK_SIZE
        assert os.lseek(fd, 3 * BLOCK_SIZE, os.SEEK_HOLE) == size
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            with pytest.raises(OSError) as e:
                os.lseek(fd, size, whence)
            assert e.value.errno == errno.ENXIO
    finally:
        os.close(fd)
    with open(path, "wb") as f:
        f.truncate(2 * BLOCK_SIZE)          # zeros only
    cloudfs("status", "--wait", m.mountpoint)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.lseek(fd, 0, os.SEEK_DATA)
        assert e.value.errno == errno.ENXIO
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
    finally:
        os.close(fd)
    copy = os.path.join(os.path.dirname(m.cache), "copy.bin")
    subprocess.run(["cp", "--sparse=always", path, copy], check=True)
    with open(copy, "rb") as f:
        assert f.read() == bytes(2 * BLOCK_SIZE)
