"""When the server is unreachable, listings, lookups, attributes and
cached content keep working; a read of content that is not cached fails
with EIO within the timeout. Once the server is back (on the same port),
reads work again and the mount catches up with what changed meanwhile.
A mount started while the server is down (a reboot in an outage) starts
from the cache its last mount left, and catches up the same way.

The mounts here use timeout=2 (the default is 30)."""

import errno
import hashlib
import os
import signal
import stat
import subprocess
import threading
import time
import urllib.parse

import pytest

from cfs_fs import (at, cloudfs, Dir, File, Link, MiB, payload, put_tree, read, rewrite, timed,
                    unmount_drained, until, until_server_holds)
from cfs_server import BLOCK_SIZE, MOUNT_CLOUDFS, run_cli

TIMEOUT = 2
BOUND = 10  # seconds a failing read may take, with TIMEOUT=2, ASan and a busy machine

TREE = {
    "cached.bin": File(payload(BLOCK_SIZE + 100, "cached"), 0o640),
    "uncached.bin": File(payload(BLOCK_SIZE + 200, "uncached"), 0o755),
    "docs": Dir(0o750),
    "docs/note.txt": File(b"a note"),
    "docs/link": Link("note.txt"),
}


@pytest.fixture
def offline(alice, mount):
    """Alice's mount of TREE with timeout=2, cached.bin read once."""
    put_tree(alice, alice.root_ns, TREE)
    m = mount(alice, timeout=TIMEOUT)
    assert read(os.path.join(m.mountpoint, "cached.bin")) == TREE["cached.bin"].data
    return m


def take_down(server, how):
    if how == "stop":
        server.stop()
    else:
        server.kill9()


def restart_on(server, url):
    """Starts SERVER again, on the port of URL (where it was)."""
    server.start(listen=f"127.0.0.1:{urllib.parse.urlparse(url).port}")


def assert_eio(result, elapsed, what):
    print(f"{what} failed after {elapsed:.2f} s: {result!r}")
    assert isinstance(result, OSError) and result.errno == errno.EIO, result
    assert elapsed < BOUND, f"{what} took {elapsed:.2f} s to fail"


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_with_the_server_down_listings_attributes_and_cached_content_still_work(
        server, offline, how):
    m = offline
    take_down(server, how)

    assert sorted(os.listdir(m.mountpoint)) == ["cached.bin", "docs", "uncached.bin"]
    assert sorted(os.listdir(at(m, "docs"))) == ["link", "note.txt"]
    st = os.stat(at(m, "uncached.bin"))
    assert (st.st_size, stat.S_IMODE(st.st_mode)) == (len(TREE["uncached.bin"].data), 0o755)
    assert os.readlink(at(m, "docs", "link")) == "note.txt"
    assert read(at(m, "cached.bin")) == TREE["cached.bin"].data


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_an_uncached_read_fails_with_eio_at_once_when_the_server_is_down(server, offline, how):
    take_down(server, how)

    assert_eio(*timed(lambda: read(at(offline, "uncached.bin")), 60), "the uncached read")


def test_an_uncached_read_from_a_server_that_does_not_answer_fails_with_eio_within_the_timeout(
        offline, paused):
    paused()

    result, elapsed = timed(lambda: read(at(offline, "uncached.bin")), 60)

    assert_eio(result, elapsed, "the read from a silent server")
    assert sorted(os.listdir(offline.mountpoint)) == ["cached.bin", "docs", "uncached.bin"]
    assert read(at(offline, "cached.bin")) == TREE["cached.bin"].data


FROZEN = payload(BLOCK_SIZE + 10, "frozen")  # its second block is 10 bytes

# What a file opened for writing may need a block it does not have for,
# from the server: (the call on its descriptor, what it returns, the
# file's content after).
NEEDS_A_BLOCK = {
    "write": (lambda fd: os.pwrite(fd, b"!", 5), 1, FROZEN[:5] + b"!" + FROZEN[6:]),
    "read": (lambda fd: os.pread(fd, 8, BLOCK_SIZE), FROZEN[BLOCK_SIZE:BLOCK_SIZE + 8], FROZEN),
    "truncate": (lambda fd: os.ftruncate(fd, BLOCK_SIZE + 5), None, FROZEN[:BLOCK_SIZE + 5]),
    # Its last block grows: the commit builds it from the server's.
    "fsync after growing": (lambda fd: (os.ftruncate(fd, BLOCK_SIZE + 20), os.fsync(fd))[1],
                            None, FROZEN + bytes(10)),
}


