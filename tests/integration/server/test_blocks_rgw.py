"""Blocks in Ceph's radosgw, an S3 server that checks every request's
SigV4 signature and payload hash as AWS does (s3rver, which the rest of
the S3 tests use, checks neither): libcurl's signing of cloudfsd's
requests is what the gateway accepts, and a wrong secret is refused."""

import os
import subprocess
import time

from cfs_rgw import ACCESS_KEY, BUCKET, SECRET_KEY
from cfs_server import CLOUDFSD, Server, block_id

CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def test_signed_uploads_downloads_and_deletes_are_accepted(rgw, tmp_path):
    prefix = "signed"
    server = Server(tmp_path / "data", tmp_path / "cloudfsd.log",
                    blocks=rgw.blocks_options(prefix), env=CREDENTIALS).start()
    try:
        alice = server.user("alice")
        big, small = os.urandom(4 << 20), b"signed bytes"
        alice.write_file(alice.root_ns, "big", big)
        alice.write_file(alice.root_ns, "small", small)
        for data in (big, small):
            bid = block_id(data)
            assert alice.download(bid).body == data
            assert rgw.curl(f"{rgw.endpoint}/{BUCKET}/{prefix}/{bid[:2]}/{bid[2:4]}/{bid}") \
                == (200, data)
        alice.commit_ok(alice.root_ns, {"op": "delete", "path": "small"})
    finally:
        server.stop()
    time.sleep(1.1)  # retention counts whole seconds
    assert "blocks dropped: 1 " in server.cli("gc", "--retention", "0").stdout
    bid = block_id(b"signed bytes")
    status, _ = rgw.curl(f"{rgw.endpoint}/{BUCKET}/{prefix}/{bid[:2]}/{bid[2:4]}/{bid}")
    assert status == 404


def test_a_wrong_secret_is_refused_with_a_clear_error(rgw, tmp_path):
    p = subprocess.run(
        [CLOUDFSD, "serve", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
         *rgw.blocks_options("refused")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **CREDENTIALS, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert p.returncode == 1, p.stderr
    assert f"GET of the bucket in s3://{BUCKET} at {rgw.endpoint} failed: " \
        "HTTP 403 SignatureDoesNotMatch" in p.stderr, p.stderr
