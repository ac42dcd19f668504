"""A real cloudfsd for tests: started on 127.0.0.1 with a free port, talked
to over real HTTP, and checked on the way out (clean exit on SIGTERM, no
sanitizer report in its log)."""

import hashlib
import http.client
import json
import os
import re
import signal
from contextlib import contextmanager
import subprocess
import time
import urllib.parse

CLOUDFSD = os.environ.get(
    "CLOUDFSD",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "server", "cloudfsd"))

BLOCK_SIZE = 4194304

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def run_cli(*args, check=True):
    """Runs `cloudfsd ARGS` to completion; returns the CompletedProcess."""
    p = subprocess.run([CLOUDFSD, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"cloudfsd {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def block_id(data):
    """A block's id: the SHA-256 of its bytes, in lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def split_blocks(data):
    """The blocks of a file's content, cut at 4 MiB offsets."""
    return [data[i:i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]


def file_op(path, data=b"", **fields):
    """A commit operation writing DATA at PATH (extra FIELDS as given)."""
    return {"op": "file", "path": path, "size": len(data),
            "blocks": [block_id(b) for b in split_blocks(data)], **fields}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self):
        return self.json["error"]["code"]

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Client:
    """One user's view of the server: a token and a keep-alive connection."""

    def __init__(self, url, token=None, timeout=30):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=None):
        h = dict(headers or {})
        if self.token is not None and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=timeout or self.timeout)
            elif self.conn.sock is not None:
                self.conn.sock.settimeout(timeout or self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return Response(r.status, dict(r.getheaders()), data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection.
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    # The protocol's calls, one helper each.

    def upload(self, data):
        return self.put(f"/block/{block_id(data)}", data)

    def download(self, bid):
        return self.get(f"/block/{bid}")

    def need(self, ids):
        r = self.post("/block/need", {"blocks": list(ids)})
        assert r.status == 200, r
        return r.json["needed"]

    def commit(self, ns, *ops):
        return self.post(f"/meta/ns/{ns}/commit", {"ops": list(ops)})

    def commit_ok(self, ns, *ops):
        """Commits OPS; each must be committed. Returns the results."""
        r = self.commit(ns, *ops)
        assert r.status == 200, r
        for res in r.json["results"]:
            assert res["status"] == "committed", r
        return r.json["results"]

    def write_file(self, ns, path, data, **fields):
        """The two-phase commit: commit, upload what is needed, commit
        again. Returns the committed result."""
        op = file_op(path, data, **fields)
        res = self.commit(ns, op).json["results"][0]
        if res["status"] == "need_blocks":
            by_id = {block_id(b): b for b in split_blocks(data)}
            for bid in res["blocks"]:
                assert self.upload(by_id[bid]).status == 200
            res = self.commit(ns, op).json["results"][0]
        assert res["status"] == "committed", res
        return res

    def list(self, ns, cursor=None, limit=None):
        q = "&".join(f"{k}={v}" for k, v in (("cursor", cursor), ("limit", limit))
                     if v is not None)
        return self.get(f"/meta/ns/{ns}/list" + (f"?{q}" if q else ""))

    def list_all(self, ns, cursor=0, limit=None):
        """Lists from CURSOR page by page until more is false.
        Returns (entries of every page, final cursor)."""
        entries = []
        while True:
            r = self.list(ns, cursor, limit)
            assert r.status == 200, r
            entries += r.json["entries"]
            cursor = r.json["cursor"]
            if not r.json["more"]:
                return entries, cursor

    def snapshot(self, ns):
        """Namespace NS from cursor 0 as {path: entry}, and its head."""
        entries, head = self.list_all(ns)
        return {e["path"]: e for e in entries}, head

    def head(self, ns):
        return self.snapshot(ns)[1]

    def longpoll(self, cursors, timeout=None):
        body = {"cursors": [{"ns": ns, "cursor": c} for ns, c in cursors.items()]}
        if timeout is not None:
            body["timeout"] = timeout
        return self.post("/meta/longpoll", body, timeout=(timeout or 60) + 30)


def assert_error(r, status, code, *words):
    """R failed with STATUS and CODE, and its message names each of WORDS."""
    assert r.status == status, r
    err = r.json["error"]
    assert err["code"] == code, r
    assert err["message"], r
    for w in words:
        assert w in err["message"], f"message does not name {w!r}: {r}"


@contextmanager
def unchanged(client, *namespaces):
    """Asserts that what runs inside changes none of NAMESPACES (listing
    and head, as CLIENT sees them) and that the server still serves."""
    before = [client.snapshot(ns) for ns in namespaces]
    yield
    assert client.get("/").status == 200
    assert [client.snapshot(ns) for ns in namespaces] == before


class Server:
    """cloudfsd serve --data DATA, on 127.0.0.1 and a free port."""

    def __init__(self, data_dir, log_path):
        self.data_dir = str(data_dir)
        self.log_path = str(log_path)
        self.proc = None
        self.url = None
        self.runs = 0

    def start(self, listen="127.0.0.1:0"):
        self.runs += 1
        self.log = open(self.log_path, "a")
        self.log.write(f"--- run {self.runs}\n")
        self.log.flush()
        start = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [CLOUDFSD, "serve", "--data", self.data_dir, "--listen", listen],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                f.seek(start)
                m = re.search(r"listening on (http://\S+)", f.read())
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"cloudfsd exited {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.02)
        raise AssertionError("cloudfsd did not start listening:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def _check_log(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in cloudfsd's log:\n{text}"

    def stop(self):
        """SIGTERM; the server must exit 0 within 20 s, sanitizer-clean."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("cloudfsd did not stop on SIGTERM:\n" + self.log_text())
        self.proc = None
        self.log.close()
        self._check_log()
        assert rc == 0, f"cloudfsd exited {rc} on SIGTERM:\n{self.log_text()}"

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def useradd(self, name):
        token = run_cli("useradd", "--data", self.data_dir, name).stdout
        assert re.fullmatch(r"[0-9a-f]{64}\n", token), repr(token)
        return token.strip()

    def client(self, token=None):
        return Client(self.url, token)

    def user(self, name):
        """A new user and a client that acts as them (with .root_ns)."""
        c = self.client(self.useradd(name))
        c.name = name
        c.root_ns = c.get("/meta/namespaces").json["namespaces"][0]["ns"]
        return c
