"""What fsync promises survives a kill -9 of mount.cloudfs at any point of
the way to the server, and a kill -9 of the server: once fsync returned
(or a closed file's settle delay passed) the file reaches the server, at
the latest from the next mount of the same cache directory, with exactly
its bytes, and as one version: no commit is applied twice.

"One version" is read from the server's journal: its JIDs increase by
exactly one per row, so a namespace where the test wrote N files once
each has its head at N; a commit applied twice, or a conflicted copy of
the file with itself, would add rows.

The exact points are reached with a proxy between the mount and the
server (cfs_proxy) that holds a kind of request, or passes a commit and
swallows its answer; or by stopping the server with SIGSTOP. Writes that
were neither fsync'ed nor settled may be lost: nothing is asserted about
them."""

import errno
import os
import re
import signal
import subprocess
import time
import urllib.parse

import pytest

from cfs_fs import (MiB, NOT_SENT, log_size, payload, read, requests_since, server_listing,
                    until, until_server_holds, unmount_drained, uploaded_blocks)
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import BLOCK_SIZE, CLOUDFS, block_id, split_blocks

TIMEOUT = 3  # the mounts' network timeout: a dead server is involved


def resume(server):
    """Continues a server stopped by the paused fixture."""
    os.kill(server.proc.pid, signal.SIGCONT)


