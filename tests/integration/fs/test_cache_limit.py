"""The cache's size limit holds whatever brings bytes in: files written
as well as blocks fetched. Blocks nobody lists any more go without
waiting for eviction; when only what cannot be evicted is left (changes
not yet on the server), writes wait for room and then fail with ENOSPC,
and nothing that was written is lost."""

import errno
import os
import subprocess
import threading

import pytest

from cfs_fs import at, cloudfs, MiB, payload, read, server_listing, until, until_server_holds
from cfs_proxy import proxy  # noqa: F401 (a fixture)


def write(path, data):
    """Writes DATA to PATH with plain write(2)s of 1 MiB, so that an error
    shows at the write that met it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(0, len(data), MiB):
            os.write(fd, data[i:i + MiB])
    finally:
        os.close(fd)


def cache_bytes(m):
    """Bytes of blocks and of files being written, as cloudfs cache stat
    tells them."""
    st = cloudfs("cache", "stat", "--json", cwd=m.mountpoint)
    return st["bytes"] + st["dirty_bytes"]


def test_a_file_being_written_counts_at_every_look(alice, mount):
    """The bytes of files still open for writing count each time the cache
    is measured, not only the first: the keeper measures at every pass, and
    a miss let writes past the limit (all eight of the test below, now and
    then)."""
    m = mount(alice)
    fd = os.open(at(m, "open.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, payload(3 * MiB, "open"))
        looks = [cloudfs("cache", "stat", "--json", cwd=m.mountpoint)["dirty_bytes"]
                 for _ in range(3)]
    finally:
        os.close(fd)
    assert all(n >= 3 * MiB for n in looks), looks


def test_writing_and_deleting_three_times_the_limit_stays_within_it(alice, mount):
    limit = 24 * MiB
    m = mount(alice, cache_size="24M", cache_min_free="0")
    most = 0
    for i in range(36):  # 72 MiB written, each file deleted two files later
        write(at(m, f"f{i}.bin"), payload(2 * MiB, f"f{i}"))
        if i >= 2:
            os.unlink(at(m, f"f{i - 2}.bin"))
        most = max(most, cache_bytes(m))
    assert most <= limit, f"the cache held {most} bytes, over its limit of {limit}"
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)
    assert sorted(server_listing(alice, alice.root_ns)) == ["f34.bin", "f35.bin"]
    # What the deleted files left is dropped, not kept until evicted.
    until(lambda: cache_bytes(m) == 4 * MiB, within=20,
          what="only the two live files' blocks in the cache")
    assert read(at(m, "f35.bin")) == payload(2 * MiB, "f35")


def test_blocks_of_an_overwritten_file_go_once_the_new_version_is_committed(
        alice, mount):
    m = mount(alice)
    write(at(m, "doc.bin"), payload(8 * MiB, "first"))
    cloudfs("status", "--wait", m.mountpoint)
    write(at(m, "doc.bin"), payload(8 * MiB, "second"))
    cloudfs("status", "--wait", m.mountpoint)
    until(lambda: cache_bytes(m) == 8 * MiB, within=20,
          what="the first version's blocks dropped")
    os.unlink(at(m, "doc.bin"))
    cloudfs("status", "--wait", m.mountpoint)
    until(lambda: cache_bytes(m) == 0, within=20, what="every block dropped")


def test_a_cache_full_of_unsent_changes_refuses_writes_and_loses_nothing(
        alice, mount, proxy):
    """The server takes no commit: the cache fills with what cannot be
    evicted; the next write waits (30 s) and gets ENOSPC, the log names
    the file and status says why. Once the server takes the commits,
    everything that was written is there, and writes go on."""
    m = mount(alice.clone(proxy.url), cache_size="16M", cache_min_free="0")
    base = payload(4 * MiB, "base")
    write(at(m, "base.bin"), base)
    cloudfs("status", "--wait", m.mountpoint)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    written = {}
    refused = None
    for i in range(8):
        name, data = f"f{i}.bin", payload(4 * MiB, f"f{i}")
        try:
            write(at(m, name), data)
            written[name] = data
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            refused = name
            break
    assert refused, "every write was taken past the cache's limit"
    assert len(written) >= 2, written.keys()
    assert f"cannot write to '{refused}': the cache is full" in m.log_text()
    st = cloudfs("status", "--json", m.mountpoint, expect=3)["mounts"][0]
    assert st["cache_full"], st
    assert "cache is full" in cloudfs("status", m.mountpoint, expect=3)
    for name, data in written.items():
        assert read(at(m, name)) == data
    # Cutting a file inside a block stages a copy of that block: refused
    # too, and the file keeps its bytes.
    with pytest.raises(OSError) as e:
        os.truncate(at(m, "base.bin"), MiB + 1)
    assert e.value.errno == errno.ENOSPC, e.value
    proxy.release()
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)
    until_server_holds(alice, {**written, "base.bin": base})
    write(at(m, "after.bin"), payload(4 * MiB, "after"))
    cloudfs("status", "--wait", m.mountpoint)
    assert not cloudfs("status", "--json", m.mountpoint)["mounts"][0]["cache_full"]
    assert cache_bytes(m) <= 16 * MiB


def test_cold_reads_of_four_times_the_limit_stay_within_it(alice, mount):
    """Blocks fetched for readers count like blocks written: two readers
    at once of files four times the cache's size in all never take the
    cache past its limit, sampled all through the reads."""
    files = {f"big{i}.bin": payload(32 * MiB, f"big{i}") for i in range(2)}
    alice.write_files(alice.root_ns, files)
    m = mount(alice, cache_size="16M", cache_min_free="0")
    most, got, done = 0, {}, threading.Event()

    def sample():
        nonlocal most
        while not done.is_set():
            most = max(most, cache_bytes(m))

    def reader(name):
        got[name] = read(at(m, name))

    threads = [threading.Thread(target=sample)] + [
        threading.Thread(target=reader, args=(n,)) for n in files]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    done.set()
    threads[0].join()
    assert got == files
    assert most <= 16 * MiB, f"the cache held {most} bytes, over its limit of {16 * MiB}"


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs of its own, for a cache directory."""
    d = tmp_path / "small-disk"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(d)], check=True)
    yield str(d)
    subprocess.run(["umount", "-l", str(d)], check=True)


def test_the_disk_floor_holds_with_no_limit(alice, mount, small_disk):
    m = mount(alice, cache=os.path.join(small_disk, "cache"), cache_size="0",
              cache_min_free="32M")
    least = 64 * MiB
    for i in range(24):  # 48 MiB through a disk that keeps 32 free
        write(at(m, f"f{i}.bin"), payload(2 * MiB, f"f{i}"))
        v = os.statvfs(small_disk)
        least = min(least, v.f_bavail * v.f_frsize)
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)
    until(lambda: (lambda v: v.f_bavail * v.f_frsize)(os.statvfs(small_disk)) >= 32 * MiB,
          within=10, what="the floor kept")
    # Written past the floor, the writer waited for room; the disk never
    # filled, and nothing was lost.
    assert least > 8 * MiB, f"the disk went down to {least} bytes free"
    until_server_holds(alice, {f"f{i}.bin": payload(2 * MiB, f"f{i}") for i in range(24)})
