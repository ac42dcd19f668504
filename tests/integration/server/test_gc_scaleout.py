"""Garbage collection beside other instances (PostgreSQL and S3): gc in
one process must never delete the bytes of a block that another instance
stored meanwhile and a file then committed.  A proxy between the
instances and S3 stops gc's DELETE, or an upload's PUT answer, at the
moment that matters; the file committed meanwhile must then read back
whole through every instance.
Run when the suite runs on PostgreSQL (CLOUDFS_TEST_META=postgresql)."""

import concurrent.futures
import os
import sys
import time

import pytest

import cfs_postgres
from cfs_s3 import BUCKET
from cfs_server import Server, block_id

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fs"))
from cfs_proxy import Proxy  # noqa: E402

pytestmark = [
    pytest.mark.skipif(cfs_postgres.ENGINE != "postgresql",
                       reason="the suite runs on the embedded store"),
    pytest.mark.xfail(strict=True, reason="gc excludes only the uploads of its own "
                      "process (an in-process rwlock): it deletes what another "
                      "instance just stored"),
]


class Pair:
    """Two cloudfsd on one database and one bucket prefix, both talking
    to S3 through .proxy (neither collects by itself: .gc() does)."""

    def __init__(self, tmp_path, s3):
        self.prefix = "gc-" + os.urandom(8).hex()
        self.s3 = s3
        self.proxy = Proxy(s3.endpoint)
        blocks = ["--blocks", f"s3://{BUCKET}/{self.prefix}", "--s3-endpoint",
                  self.proxy.url, "--s3-path-style"]
        env = s3.credentials_env()
        self.a = Server(tmp_path / "a", tmp_path / "cloudfsd-a.log", blocks=blocks, env=env)
        self.a.start(options=["--gc-every", "0"])
        self.b = Server(tmp_path / "b", tmp_path / "cloudfsd-b.log", meta=self.a.meta,
                        blocks=blocks, env=env)
        self.b.database = self.a.database
        self.b.start(options=["--gc-every", "0"])

    def key_rx(self, method, bid):
        return rf"{method} /{BUCKET}/{self.prefix}/\S*{bid}"

    def gc(self):
        """cloudfsd gc --retention 0 beside the servers, as A's options
        say; its standard output."""
        return self.a.cli("gc", "--retention", "0").stdout

    def stop(self):
        self.proxy.release()
        for s in (self.b, self.a):
            s.stop()
        self.proxy.close()


@pytest.fixture
def pair(tmp_path, s3):
    p = Pair(tmp_path, s3)
    yield p
    p.stop()


def unreferenced_block(pair, alice, data):
    """DATA uploaded through A and listed by no file, old enough for a
    gc with no retention to drop it."""
    assert alice.upload(data).status == 200
    # The retention counts whole seconds from the upload's.
    time.sleep(1.1)
    return block_id(data)


def assert_reads_whole(pair, alice, path, data):
    """PATH reads back as DATA through both instances."""
    for server in (pair.a, pair.b):
        c = alice.clone(server.url)
        entries, _ = c.list_all(alice.root_ns)
        (entry,) = [e for e in entries if e["path"] == path]
        assert entry["blocks"] == [block_id(data)], entry
        r = c.download(block_id(data))
        assert r.status == 200, f"{path} through {server.url}: {r}"
        assert r.body == data


def test_a_block_stored_again_while_gc_deletes_it_stays(pair, tmp_path):
    alice = pair.a.user("alice")
    through_b = alice.clone(pair.b.url)
    data = os.urandom(1000)
    bid = unreferenced_block(pair, alice, data)
    pair.proxy.hold(pair.key_rx("DELETE", bid))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        gc = pool.submit(pair.gc)
        pair.proxy.wait_held(1)
        # gc forgot the block and is about to delete its bytes: a client
        # stores it again through B and commits a file that lists it.
        write = pool.submit(through_b.write_file, alice.root_ns, "f", data)
        try:
            write.result(timeout=3)
        except concurrent.futures.TimeoutError:
            pass  # waits for gc to finish: that is allowed
        pair.proxy.release()
        assert "blocks dropped: 1" in gc.result(timeout=60)
        write.result(timeout=60)
    assert_reads_whole(pair, alice, "f", data)


def test_a_block_whose_row_lands_after_gc_forgot_it_stays(pair, tmp_path):
    alice = pair.a.user("alice")
    through_b = alice.clone(pair.b.url)
    data = os.urandom(1000)
    bid = unreferenced_block(pair, alice, data)
    pair.proxy.stall(pair.key_rx("PUT", bid))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # B's PUT lands in S3, and B records the block only once gc ran.
        upload = pool.submit(through_b.upload, data)
        pair.proxy.wait_stalled(1)
        pair.gc()
        pair.proxy.release()
        assert upload.result(timeout=60).status == 200
    through_b.write_file(alice.root_ns, "f", data)
    assert_reads_whole(pair, alice, "f", data)