def write_synced(path, data, sync=os.fsync):
    """Writes DATA to a new file at PATH and fsyncs it before closing."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        sync(f.fileno())


def assert_one_version_each(client, files):
    """The server holds FILES (path: bytes) and its journal has one row
    for each: nothing was committed twice."""
    snapshot, head = client.snapshot(client.root_ns)
    assert sorted(snapshot) == sorted(files)
    assert head == len(files), f"{head} journal rows for {len(files)} files written once each"


def remount(mount, client, m, **options):
    """A new mount of M's cache directory by CLIENT (whose URL must be the
    one M used: a cache directory belongs to one server)."""
    return mount(client, cache=m.cache, timeout=TIMEOUT, **options)


def test_files_fsynced_while_the_server_is_frozen_reach_it_after_a_kill_9_and_a_remount(
        server, alice, mount, paused):
    m = mount(alice, timeout=TIMEOUT)
    files = {"big.bin": payload(2 * BLOCK_SIZE + 3, "big"), "small.txt": b"small\n",
             "fdatasync.bin": payload(MiB, "fdatasync")}
    paused()  # nothing can reach the server from now on

    write_synced(os.path.join(m.mountpoint, "big.bin"), files["big.bin"])
    write_synced(os.path.join(m.mountpoint, "small.txt"), files["small.txt"])
    write_synced(os.path.join(m.mountpoint, "fdatasync.bin"), files["fdatasync.bin"],
                 os.fdatasync)
    m.kill9()
    resume(server)

    m2 = remount(mount, alice, m)
    until_server_holds(alice, files, "the fsync'ed files", within=10)
    unmount_drained(m2)
    assert_one_version_each(alice, files)


def test_the_times_and_mode_set_on_a_file_being_written_survive_its_fsync_and_a_kill_9(
        server, alice, mount, paused):
    # As tar(1) does on each file: futimens, fchown (to the owner it has)
    # and fchmod on the open file, then fsync.  The times are kept by the
    # file's write session until it commits, not written to the mirror.
    m = mount(alice, timeout=TIMEOUT, settle=3600)
    data = b"unpacked\n"
    atime, mtime = 1_500_000_000_123_456_789, 1_600_000_000_987_654_321
    paused()  # nothing can reach the server from now on

    path = os.path.join(m.mountpoint, "f.txt")
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.utime(f.fileno(), ns=(atime, mtime))
        os.fchown(f.fileno(), os.getuid(), os.getgid())
        os.fchmod(f.fileno(), 0o640)
        st = os.fstat(f.fileno())
        assert (st.st_atime_ns, st.st_mtime_ns, st.st_mode & 0o7777) == (atime, mtime, 0o640)
        os.fsync(f.fileno())
    m.kill9()  # settle=3600: nothing but the fsync committed it
    resume(server)

    m2 = remount(mount, alice, m)
    until_server_holds(alice, {"f.txt": data}, "the fsync'ed file", within=10)
    on_server = alice.snapshot(alice.root_ns)[0]["f.txt"]
    assert (on_server["atime_ns"], on_server["mtime_ns"], on_server["mode"]) == \
        (atime, mtime, 0o640)
    st = os.stat(os.path.join(m2.mountpoint, "f.txt"))
    assert (st.st_atime_ns, st.st_mtime_ns, st.st_mode & 0o7777) == (atime, mtime, 0o640)
    unmount_drained(m2)
    assert_one_version_each(alice, {"f.txt": data})


def test_a_file_closed_and_settled_before_a_kill_9_reaches_the_server(
        server, alice, mount, proxy):
    # settle=0: the file is committed as soon as it is closed; the man page
    # loses only what was "closed less than settle seconds ago". The
    # uploader is kept busy meanwhile: its commit of a folder is held by
    # the proxy (and dropped at the kill, so the server never applies it).
    m = mount(alice.clone(proxy.url), timeout=10, settle=0)
    data = payload(BLOCK_SIZE + 10, "settled")
    proxy.hold(r"POST /meta/ns/\d+/commit")
    os.mkdir(os.path.join(m.mountpoint, "d"))
    proxy.wait_held(1)

    with open(os.path.join(m.mountpoint, "d", "settled.bin"), "wb") as f:
        f.write(data)
    # What the promise is about is time passing after the close: nothing
    # outside the driver shows a commit that cannot reach the server.
    time.sleep(2)
    m.kill9()
    proxy.cut()

    m2 = remount(mount, alice.clone(proxy.url), m)
    until_server_holds(alice, {"d/settled.bin": data}, "the settled file", within=10)
    unmount_drained(m2)


def test_a_kill_9_during_the_upload_of_a_large_file_loses_nothing_and_uploads_no_block_twice(
        server, alice, mount, proxy):
    data = payload(10 * BLOCK_SIZE + 5, "large")
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    proxy.hold(r"PUT /block/", after=3)  # three blocks go up, then the uploads stop

    write_synced(os.path.join(m.mountpoint, "large.bin"), data)
    proxy.wait_held(1)
    until(lambda: len(uploaded_blocks(server, 0)) == 3, within=10, what="three uploads")
    m.kill9()
    proxy.cut()

    m2 = remount(mount, alice.clone(proxy.url), m)
    until_server_holds(alice, {"large.bin": data}, "the large file", within=30)
    unmount_drained(m2)
    assert_one_version_each(alice, {"large.bin": data})
    uploaded = uploaded_blocks(server, 0)
    assert sorted(uploaded) == sorted({block_id(b) for b in split_blocks(data)}), \
        "each block is uploaded once"


def test_a_kill_9_after_the_upload_and_before_the_commit_commits_once_after_a_remount(
        server, alice, mount, proxy):
    data = payload(3 * BLOCK_SIZE + 7, "uploaded")
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    proxy.hold(r"POST /meta/ns/\d+/commit")

    write_synced(os.path.join(m.mountpoint, "up.bin"), data)
    proxy.wait_held(1)
    # The server logs a request once its answer is sent: under load the
    # last PUT's line may come after the commit was held.
    until(lambda: sorted(uploaded_blocks(server, 0)) ==
          sorted(block_id(b) for b in split_blocks(data)),
          within=5, what="every block uploaded before the commit")
    assert alice.snapshot(alice.root_ns) == ({}, 0)  # not committed
    m.kill9()
    proxy.cut()

    m2 = remount(mount, alice.clone(proxy.url), m)
    until_server_holds(alice, {"up.bin": data}, "the file", within=10)
    unmount_drained(m2)
    assert_one_version_each(alice, {"up.bin": data})
    assert len(uploaded_blocks(server, 0)) == 4, "no block is uploaded again"


def test_a_commit_applied_whose_answer_was_lost_is_not_applied_twice_after_a_kill_9(
        server, alice, mount, proxy):
    data = payload(BLOCK_SIZE + 1, "applied")
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    proxy.lose(r"POST /meta/ns/\d+/commit")

    write_synced(os.path.join(m.mountpoint, "applied.bin"), data)
    proxy.wait_lost(1)
    until_server_holds(alice, {"applied.bin": data}, "the commit")  # applied, answer lost
    m.kill9()
    proxy.cut()
    since = log_size(server)

    m2 = remount(mount, alice.clone(proxy.url), m)
    # The queue still holds the commit: it is sent again, and answered.
    until(lambda: requests_since(server, since, r"POST /meta/ns/\d+/commit"), within=20,
          what="the commit sent again")
    unmount_drained(m2)
    assert_one_version_each(alice, {"applied.bin": data})
    assert "conflict" not in m2.log_text(), m2.log_text()


def test_a_commit_whose_answer_never_comes_is_sent_again_and_applied_once(
        server, alice, mount, proxy):
    # Without a kill: the uploader gives up waiting after the timeout and
    # sends the commit again, on a new connection that answers.
    data = payload(1000, "twice")
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    proxy.lose(r"POST /meta/ns/\d+/commit")

    write_synced(os.path.join(m.mountpoint, "twice.bin"), data)
    proxy.wait_lost(1)
    proxy.lose(None)  # later answers come through
    until(lambda: len([s for s in proxy.seen if "/commit" in s]) >= 2, within=4 * TIMEOUT + 5,
          what="the commit sent again")
    unmount_drained(m)

    assert_one_version_each(alice, {"twice.bin": data})
    assert "conflict" not in m.log_text(), m.log_text()


@pytest.mark.parametrize("driver", ["keeps running", "is killed too"])
def test_a_folder_made_and_moved_by_commits_whose_answers_were_lost_stays_where_it_went(
        server, alice, mount, proxy, driver):
    # Sent again, the creation of d/sub finds no d (the move, applied,
    # took it to e): the server must answer it as it did the first time,
    # not refuse it for a missing folder (the queue then never drained,
    # and an unmount left e/sub on the server but not in the mount).
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    os.mkdir(os.path.join(m.mountpoint, "d"))
    unmount_drained(m)
    m = remount(mount, alice.clone(proxy.url), m)
    proxy.lose(r"POST /meta/ns/\d+/commit")
    os.mkdir(os.path.join(m.mountpoint, "d", "sub"))
    os.rename(os.path.join(m.mountpoint, "d"), os.path.join(m.mountpoint, "e"))
    until(lambda: set(server_listing(alice, alice.root_ns)) == {"e", "e/sub"}, within=20,
          what="both commits applied with their answers lost")
    if driver == "is killed too":
        m.kill9()
        proxy.cut()
        proxy.lose(None)
        m = remount(mount, alice.clone(proxy.url), m)
    else:
        proxy.lose(None)
    status = subprocess.run([CLOUDFS, "status", "--wait", "--timeout", "30", m.mountpoint],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr + m.log_text()
    assert sorted(os.listdir(m.mountpoint)) == ["e"]
    assert os.listdir(os.path.join(m.mountpoint, "e")) == ["sub"]
    unmount_drained(m)
    assert "refused" not in m.log_text(), m.log_text()
    assert set(server_listing(alice, alice.root_ns)) == {"e", "e/sub"}
    fresh = mount(alice)
    assert sorted(os.listdir(fresh.mountpoint)) == ["e"]
    assert os.listdir(os.path.join(fresh.mountpoint, "e")) == ["sub"]


@pytest.mark.parametrize("driver", ["keeps running", "is killed too"])
def test_a_server_killed_during_an_upload_and_restarted_gets_every_fsynced_file_once(
        server, alice, mount, driver):
    url = server.url
    m = mount(alice, timeout=TIMEOUT)
    files = {f"f{i}.bin": payload(3 * BLOCK_SIZE + i, f"restart{i}") for i in range(3)}
    since = log_size(server)

    for name, data in files.items():
        write_synced(os.path.join(m.mountpoint, name), data)
    until(lambda: uploaded_blocks(server, since), within=10, what="the first upload")
    server.kill9()
    if driver == "is killed too":
        m.kill9()
    server.start(listen=f"127.0.0.1:{urllib.parse.urlparse(url).port}")

    if driver == "is killed too":
        m = remount(mount, alice, m)
    until_server_holds(alice, files, "the fsync'ed files", within=40)
    unmount_drained(m)
    assert_one_version_each(alice, files)
    assert NOT_SENT not in m.log_text()


class WalSyncs:
    """strace of PID's fsync and fdatasync calls on the cache's write-ahead
    log: ended() lists when each such call returned (epoch seconds)."""

    def __init__(self, pid, out):
        self.out = out
        self.log = out + ".log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["strace", "-f", "-ttt", "-T", "-y", "-e", "trace=fsync,fdatasync",
                 "-o", out, "-p", str(pid)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)

        def attached():  # "Process PID attached with N threads"
            assert self.proc.poll() is None, open(self.log).read()
            with open(self.log) as f:
                return " attached" in f.read()
        try:
            until(attached, within=10, what="strace attached")
        except BaseException:
            self.stop()  # the driver's sanitizers cannot work under ptrace
            raise

    def ended(self):
        started, ended = {}, []
        with open(self.out) as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # strace is writing it
                pid, at, call = line.split(None, 2)
                took = re.search(r"<([0-9.]+)>$", call)
                if "cache.db-wal>" in call and call.endswith("<unfinished ...>\n"):
                    started[pid] = float(at)
                elif "cache.db-wal>" in call and took:
                    ended.append(float(at) + float(took[1]))
                elif "resumed>" in call and pid in started and took:
                    ended.append(started.pop(pid) + float(took[1]))
        return ended

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def traced_with_the_uploader_waiting(m, paused, tmp_path):
    """WalSyncs of M, once its uploader waits for the frozen server (its
    request times out after the mount's timeout)."""
    paused()
    os.mkdir(os.path.join(m.mountpoint, "d"))  # the uploader goes to wait
    time.sleep(0.5)
    return WalSyncs(m.pid, str(tmp_path / "strace.out"))


def test_fsync_of_a_file_or_a_folder_returns_once_the_queue_is_on_disk(
        server, alice, mount, paused, tmp_path):
    """The cache index commits without an fsync each, so what survives a
    crash of the machine is what was fsync'ed since: fsync(2) of a file or
    of a folder must sync the index's write-ahead log before it returns.
    Traced with nothing else about to sync it: the server frozen (the
    uploader waits in its request) and a settle delay of a minute."""
    m = mount(alice, timeout=30, settle=60)
    trace = traced_with_the_uploader_waiting(m, paused, tmp_path)
    try:
        with open(os.path.join(m.mountpoint, "d", "f"), "wb") as f:
            f.write(b"written")
            f.flush()
            time.sleep(0.3)
            assert trace.ended() == [], "synced with no fsync to ask for it"
            before = time.time()
            os.fsync(f.fileno())
            after = time.time()
            assert any(before <= t <= after for t in trace.ended())
        os.mkdir(os.path.join(m.mountpoint, "d", "e"))
        fd = os.open(os.path.join(m.mountpoint, "d"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            before = time.time()
            os.fsync(fd)
            after = time.time()
        finally:
            os.close(fd)
        assert any(before <= t <= after for t in trace.ended())
    finally:
        trace.stop()


def test_a_settled_file_is_on_disk_with_no_fsync(server, alice, mount, paused, tmp_path):
    """The settle delay after a close is the other promise: the commit it
    makes is synced, though nobody called fsync."""
    m = mount(alice, timeout=30, settle=0.5)
    trace = traced_with_the_uploader_waiting(m, paused, tmp_path)
    try:
        with open(os.path.join(m.mountpoint, "d", "f"), "wb") as f:
            f.write(b"written")
        closed = time.time()
        until(lambda: any(t > closed for t in trace.ended()), within=10,
              what="the settled commit synced")
    finally:
        trace.stop()


def test_a_file_closed_within_the_settle_delay_is_committed_at_unmount(server, alice, mount):
    m = mount(alice, timeout=TIMEOUT, settle=3600)
    data = payload(BLOCK_SIZE + 3, "unmount")
    with open(os.path.join(m.mountpoint, "late.bin"), "wb") as f:
        f.write(data)
    assert alice.snapshot(alice.root_ns) == ({}, 0)  # not committed: settle=3600

    unmount_drained(m)

    assert_one_version_each(alice, {"late.bin": data})


def test_an_unmount_that_cannot_reach_the_server_ends_within_the_timeout_and_the_next_mount_sends(
        server, alice, mount, proxy):
    m = mount(alice.clone(proxy.url), timeout=TIMEOUT)
    data = payload(MiB, "waiting")
    proxy.hold(r"POST /meta/ns/\d+/commit")
    write_synced(os.path.join(m.mountpoint, "waiting.bin"), data)
    proxy.wait_held(1)

    t0 = time.monotonic()
    m.unmount()
    took = time.monotonic() - t0

    print(f"the unmount took {took:.1f} s with timeout={TIMEOUT}")
    assert took < 2 * TIMEOUT + 5  # a request under way, then the last sending
    assert "1 changes are not on the server yet" in m.log_text(), m.log_text()
    proxy.cut()
    m2 = remount(mount, alice.clone(proxy.url), m)
    until_server_holds(alice, {"waiting.bin": data}, "the file", within=10)
    unmount_drained(m2)
    assert_one_version_each(alice, {"waiting.bin": data})


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs for a cache directory: a disk that fills up."""
    path = tmp_path / "small-disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_cache_disk_gives_enospc_to_the_writer_and_keeps_what_was_written(
        server, alice, mount, small_disk):
    m = mount(alice, cache=str(small_disk / "cache"), timeout=TIMEOUT)
    kept = payload(2 * BLOCK_SIZE + 9, "kept")
    write_synced(os.path.join(m.mountpoint, "kept.bin"), kept)

    with pytest.raises(OSError) as e:
        write_synced(os.path.join(m.mountpoint, "huge.bin"), payload(40 * MiB, "huge"))
    assert e.value.errno == errno.ENOSPC

    # What the failed file's writes were given is committed, not dropped
    # (nothing written is lost): the floor the keeper keeps on the disk
    # leaves the index room for that commit and for the unlink.  (kept.bin,
    # sent, may have been evicted for huge.bin: it is read once the unlink
    # made room again.)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.unlink(os.path.join(m.mountpoint, "huge.bin"))
            break
        except OSError as e:
            if e.errno != errno.ENOSPC or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    def kept_read():
        try:
            return read(os.path.join(m.mountpoint, "kept.bin"))
        except OSError as e:
            assert e.errno == errno.EIO, e  # no room to fetch it yet
    until(lambda: kept_read() == kept, within=20, what="kept.bin read back")
    write_synced(os.path.join(m.mountpoint, "after.txt"), b"the disk has room again\n")
    until_server_holds(alice, {"kept.bin": kept, "after.txt": b"the disk has room again\n"},
                       "what was written around the full disk", within=20)
    unmount_drained(m)
    snapshot, head = alice.snapshot(alice.root_ns)
    assert sorted(snapshot) == ["after.txt", "kept.bin"]
    # One row each, and huge.bin's commit and deletion if its commit went
    # before the unlink.
    assert head in (2, 4), f"{head} journal rows"
    assert "last writes are lost" not in m.log_text()


def test_files_settling_together_are_synced_once_before_their_blocks_are_renamed(
        server, alice, mount, tmp_path):
    """A settled file's bytes are on disk before its staging file becomes
    a block of the cache (after a power cut a block file is whole or
    absent).  Files that settle together get one syncfs(2) of the cache's
    file system for all of them, not an fsync each: strace of the running
    driver is the witness."""
    m = mount(alice, settle=0.5)
    out, log = tmp_path / "strace.out", tmp_path / "strace.log"
    with open(log, "w") as err:
        trace = subprocess.Popen(
            ["strace", "-f", "-ttt", "-y", "-e",
             "trace=syncfs,fsync,fdatasync,rename,renameat,renameat2",
             "-o", str(out), "-p", str(m.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    files = {f"s/f{i}": payload(1000 + i, f"settle {i}") for i in range(20)}
    try:
        until(lambda: " attached" in log.read_text(), within=10, what="strace attached")
        os.mkdir(os.path.join(m.mountpoint, "s"))
        for path, data in files.items():
            with open(os.path.join(m.mountpoint, path), "wb") as f:
                f.write(data)

        def adopted():  # the staging files renamed out of DIR/dirty
            return [i for i, (_, line) in enumerate(calls())
                    if line.startswith("rename") and "/dirty>" in line
                    and line.endswith(" = 0")]

        def calls():
            # A call another thread's call interrupts is printed in two
            # lines ("... <unfinished ...>", then "<... NAME resumed>...");
            # joined, in the order the calls began.
            got, unfinished = [], {}
            for line in out.read_text().splitlines():
                m_ = re.match(r"(\d+)\s+[\d.]+\s+(.*)$", line)
                if not m_:
                    continue
                pid, text = m_[1], m_[2]
                if text.endswith(" <unfinished ...>"):
                    unfinished[pid] = len(got)
                    got.append((pid, text[:-len(" <unfinished ...>")]))
                elif text.startswith("<... "):
                    if pid in unfinished:
                        at = unfinished.pop(pid)
                        got[at] = (pid, got[at][1] + text.split("resumed>", 1)[1])
                else:
                    got.append((pid, text))
            return got
        until(lambda: len(adopted()) == len(files), within=10, what="every file settled")
    finally:
        trace.terminate()
        trace.wait(timeout=10)
    lines = [line for _, line in calls()]
    renames = adopted()
    assert not [line for line in lines if line.startswith(("fsync", "fdatasync"))
                and "/dirty/" in line], lines
    syncs = [i for i, line in enumerate(lines) if line.startswith("syncfs")]
    assert syncs and syncs[0] < renames[0], lines
    assert len(syncs) < len(files), f"{len(syncs)} syncfs for {len(files)} files"
    until_server_holds(alice, files, within=30)
