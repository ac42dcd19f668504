"""When the server is unreachable, listings, lookups, attributes and
cached content keep working; a read of content that is not cached fails
with EIO within the timeout. Once the server is back (on the same port),
reads work again and the mount catches up with what changed meanwhile.

The mounts here use timeout=2 (the default is 30)."""

import errno
import os
import stat
import time
import urllib.parse

import pytest

from cfs_fs import (at, Dir, File, Link, MiB, payload, put_tree, read, rewrite, timed, until,
                    until_server_holds)
from cfs_server import BLOCK_SIZE

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