@pytest.mark.parametrize("call", NEEDS_A_BLOCK)
def test_a_call_waiting_for_a_block_from_a_frozen_server_holds_up_no_stat(
        server, alice, mount, paused, call):
    """A call on a file being written that needs a block not cached waits
    for its fetch, but no lock a stat waits on is held meanwhile
    (include/fs/locks.h): a stat of that file, made by the mount and not
    the kernel's cache, and of another file answer while the call still
    waits, so that it succeeds once the server is back.  Were the fetch
    made under the write session's lock, the stat would wait for the
    fetch's timeout, and the call would fail with it."""
    action, returns, after = NEEDS_A_BLOCK[call]
    put_tree(alice, alice.root_ns, {"remote.bin": File(FROZEN), "other.txt": File(b"other")})
    m = mount(alice)  # the default timeout, 30 s: what the call waits at most
    path = at(m, "remote.bin")
    fd = os.open(path, os.O_RDWR)
    size_before = os.fstat(fd).st_size
    paused()
    done = {}

    def run():
        try:
            done["result"] = action(fd)
        except OSError as e:
            done["result"] = e

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    until(lambda: cloudfs("stats", "--json", m.mountpoint)["reads"]["fetching"] >= 1,
          within=10, what=f"the {call}'s fetch")
    # --cached=never: statx's AT_STATX_FORCE_SYNC, so the mount answers.
    size = subprocess.run(["stat", "--cached=never", "-c", "%s", path],
                          capture_output=True, text=True, check=True).stdout
    other = os.stat(at(m, "other.txt")).st_size
    os.kill(server.proc.pid, signal.SIGCONT)
    caller.join()
    os.close(fd)
    assert done["result"] == returns, f"the {call} failed: {done['result']!r}"
    assert int(size) in (size_before, len(after))
    assert other == len(b"other")
    until_server_holds(alice, {"remote.bin": after})


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_after_a_restart_reads_work_again_and_changes_made_meanwhile_show(
        server, alice, offline, how):
    m, url = offline, server.url
    take_down(server, how)
    assert_eio(*timed(lambda: read(at(m, "uncached.bin")), 60), "the uncached read")
    # Meanwhile, on the same data but an address the mount does not know:
    server.start()
    elsewhere = alice.clone(server.url)
    elsewhere.write_file(alice.root_ns, "docs/new.txt", b"written while you were away")
    rewrite(elsewhere, alice.root_ns, "cached.bin", b"changed while you were away")
    elsewhere.commit_ok(alice.root_ns, {"op": "delete", "path": "docs/link"})
    server.stop()

    restart_on(server, url)

    assert read(at(m, "uncached.bin")) == TREE["uncached.bin"].data
    until(lambda: read(at(m, "docs", "new.txt")) == b"written while you were away" and
          read(at(m, "cached.bin")) == b"changed while you were away" and
          sorted(os.listdir(at(m, "docs"))) == ["new.txt", "note.txt"],
          within=15, what="what changed during the outage")


def test_a_server_killed_during_a_big_read_fails_the_read_with_eio_and_nothing_hangs(
        server, alice, mount):
    data = payload(64 * MiB, "big")
    alice.write_file(alice.root_ns, "big.bin", data)
    m, url = mount(alice, timeout=TIMEOUT), server.url
    got = []

    with open(at(m, "big.bin"), "rb", buffering=0) as f:
        got.append(f.read(MiB))  # under way, with blocks ahead being fetched
        server.kill9()

        def read_on():
            while chunk := f.read(MiB):
                got.append(chunk)

        result, elapsed = timed(read_on, 60)

    got = b"".join(got)
    assert_eio(result, elapsed, f"the read (at byte {len(got)})")
    assert got == data[:len(got)]
    restart_on(server, url)
    assert read(at(m, "big.bin")) == data


def test_changes_made_during_an_outage_back_off_and_go_once_the_server_is_back(
        server, alice, offline):
    # Each change wakes the uploader, but one backing off after a failed
    # try waits its time out: 300 files written in an outage of 4 s make a
    # handful of tries (250 ms doubling), not one per file.  The sync
    # thread, back in step with the server, ends the backoff at once.
    m, url = offline, server.url
    before = m.log_text().count("cannot send local changes")
    server.stop()
    for i in range(300):
        with open(at(m, f"offline-{i}.txt"), "wb") as f:
            f.write(b"written in the outage %d" % i)
        time.sleep(4 / 300)
    tries = m.log_text().count("cannot send local changes") - before
    restart_on(server, url)

    until_server_holds(alice, {f"offline-{i}.txt": b"written in the outage %d" % i
                               for i in range(300)}, within=30)
    assert 1 <= tries <= 8, f"{tries} tries to send in an outage of 4 s"


# -- starting without the server (a reboot during an outage) -----------------

