"""What write(2) accepted is never lost when the commit at settle cannot
be made at once: a server unplugged while a file that is not cached here
is changed, or a cache whose disk is full when the file settles.  A write
either fails (EIO, nothing accepted) or its bytes reach the server once
the cause is gone, and every mount reads them back."""

import errno
import os
import subprocess
import time
import urllib.parse

import pytest

from cfs_fs import at, File, payload, put_tree, read, until, until_server_holds
from cfs_server import BLOCK_SIZE

TIMEOUT = 2
SIZE = 2 * BLOCK_SIZE + 100  # three blocks, the last one short


def restart_on(server, url):
    server.start(listen=f"127.0.0.1:{urllib.parse.urlparse(url).port}")


def change(data, op):
    """Applies OP to DATA as the file system must: the expected content."""
    kind, off, arg = op
    if kind == "write":
        if off > len(data):
            data += bytes(off - len(data))
        return data[:off] + arg + data[off + len(arg):]
    return data[:off] + bytes(max(0, off - len(data)))  # truncate to off


# Each changes big.bin, whose blocks this mount never read, with the
# server down.
CHANGES = {
    # past the end: the short last block grows into a hole
    "extend": ("write", 3 * BLOCK_SIZE + 10, b"tail"),
    # the short last block grows by a truncate
    "truncate-up": ("truncate", SIZE + 1000, None),
    # the short last block grows to a whole one
    "truncate-to-blocks": ("truncate", 4 * BLOCK_SIZE, None),
    "middle": ("write", BLOCK_SIZE + 5, b"middle"),
    "append": ("write", SIZE, b"appended"),
    "cut": ("truncate", BLOCK_SIZE + 7, None),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_change_to_an_uncached_file_made_offline_is_refused_or_reaches_the_server(
        server, alice, mount, name):
    data = payload(SIZE, "settle")
    put_tree(alice, alice.root_ns, {"big.bin": File(data)})
    m, url = mount(alice, timeout=TIMEOUT), server.url
    op = CHANGES[name]
    expected = data
    server.stop()

    fd = os.open(at(m, "big.bin"), os.O_RDWR)
    try:
        if op[0] == "write":
            os.pwrite(fd, op[2], op[1])
        else:
            os.ftruncate(fd, op[1])
        expected = change(data, op)
        print(f"{name}: accepted")
    except OSError as e:
        assert e.errno == errno.EIO, e
        print(f"{name}: refused with EIO")
    finally:
        os.close(fd)
    # Settled (0.05 s) and failed, if it is to fail, well before this.
    time.sleep(2)
    assert os.stat(at(m, "big.bin")).st_size == len(expected)
    restart_on(server, url)

    until_server_holds(alice, {"big.bin": expected}, within=30)
    other = mount(alice)
    assert read(at(other, "big.bin")) == expected
    assert read(at(m, "big.bin")) == expected
    assert "last writes are lost" not in m.log_text()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs of our own under TMP_PATH, unmounted at the end."""
    path = tmp_path / "small"
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr}")
    yield path
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path):
    """Fills the file system of PATH to the last byte."""
    with open(path, "wb", buffering=0) as f:
        chunk = bytes(1 << 20)
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError:
                pass


def test_a_file_that_settles_on_a_full_cache_disk_is_committed_once_there_is_room(
        server, alice, mount, small_disk, tmp_path):
    m = mount(alice, cache=str(small_disk / "cache"), settle=3,
              log=str(tmp_path / "mount.log"))
    data = payload(3 * (1 << 20) + 77, "full")
    with open(at(m, "written.bin"), "wb") as f:
        f.write(data)
    # Written and closed; before it settles, the disk fills.
    fill(small_disk / "filler")
    until(lambda: "cannot commit" in m.log_text(), within=20,
          what="a failed commit")
    assert read(at(m, "written.bin")) == data
    os.unlink(small_disk / "filler")

    until_server_holds(alice, {"written.bin": data}, within=30)
    assert read(at(m, "written.bin")) == data
    assert read(at(mount(alice), "written.bin")) == data
    assert "last writes are lost" not in m.log_text()


def test_an_unmount_while_a_commit_fails_names_the_file_whose_writes_are_lost(
        server, alice, mount, small_disk, tmp_path):
    # The writes of a file whose commit still fails when the unmount's
    # time is out cannot be kept: the log must say which file lost them.
    m = mount(alice, cache=str(small_disk / "cache"), settle=3, timeout=TIMEOUT,
              log=str(tmp_path / "mount.log"))
    with open(at(m, "doomed.bin"), "wb") as f:
        f.write(payload(1 << 20, "doomed"))
    fill(small_disk / "filler")
    until(lambda: "cannot commit" in m.log_text(), within=20, what="a failed commit")
    m.unmount()
    assert "cannot commit 'doomed.bin'" in m.log_text()
    assert "at unmount" in m.log_text() and "last writes are lost" in m.log_text()
