"""Blocks in an S3 bucket (cloudfsd serve --blocks s3://...): the objects
the server writes, reads and deletes, checked through the bucket's own
API, and what the server does when the bucket fails it."""

import concurrent.futures
import http.client
import os
import subprocess
import sys
import time

import pytest

from cfs_s3 import BUCKET, S3Server
from cfs_server import (CLOUDFSD, Server, assert_asked_again, assert_error, block_id,
                        file_op, run_cli)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fs"))
from cfs_proxy import Proxy  # noqa: E402

MiB = 1 << 20


def s3_server(s3, tmp_path, prefix, vhost=False, name="data"):
    """A cloudfsd keeping its blocks under PREFIX in S3's bucket."""
    return Server(tmp_path / name, tmp_path / f"{name}.log",
                  blocks=s3.blocks_options(prefix, vhost=vhost),
                  env=S3Server.credentials_env())


def object_key(prefix, bid):
    return f"{prefix}/{bid[:2]}/{bid[2:4]}/{bid}"


@pytest.fixture
def s3_alice(s3, tmp_path):
    """A cloudfsd with its blocks under a prefix of its own, and a user."""
    prefix = "t-" + os.urandom(6).hex()
    server = s3_server(s3, tmp_path, prefix).start()
    alice = server.user("alice")
    alice.prefix = prefix
    yield server, alice
    server.stop()


def test_a_block_round_trips_through_the_bucket_under_its_hash_prefix(s3, s3_alice):
    server, alice = s3_alice
    big, small = os.urandom(4 * MiB), b"hello, bucket"
    alice.write_file(alice.root_ns, "big", big)
    alice.write_file(alice.root_ns, "small", small)
    for data in (big, small):
        r = alice.download(block_id(data))
        assert r.status == 200 and r.body == data, r
        assert s3.get(object_key(alice.prefix, block_id(data))) == data
    assert s3.keys(alice.prefix) == sorted(object_key(alice.prefix, block_id(d))
                                           for d in (big, small))


def test_virtual_host_addressing_reaches_the_same_bucket(s3, tmp_path):
    prefix = "vh-" + os.urandom(6).hex()
    server = s3_server(s3, tmp_path, prefix, vhost=True).start()
    try:
        alice = server.user("alice")
        data = os.urandom(100000)
        alice.write_file(alice.root_ns, "f", data)
        assert alice.download(block_id(data)).body == data
        assert s3.get(object_key(prefix, block_id(data))) == data
    finally:
        server.stop()


def test_a_wrong_upload_hash_stores_nothing_in_the_bucket(s3, s3_alice):
    server, alice = s3_alice
    claimed = block_id(b"what was promised")
    assert_error(alice.put(f"/block/{claimed}", b"something else"), 400, "hash_mismatch")
    assert_error(alice.put(f"/block/{claimed}", b"x" * (4 * MiB + 1)), 413, "too_large")
    assert s3.keys(alice.prefix) == []
    assert s3.get(object_key(alice.prefix, claimed)) is None


def test_the_endpoint_down_is_a_503_and_the_server_carries_on(tmp_path):
    s3 = S3Server(tmp_path / "s3", tmp_path / "s3rver.log").start()
    server = s3_server(s3, tmp_path, "down").start()
    try:
        alice = server.user("alice")
        kept = os.urandom(200000)
        alice.write_file(alice.root_ns, "kept", kept)
        s3.stop()

        r = alice.download(block_id(kept))
        assert_error(r, 503, "unavailable", block_id(kept), "unavailable")
        new = os.urandom(1000)
        assert_error(alice.upload(new), 503, "unavailable", block_id(new))
        log = server.log_text()
        assert f"GET of '{object_key('down', block_id(kept))}' in s3://{BUCKET} at " \
               f"{s3.endpoint} failed" in log, log
        assert f"PUT of '{object_key('down', block_id(new))}'" in log, log

        s3.start()  # the same port and objects
        assert alice.download(block_id(kept)).body == kept
        assert alice.upload(new).status == 200
    finally:
        server.stop()
        s3.stop()


def drop_one(server, alice):
    """Writes "gone" and "kept", deletes "gone" and stops the server past
    gc's retention of 0 s. Returns the two contents."""
    ns = alice.root_ns
    gone, kept = os.urandom(3000), os.urandom(4000)
    alice.write_file(ns, "gone", gone)
    alice.write_file(ns, "kept", kept)
    alice.commit_ok(ns, {"op": "delete", "path": "gone"})
    server.stop()
    time.sleep(1.1)  # retention counts whole seconds
    return gone, kept


def test_gc_deletes_the_objects_of_dropped_blocks(s3, s3_alice):
    server, alice = s3_alice
    gone, kept = drop_one(server, alice)
    assert "blocks dropped: 1 " in server.cli("gc", "--retention", "0").stdout
    assert s3.keys(alice.prefix) == [object_key(alice.prefix, block_id(kept))]
    server.start()