def reboot_offline(server, alice, mount):
    """Alice's mount of TREE with docs pinned and cached.bin read, unmounted
    with everything sent, then the server stopped: the machine comes back
    during an outage. Returns the first mount (its cache, its URL)."""
    put_tree(alice, alice.root_ns, TREE)
    first = mount(alice, timeout=TIMEOUT)
    cloudfs("cache", "pin", at(first, "docs"))
    assert read(at(first, "cached.bin")) == TREE["cached.bin"].data
    until(lambda: os.getxattr(at(first, "cached.bin"), "user.cloudfs.status")
          == b"synced cached", within=5, what="cached.bin cached")
    unmount_drained(first)
    server.stop()
    return first


@pytest.mark.parametrize("start", ["daemon", "foreground"])
def test_a_mount_started_while_the_server_is_down_serves_its_cache_and_catches_up(
        server, alice, mount, start):
    first = reboot_offline(server, alice, mount)

    m = mount(alice, cache=first.cache, timeout=TIMEOUT, start=start)
    assert "cannot reach the server" in m.log_text()
    assert sorted(os.listdir(m.mountpoint)) == ["cached.bin", "docs", "uncached.bin"]
    assert read(at(m, "cached.bin")) == TREE["cached.bin"].data
    assert read(at(m, "docs", "note.txt")) == b"a note"  # pinned
    assert os.readlink(at(m, "docs", "link")) == "note.txt"
    assert stat.S_IMODE(os.stat(at(m, "uncached.bin")).st_mode) == 0o755
    assert_eio(*timed(lambda: read(at(m, "uncached.bin")), 60), "the uncached read")
    with open(at(m, "docs", "offline.txt"), "wb") as f:
        f.write(b"written on a machine booted in an outage")
    os.unlink(at(m, "cached.bin"))
    (st,) = cloudfs("status", "--json", m.mountpoint, expect=3)["mounts"]  # 3: not synced
    assert st["server"] is False and st["pending_ops"] >= 1
    assert "unreachable" in cloudfs("status", m.mountpoint, expect=3)

    restart_on(server, first.url)
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)
    until_server_holds(alice, {"docs/offline.txt": b"written on a machine booted in an outage"})
    other = mount(alice)
    assert sorted(os.listdir(other.mountpoint)) == ["docs", "uncached.bin"]
    assert read(at(other, "docs", "offline.txt")) == b"written on a machine booted in an outage"
    assert read(at(m, "uncached.bin")) == TREE["uncached.bin"].data


def test_without_the_server_the_default_cache_of_the_same_token_is_found(
        server, alice, mount, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    put_tree(alice, alice.root_ns, TREE)
    url = f"http://{alice.host}:{alice.port}"
    default = os.path.join(tmp_path, "xdg", "cloudfs",
                           f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{alice.root_ns}")
    def without_cache(m):  # as a user mounts: the default cache
        return [MOUNT_CLOUDFS, url, m.mountpoint, "-o",
                f"token_file={m.token_file},timeout={TIMEOUT}"]

    first = mount(alice, cache=default, start=None)
    first.start_daemon(argv=without_cache(first))
    assert read(at(first, "cached.bin")) == TREE["cached.bin"].data
    until(lambda: os.getxattr(at(first, "cached.bin"), "user.cloudfs.status")
          == b"synced cached", within=5, what="cached.bin cached")
    unmount_drained(first)
    server.stop()

    m = mount(alice, cache=default, start=None)
    m.start_daemon(argv=without_cache(m))
    assert read(at(m, "cached.bin")) == TREE["cached.bin"].data
    assert "cannot reach the server" in m.log_text()


def test_without_the_server_a_token_that_never_mounted_the_cache_is_refused(
        server, alice, mount, tmp_path):
    first = reboot_offline(server, alice, mount)
    other_token = tmp_path / "other.token"
    other_token.write_text(run_cli("token", "--data", server.data_dir, "alice").stdout)
    other_token.chmod(0o600)
    os.mkdir(tmp_path / "mnt-refused")

    p = subprocess.run([MOUNT_CLOUDFS, first.url, str(tmp_path / "mnt-refused"), "-o",
                        f"token_file={other_token},cache={first.cache},timeout={TIMEOUT}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 32, p
    assert "cannot reach the server" in p.stderr and "never mounted" in p.stderr, p.stderr
    assert not os.path.ismount(tmp_path / "mnt-refused")
    empty = tmp_path / "empty-cache"
    p = subprocess.run([MOUNT_CLOUDFS, first.url, str(tmp_path / "mnt-refused"), "-o",
                        f"token_file={first.token_file},cache={empty},timeout={TIMEOUT}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 32 and "no cache of an earlier mount" in p.stderr, p.stderr
