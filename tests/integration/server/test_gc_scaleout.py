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

pytestmark = pytest.mark.skipif(cfs_postgres.ENGINE != "postgresql",
                                reason="the suite runs on the embedded store")

class Pair:
    """Two cloudfsd on one database and one bucket prefix, both talking
    to S3 through .proxy.  B never collects garbage; A collects every
    second with no retention when a_collects, never otherwise."""

    def __init__(self, tmp_path, s3, a_collects):
        self.prefix = "gc-" + os.urandom(8).hex()
        self.s3 = s3
        self.proxy = Proxy(s3.endpoint)
        blocks = ["--blocks", f"s3://{BUCKET}/{self.prefix}", "--s3-endpoint",
                  self.proxy.url, "--s3-path-style"]
        env = s3.credentials_env()
        self.a = Server(tmp_path / "a", tmp_path / "cloudfsd-a.log", blocks=blocks, env=env)
        self.a_collects = a_collects
        self.a.start(options=["--retention", "0", "--gc-every", "1s"] if a_collects
                     else ["--gc-every", "0"])
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


@pytest.fixture(params=[False], ids=["gc-by-hand"])
def pair(request, tmp_path, s3):
    p = Pair(tmp_path, s3, request.param)
    yield p
    p.stop()


@pytest.fixture
def garbage(pair):
    """Alice (through A, and .through_b) and .data, a block she uploaded
    through A (.bid) that no file lists, old enough for a gc with no
    retention to drop it."""
    alice = pair.a.user("alice")
    alice.through_b = alice.clone(pair.b.url)
    alice.data = os.urandom(1000)
    alice.bid = block_id(alice.data)
    if pair.a_collects:
        # A deletes it a second later: not before the test says so.
        pair.proxy.hold(pair.key_rx("DELETE", alice.bid))
    assert alice.upload(alice.data).status == 200
    # The retention counts whole seconds from the upload's.
    time.sleep(1.1)
    return alice


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


@pytest.mark.parametrize("pair", [False, True], ids=["gc-by-hand", "gc-of-a"], indirect=True)
def test_a_block_stored_again_while_gc_deletes_it_stays(pair, garbage):
    alice = garbage
    pair.proxy.hold(pair.key_rx("DELETE", alice.bid))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        gc = None if pair.a_collects else pool.submit(pair.gc)
        pair.proxy.wait_held(1)
        # gc forgot the block and is about to delete its bytes: a client
        # stores it again through B and commits a file that lists it.
        write = pool.submit(alice.through_b.write_file, alice.root_ns, "f", alice.data)
        try:
            write.result(timeout=3)
        except concurrent.futures.TimeoutError:
            pass  # waits for gc to finish: that is allowed
        pair.proxy.release()
        if gc:
            assert "blocks dropped: 1" in gc.result(timeout=60)
        write.result(timeout=60)
    assert_reads_whole(pair, alice, "f", alice.data)


def test_a_block_whose_row_lands_after_gc_forgot_it_stays(pair, garbage):
    alice = garbage
    pair.proxy.stall(pair.key_rx("PUT", alice.bid))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # B's PUT lands in S3, and B records the block only once gc ran.
        upload = pool.submit(alice.through_b.upload, alice.data)
        pair.proxy.wait_stalled(1)
        pair.gc()
        pair.proxy.release()
        assert upload.result(timeout=60).status == 200
    alice.through_b.write_file(alice.root_ns, "f", alice.data)
    assert_reads_whole(pair, alice, "f", alice.data)
