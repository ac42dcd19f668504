"""An S3-compatible server for tests: s3rver (npm, installed into
tools/s3rver/node_modules by tools/install-deps and .ci/run) on
127.0.0.1 and a free port, with one bucket, and a client for it that
signs with curl(1)'s --aws-sigv4, as cloudfsd signs with libcurl.

s3rver checks the access key but not the SigV4 signature itself, so the
tests here prove the requests, the keys and the error handling, not the
signing."""

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
S3RVER = os.path.join(ROOT, "tools", "s3rver", "node_modules", ".bin", "s3rver")

BUCKET = "cloudfs-test"
# s3rver's built-in account.
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def missing():
    """Why no S3 server can be started here, or None."""
    if not shutil.which("node"):
        return "node is not installed (Debian's nodejs; tools/install-deps)"
    if not os.path.exists(S3RVER):
        return f"s3rver is not installed in {os.path.dirname(S3RVER)} (tools/install-deps)"
    return None


class S3Server:
    """s3rver serving DIRECTORY with the bucket BUCKET. Virtual-host
    requests come to s3.localhost (curl resolves *.localhost to the
    loopback address itself)."""

    def __init__(self, directory, log_path):
        self.directory = str(directory)
        self.log_path = str(log_path)
        self.proc = None
        self.port = 0

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def vhost_endpoint(self):
        return f"http://s3.localhost:{self.port}"

    def start(self):
        """Starts (again, on the same port and data if it ran before)."""
        os.makedirs(self.directory, exist_ok=True)
        log = open(self.log_path, "a")
        start = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [S3RVER, "-d", self.directory, "-a", "127.0.0.1", "-p", str(self.port), "-s",
             "--service-endpoint", "localhost", "--configure-bucket", BUCKET],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                f.seek(start)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"s3rver exited {self.proc.returncode}:\n"
                                     + open(self.log_path).read())
            time.sleep(0.05)
        raise AssertionError("s3rver did not start listening:\n" + open(self.log_path).read())

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def blocks_options(self, prefix, vhost=False):
        """cloudfsd's options for blocks under PREFIX in the bucket."""
        if vhost:
            return ["--blocks", f"s3://{BUCKET}/{prefix}", "--s3-endpoint",
                    self.vhost_endpoint, "--s3-virtual-host"]
        return ["--blocks", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", self.endpoint,
                "--s3-path-style"]

    @staticmethod
    def credentials_env(access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}

    def _curl(self, *args, payload_hash=EMPTY_SHA256):
        p = subprocess.run(
            ["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3",
             "--user", f"{ACCESS_KEY}:{SECRET_KEY}",
             "-H", f"x-amz-content-sha256: {payload_hash}",
             "-w", "\n%{http_code}", *args],
            capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        body, _, status = p.stdout.rpartition(b"\n")
        return int(status), body

    def get(self, key):
        """The bytes of object KEY, or None if the bucket lacks it."""
        status, body = self._curl(f"{self.endpoint}/{BUCKET}/{key}")
        if status == 404:
            return None
        assert status == 200, (status, body)
        return body

    def put(self, key, data, tmp_path):
        """Stores DATA as object KEY behind cloudfsd's back."""
        path = os.path.join(str(tmp_path), "s3-put")
        with open(path, "wb") as f:
            f.write(data)
        status, body = self._curl("-T", path, f"{self.endpoint}/{BUCKET}/{key}",
                                  payload_hash="UNSIGNED-PAYLOAD")
        assert status == 200, (status, body)

    def keys(self, prefix):
        """The keys of the bucket under PREFIX (ListObjectsV2, one page)."""
        return sorted(self.sizes(prefix))

    def sizes(self, prefix):
        """{key: size in bytes} of the objects under PREFIX
        (ListObjectsV2, one page)."""
        status, body = self._curl(
            f"{self.endpoint}/{BUCKET}?list-type=2&prefix={prefix}/&max-keys=1000")
        assert status == 200, (status, body)
        root = ET.fromstring(body)
        # The document's own namespace (s3rver's differs from AWS's).
        ns = {"s3": root.tag[1:].partition("}")[0]}
        assert root.findtext("s3:IsTruncated", namespaces=ns) == "false", body
        return {c.findtext("s3:Key", namespaces=ns): int(c.findtext("s3:Size", namespaces=ns))
                for c in root.findall("s3:Contents", ns)}
