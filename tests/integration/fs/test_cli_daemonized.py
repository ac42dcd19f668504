"""A mount as users run it, in the background (mount.cloudfs without -f),
with the cloudfs command and other SQLite clients beside it: the mount's
database stays its own. Its write-ahead log and shared-memory index are
never unlinked under it, what it writes after a command ran is what the
next command sees, and it keeps serving and sending."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

from cfs_fs import payload, put_tree, read, until_server_holds
from cfs_server import BLOCK_SIZE, mounted
from test_cli import TREE, at, cloudfs


def side_files(m):
    """{"-wal": inode, "-shm": inode} of the mount's cache.db."""
    return {s: os.stat(os.path.join(m.cache, "cache.db" + s)).st_ino
            for s in ("-wal", "-shm")}


def open_db_files(pid):
    """The files of cache.db (with "(deleted)" when unlinked) that process
    PID has open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if "/cache.db" in target:
            out.add(target)
    return out


def assert_database_intact(m, inodes, after):
    """The mount still has cache.db-wal and -shm open, none unlinked, and
    the paths name the same files as INODES."""
    held = open_db_files(m.pid)
    deleted = sorted(t for t in held if t.endswith("(deleted)"))
    assert not deleted, f"after {after}, the mount holds unlinked {deleted}"
    for s in ("-wal", "-shm"):
        assert os.path.join(m.cache, "cache.db" + s) in held, \
            f"after {after}, the mount has no cache.db{s} open: {held}"
    assert side_files(m) == inodes, f"after {after}, cache.db's -wal or -shm was replaced"
    assert "disk I/O error" not in m.log_text(), m.log_text()


def posix_locks(pid):
    """The inodes on which process PID holds POSIX (fcntl) locks."""
    with open("/proc/locks") as f:
        return {int(m.group(1)) for line in f
                if (m := re.search(rf"\bPOSIX\s+ADVISORY\s+\w+\s+{pid}\s+\S+:\S+:(\d+)\s",
                                   line))}


def daemon(alice, mount):
    put_tree(alice, alice.root_ns, TREE)
    return mount(alice, start="daemon", timeout=5, settle=0)


def test_a_daemonized_mount_holds_the_locks_of_its_own_database(alice, mount):
    """SQLite's locks are POSIX advisory locks, which do not follow fork():
    the process serving the mount must be the one that took them."""
    m = daemon(alice, mount)
    assert read(at(m, "notes.txt")) == TREE["notes.txt"].data
    shm = side_files(m)["-shm"]
    assert shm in posix_locks(m.pid), \
        f"mount.cloudfs (pid {m.pid}) holds no lock on its cache.db-shm"


def test_another_sqlite_connection_leaves_a_daemonized_mounts_log_alone(alice, mount):
    """Any SQLite client (sqlite3(1), a backup script) that opens and
    closes cache.db must see the mount's connections and leave the
    write-ahead log to it."""
    m = daemon(alice, mount)
    inodes = side_files(m)
    db = sqlite3.connect(os.path.join(m.cache, "cache.db"))
    assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] >= len(TREE)
    db.close()
    assert_database_intact(m, inodes, "an sqlite3 connection closed")
    with open(at(m, "after.txt"), "wb") as f:
        f.write(b"written after\n")
        os.fsync(f.fileno())
    db = sqlite3.connect(os.path.join(m.cache, "cache.db"))
    names = {r[0] for r in db.execute("SELECT name FROM entries")}
    db.close()
    assert "after.txt" in names


def test_every_cloudfs_command_leaves_a_daemonized_mounts_database_alone(alice, mount):
    m = daemon(alice, mount)
    read(at(m, "photos", "a.jpg"))
    inodes = side_files(m)
    cache = ["--cache", m.cache]
    commands = [
        (("status", m.mountpoint), {}),
        (("status", "--json", m.mountpoint), {}),
        (("status", "--wait", m.mountpoint), {}),
        ((*cache, "status"), {}),
        (("cache", "stat"), {"cwd": m.mountpoint}),
        ((*cache, "cache", "stat", "--json"), {}),
        (("cache", "ls", at(m, "photos")), {}),
        ((*cache, "cache", "ls", "--json", "photos"), {}),
        (("cache", "pin", at(m, "photos")), {}),
        (("cache", "unpin", at(m, "photos")), {}),
        (("cache", "warm", at(m, "notes.txt")), {}),
        (("cache", "evict", at(m, "notes.txt")), {}),
        ((*cache, "cache", "evict", "photos"), {}),
        (("cache", "verify"), {"cwd": m.mountpoint}),
        ((*cache, "cache", "verify"), {}),
        (("cache", "gc"), {"cwd": m.mountpoint}),
        ((*cache, "cache", "gc"), {}),
    ]
    for args, kw in commands:
        cloudfs(*args, **kw)
        assert_database_intact(m, inodes, f"cloudfs {' '.join(args)}")

    # What the mount writes now is what the command reads next.
    files_before = cloudfs(*cache, "cache", "stat", "--json")["files"]
    data = payload(BLOCK_SIZE + 7, "fresh")
    with open(at(m, "fresh.bin"), "wb") as f:
        f.write(data)
    assert "fresh.bin" in {e["name"] for e in
                           cloudfs("cache", "ls", "--json", m.mountpoint)["entries"]}
    assert "fresh.bin" in {e["name"] for e in
                           cloudfs(*cache, "cache", "ls", "--json")["entries"]}
    assert cloudfs(*cache, "cache", "stat", "--json")["files"] == files_before + 1

    # And the mount goes on: it serves, sends, and answers.
    assert read(at(m, "fresh.bin")) == data
    assert read(at(m, "photos", "b.jpg")) == TREE["photos/b.jpg"].data
    cloudfs("status", "--wait", "--timeout", "30", m.mountpoint)
    until_server_holds(alice, {"fresh.bin": data})
    assert_database_intact(m, inodes, "the writes")
    m.unmount()


def test_a_failing_daemonized_mount_says_why_and_exits_32(alice, mount, tmp_path):
    """The checks that need the cache run in the background process now;
    the command still waits for them and fails with their message."""
    m = mount(alice, start=None)
    os.makedirs(m.mountpoint)
    with open(os.path.join(m.mountpoint, "in-the-way"), "w"):
        pass
    p = subprocess.run(m.argv(foreground=False), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 32 and "is not an empty directory" in p.stderr, p
    os.unlink(os.path.join(m.mountpoint, "in-the-way"))
    other = os.path.join(tmp_path, "other-cache")
    os.makedirs(other, mode=0o700)
    sqlite3.connect(os.path.join(other, "cache.db")).executescript(
        "PRAGMA user_version = 99;").close()
    m.cache = other
    p = subprocess.run(m.argv(foreground=False), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 32 and "schema version 99" in p.stderr, p



def processes_with(arg):
    """The pids of the processes with ARG on their command line."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if os.fsencode(arg) in f.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_interrupting_a_daemonized_mount_before_it_is_up_stops_it_all(
        alice, mount, paused):
    """The background process is forked before the catch-up now; until the
    mount is up it stays in the caller's session, so ^C (SIGINT to the
    foreground process group) still ends the whole command."""
    m = mount(alice, start=None, timeout=30)
    os.makedirs(m.mountpoint)
    paused()  # the first request to the server hangs
    p = subprocess.Popen(m.argv(foreground=False), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 10
    while len(processes_with(m.mountpoint)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [pid for pid in processes_with(m.mountpoint) if pid != p.pid]
    assert children, "mount.cloudfs did not fork"
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(timeout=10) != 0
    deadline = time.monotonic() + 10
    while processes_with(m.mountpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with(m.mountpoint), "a mount.cloudfs outlived ^C"
    for pid in children:
        try:
            os.waitpid(pid, 0)  # ours to reap (a subreaper)
        except ChildProcessError:
            pass
    assert not mounted(m.mountpoint)


# A writer as mount.cloudfs was before it forked first: the connection
# opened, then carried across fork(), so SQLite's locks are not where
# other processes look.
BROKEN_WRITER = r"""
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("INSERT OR REPLACE INTO info VALUES ('probe', 1)")
if os.fork():
    os._exit(0)
db.execute("INSERT OR REPLACE INTO info VALUES ('probe', 2)")
print(os.getpid(), flush=True)
sys.stdin.readline()
"""


def test_cloudfs_reading_a_cache_never_deletes_its_write_ahead_log(alice, mount):
    """With no mount live, cloudfs reads cache.db itself, and only reads:
    even beside a writer whose locks SQLite cannot see, it neither
    checkpoints nor deletes the write-ahead log when it closes."""
    m = daemon(alice, mount)
    m.unmount()
    p = subprocess.Popen([sys.executable, "-c", BROKEN_WRITER,
                          os.path.join(m.cache, "cache.db")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline())
        held = open_db_files(pid)
        assert {os.path.join(m.cache, "cache.db" + s) for s in ("-wal", "-shm")} <= held
        cache = ["--cache", m.cache]
        for args in (("cache", "stat", "--json"), ("cache", "ls", "--json", "photos")):
            out = cloudfs(*cache, *args)
            assert out.get("mounted") is False or "entries" in out
            deleted = sorted(t for t in open_db_files(pid) if t.endswith("(deleted)"))
            assert not deleted, f"cloudfs {' '.join(args)} unlinked {deleted}"
    finally:
        p.stdin.close()
        p.wait()
        try:
            os.waitpid(pid, 0)  # ours to reap (a subreaper)
        except (ChildProcessError, NameError):
            pass