def test_a_delete_the_bucket_fails_loses_nothing_and_says_so(s3, tmp_path):
    """gc forgets a block before it deletes its bytes: when the DELETE
    fails, the bytes stay (listed by nobody), gc says so and fails, the
    live block stays, and the forgotten one is asked for again."""
    prefix = "del-" + os.urandom(6).hex()
    proxy = Proxy(s3.endpoint)
    server = Server(tmp_path / "data", tmp_path / "data.log",
                    blocks=["--blocks", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", proxy.url,
                            "--s3-path-style"],
                    env=S3Server.credentials_env()).start()
    try:
        alice = server.user("alice")
        gone, kept = drop_one(server, alice)
        proxy.hold(rf"DELETE /{BUCKET}/{prefix}/")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            gc = pool.submit(server.cli, "gc", "--retention", "0", check=False)
            proxy.wait_held(1)
            proxy.close()  # the DELETE, and curl's retry of it, fail
            p = gc.result(timeout=60)
        assert p.returncode == 1, p
        assert f"cannot remove the bytes of block {block_id(gone)}" in p.stderr, p.stderr

        server.blocks = s3.blocks_options(prefix)
        server.start()
        alice = alice.clone(server.url)
        assert alice.download(block_id(kept)).body == kept
        assert_asked_again(alice, alice.root_ns, gone)
    finally:
        server.stop()
        proxy.close()


def test_a_corrupt_object_is_never_served_whole(s3, s3_alice, tmp_path):
    server, alice = s3_alice
    data = os.urandom(300000)
    alice.write_file(alice.root_ns, "f", data)
    s3.put(object_key(alice.prefix, block_id(data)), os.urandom(len(data)), tmp_path)
    with pytest.raises(http.client.IncompleteRead) as got:
        alice.download(block_id(data))
    assert len(got.value.partial) < len(data)
    alice.close()
    assert "is corrupt" in server.log_text()
    assert alice.get("/").status == 200


def test_credentials_the_bucket_refuses_stop_the_server_at_its_start(s3, tmp_path):
    p = subprocess.run(
        [CLOUDFSD, "serve", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
         *s3.blocks_options("refused")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **S3Server.credentials_env(access_key="NOBODY")})
    assert p.returncode == 1, p.stderr
    assert f"GET of the bucket in s3://{BUCKET} at {s3.endpoint} failed: " \
        "HTTP 403 InvalidAccessKeyId" in p.stderr, p.stderr


def test_credentials_come_from_a_file_only_its_owner_reads(s3, tmp_path):
    creds = tmp_path / "s3.keys"
    creds.write_text("# for the tests\nAWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n")
    argv = [CLOUDFSD, "serve", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
            *s3.blocks_options("file"), "--s3-credentials", str(creds)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    os.chmod(creds, 0o644)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 1 and "must be readable by its owner only" in p.stderr, p.stderr
    os.chmod(creds, 0o600)
    server = Server(tmp_path / "data", tmp_path / "cloudfsd.log",
                    blocks=[*s3.blocks_options("file"), "--s3-credentials", str(creds)])
    server.start()
    try:
        alice = server.user("alice")
        alice.write_file(alice.root_ns, "f", b"signed with the file's keys")
        assert s3.keys("file") == [object_key("file", block_id(b"signed with the file's keys"))]
    finally:
        server.stop()


@pytest.mark.parametrize("args, problem", [
    (["--blocks", "s3://bucket/p"], "needs --s3-endpoint URL"),
    (["--blocks", "s3:///p", "--s3-endpoint", "http://x"], "needs a bucket"),
    (["--blocks", "/srv/blocks"], "--blocks takes dir:DIR or s3://BUCKET[/PREFIX]"),
    (["--s3-region", "eu-west-1"], "the --s3-* options go with --blocks s3://"),
])
def test_block_store_options_that_do_not_fit_are_refused(tmp_path, args, problem):
    for command in ("serve", "gc"):
        p = run_cli(command, "--data", str(tmp_path), *args, check=False)
        assert p.returncode == 2 and problem in p.stderr, p.stderr


def test_blocks_in_a_folder_of_their_own(tmp_path):
    server = Server(tmp_path / "data", tmp_path / "cloudfsd.log",
                    blocks=["--blocks", f"dir:{tmp_path / 'blockdir'}"]).start()
    try:
        alice = server.user("alice")
        alice.write_file(alice.root_ns, "f", b"in a folder of their own")
        bid = block_id(b"in a folder of their own")
        assert (tmp_path / "blockdir" / "blocks" / bid[:2] / bid).read_bytes() == \
            b"in a folder of their own"
        assert not (tmp_path / "data" / "blocks").exists()
        assert alice.download(bid).body == b"in a folder of their own"
        alice.commit_ok(alice.root_ns, {"op": "delete", "path": "f"}, file_op("g"))
    finally:
        server.stop()
    time.sleep(1.1)
    assert "blocks dropped: 1 " in server.cli("gc", "--retention", "0").stdout
    assert not (tmp_path / "blockdir" / "blocks" / bid[:2] / bid).exists()
