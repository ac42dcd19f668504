"""A real cloudfsd for tests: started on 127.0.0.1 with a free port, talked
to over real HTTP, and checked on the way out (clean exit on SIGTERM, no
sanitizer report in its log)."""

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from types import SimpleNamespace

import cfs_postgres

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


def need(why):
    """Skips the test for WHY (a server is missing, or None: go on), which
    only a developer's machine may lack: CI (CI=true) installs what the
    tests need, and fails."""
    import pytest
    if why and os.environ.get("CI"):
        pytest.fail(f"cannot run: {why}")
    if why:
        pytest.skip(why)


def fill(path):
    """Writes to PATH until its disk is full. Unbuffered: a buffered file
    keeps the bytes the full disk refused and fails again at close, with
    ENOSPC out of fill itself, whenever the free space is not a multiple
    of what was written (a schema that grows the store by a page did)."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


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


def assert_asked_again(client, ns, data, path="again"):
    """A block gc dropped is asked for again, never taken as there: a
    commit of DATA answers need_blocks, and once uploaded it reads back."""
    op = file_op(path, data)
    assert client.commit(ns, op).json["results"][0]["status"] == "need_blocks"
    client.write_file(ns, path, data)
    assert client.download(block_id(data)).body == data


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
    """One user's view of the server: a token and a keep-alive connection
    (over https, checking the server's certificate against the CA file
    CA)."""

    def __init__(self, url, token=None, timeout=30, ca=None):
        u = urllib.parse.urlparse(url)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.token = token
        self.timeout = timeout
        self.ca = ca
        self.conn = None

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    def _connect(self, timeout):
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout,
                context=ssl.create_default_context(cafile=self.ca))
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

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
                self.conn = self._connect(timeout or self.timeout)
            elif self.conn.sock is not None:
                self.conn.sock.settimeout(timeout or self.timeout)
            try:
                try:
                    self.conn.request(method, path, body=body, headers=h)
                except (ConnectionResetError, BrokenPipeError):
                    # Answered before the whole body was read (413): read
                    # the answer, unless the socket went with the error
                    # (a server killed mid-request: nothing to read).
                    if self.conn.sock is None:
                        raise
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return Response(r.status, r.msg, data)  # headers: case-insensitive
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection.
                self.close()
                if attempt:
                    raise

    def clone(self, url=None):
        """Another client of the same user, with its own connection (to
        URL if given: a restarted server listens on a new port)."""
        c = Client(url or self.url, self.token, self.timeout)
        c.__dict__.update({k: v for k, v in self.__dict__.items()
                           if k not in ("scheme", "host", "port", "conn")})
        return c

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

    def write_files(self, ns, files, **fields):
        """write_file for many files at once: FILES maps paths to bytes
        (FIELDS as given to each). Returns the committed results."""
        return self.commit_files(ns, [file_op(p, d, **fields) for p, d in files.items()],
                                 files.values())

    def commit_files(self, ns, ops, contents):
        """Commits the batch OPS, uploading the blocks the server asks
        for (found in CONTENTS, the files' bytes; each block once), and
        commits again. Every operation must be committed; returns the
        results."""
        results = self.commit(ns, *ops).json["results"]
        needed = {bid for res in results if res["status"] == "need_blocks"
                  for bid in res["blocks"]}
        if needed:
            for data in contents:
                for b in split_blocks(data):
                    if block_id(b) in needed:
                        assert self.upload(b).status == 200
                        needed.discard(block_id(b))
            results = self.commit(ns, *ops).json["results"]
        for res in results:
            assert res["status"] == "committed", results
        return results

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
        """Namespace NS from cursor 0 as {path: entry}, and its head.
        While someone writes, a node listed in one page may come again,
        changed or deleted, in a later one: its last state counts."""
        entries, head = self.list_all(ns)
        last = {e["node"]: e for e in entries}
        return {e["path"]: e for e in last.values() if e["kind"] != "deleted"}, head

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


def result_of(client, ns, op):
    """Commits the single operation OP; returns its result."""
    r = client.commit(ns, op)
    assert r.status == 200, r
    return r.json["results"][0]


def assert_op_error(client, ns, op, code):
    """OP alone is refused with CODE (a result error) and changes nothing."""
    with unchanged(client, ns):
        res = result_of(client, ns, op)
        assert res["status"] == "error", res
        assert res["error"]["code"] == code, res
        assert res["error"]["message"], res


@contextmanager
def waiting_longpoll(client, cursors, timeout=10, settle=0.3):
    """A long poll by CLIENT's user on a connection of its own, in a thread.
    Yields its Future once the poll has had SETTLE seconds to reach the
    server (which shows no sign of a parked poll) and is still waiting."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = pool.submit(client.clone().longpoll, cursors, timeout)
        time.sleep(settle)
        assert not poll.done(), poll.result()
        yield poll


def woken(poll, within=1.0):
    """The answer of the long poll POLL (a Future), which must come within
    WITHIN seconds from now (the protocol promises about 100 ms; shared
    test machines are slow). Returns its JSON body."""
    t0 = time.monotonic()
    r = poll.result(timeout=60)
    waited = time.monotonic() - t0
    assert r.status == 200, r
    assert waited < within, f"the long poll answered {r.json} after {waited:.2f} s"
    return r.json


def tls_files(directory):
    """A private CA and a certificate it signed for 127.0.0.1 (an IP
    subjectAltName, as clients check it), made by openssl(1) in DIRECTORY:
    the paths .ca, .cert and .key (the certificate's, unencrypted), all PEM."""
    os.makedirs(directory, exist_ok=True)
    f = SimpleNamespace(**{k: os.path.join(directory, n) for k, n in (
        ("ca", "ca.pem"), ("ca_key", "ca.key"), ("cert", "server.pem"),
        ("key", "server.key"), ("csr", "server.csr"), ("ext", "server.ext"))})
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"]
    with open(f.ext, "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for argv in (
            ["req", "-x509", *key, "-days", "2", "-subj", "/CN=cloudfs test CA",
             "-keyout", f.ca_key, "-out", f.ca],
            ["req", *key, "-subj", "/CN=127.0.0.1", "-keyout", f.key, "-out", f.csr],
            ["x509", "-req", "-in", f.csr, "-CA", f.ca, "-CAkey", f.ca_key,
             "-days", "2", "-extfile", f.ext, "-out", f.cert]):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)
    return f


# pytest --blocks s3 (or CFS_TEST_BLOCKS=s3) runs a suite with every
# Server's blocks in S3, each under a prefix of its own, in the S3 server
# (cfs_s3.S3Server) that tests/integration/conftest.py starts once per
# session and puts in S3.  The default: blocks under the data directory.
S3_BLOCKS = False
S3 = None


def dir_blocks_only(what):
    """Marks a test that looks at what the directory block store keeps
    on disk (WHAT), which a run with its blocks in S3 skips."""
    import pytest
    return pytest.mark.dir_blocks_only(what)


class Server:
    """cloudfsd serve --data DATA, on 127.0.0.1 and a free port (https
    when started with --tls-cert and --tls-key; set .ca for its clients).
    Its metadata is the data directory's, or, when the tests run on
    PostgreSQL (cfs_postgres.ENGINE), in a database of its own (.database,
    or META's, to share one with another Server).  Its blocks are in S3
    when S3 is set, or where BLOCKS, options of serve that choose the
    block store, say, with ENV, the environment they need."""

    def __init__(self, data_dir, log_path, meta=None, blocks=None, env=None):
        self.data_dir = str(data_dir)
        self.database = None
        if meta is None and cfs_postgres.ENGINE == "postgresql":
            self.database = cfs_postgres.cluster().new_database()
            meta = cfs_postgres.cluster().url(self.database)
        self.meta = meta
        self.log_path = str(log_path)
        self.proc = None
        self.url = None
        self.ca = None
        self.runs = 0
        self.options = []
        self.blocks = list(blocks or [])
        self.env = dict(env or {})
        if blocks is None and S3_BLOCKS:
            self.s3_prefix = "p-" + os.urandom(8).hex()
            self.blocks = S3.blocks_options(self.s3_prefix)
            self.env = S3.credentials_env()

    def stored_blocks(self):
        """The ids of the blocks whose bytes the block store holds."""
        return set(self.stored_sizes())

    def stored_bytes(self):
        """How many bytes the block store holds, in all."""
        return sum(self.stored_sizes().values())

    def stored_sizes(self):
        """{id: size} of the blocks whose bytes the block store holds."""
        if S3_BLOCKS:
            return {key.rsplit("/", 1)[1]: size
                    for key, size in S3.sizes(self.s3_prefix).items()}
        root = os.path.join(self.data_dir, "blocks")
        return {name: os.path.getsize(os.path.join(root, d, name))
                for d in os.listdir(root) for name in os.listdir(os.path.join(root, d))}

    def cli(self, *args, check=True):
        """`cloudfsd ARGS --data DATA` with this server's metadata and
        block store options, for commands that touch blocks (gc)."""
        p = subprocess.run([CLOUDFSD, *args, "--data", self.data_dir, *self.meta_args(),
                            *self.blocks],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, **self.env})
        if check and p.returncode != 0:
            raise AssertionError(f"cloudfsd {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def start(self, listen="127.0.0.1:0", options=None):
        """Starts (again) with OPTIONS, extra arguments of serve (kept
        for later starts)."""
        if options is not None:
            self.options = list(options)
        self.runs += 1
        self.log = open(self.log_path, "a")
        self.log.write(f"--- run {self.runs}\n")
        self.log.flush()
        start = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [CLOUDFSD, "serve", "--data", self.data_dir, *self.meta_args(), "--listen", listen,
             *self.blocks, *self.options],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, **self.env})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                f.seek(start)
                m = re.search(r"listening on (https?://\S+)", f.read())
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

    def store_sql(self, query):
        """Runs QUERY on this server's metadata store, behind its back."""
        if self.database:
            cfs_postgres.cluster().sql(self.database, query)
            return
        with sqlite3.connect(os.path.join(self.data_dir, "meta.db")) as db:
            db.execute(query)

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

    def meta_args(self):
        """The options that name its metadata store, besides --data."""
        return ["--meta", self.meta] if self.meta else []

    def store_args(self):
        """The options of an administrative command on its store."""
        return self.meta_args() or ["--data", self.data_dir]

    def useradd(self, name):
        token = run_cli("useradd", *self.store_args(), name).stdout
        assert re.fullmatch(r"[0-9a-f]{64}\n", token), repr(token)
        return token.strip()

    def client(self, token=None):
        return Client(self.url, token, ca=self.ca)

    def user(self, name):
        """A new user and a client that acts as them (with .root_ns)."""
        c = self.client(self.useradd(name))
        c.name = name
        c.root_ns = c.get("/meta/namespaces").json["namespaces"][0]["ns"]
        return c


# The FUSE driver, mount.cloudfs, run against such a server.

MOUNT_CLOUDFS = os.environ.get(
    "MOUNT_CLOUDFS",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "fs", "mount.cloudfs"))

# The command line, cloudfs.
CLOUDFS = os.environ.get(
    "CLOUDFS", os.path.join(os.path.dirname(__file__), "..", "..", "build", "cli", "cloudfs"))


def mounted(path):
    """Whether PATH (absolute, no symlinks) is a mountpoint, as
    /proc/self/mountinfo says (a dead FUSE mount still is)."""
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                        line.split()[4])
            if mp == path:
                return True
    return False


def become_subreaper():
    """Makes this process the reaper of its orphaned descendants, so that
    a daemonized mount.cloudfs is our child and its exit status ours to
    read (prctl PR_SET_CHILD_SUBREAPER)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())


def write_token_file(path, token, mode=0o600):
    """A token file as mount.cloudfs wants it: only its owner can read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, mode)
    return str(path)


class Mount:
    """mount.cloudfs URL MOUNTPOINT -o token_file=...,cache=...[,OPTIONS].

    start() runs it in the foreground (-f) with its standard error in
    LOG_PATH; start_daemon() runs it without -f, so that it goes into the
    background once the mount is up, logging to its log= file (or
    CACHE/mount.log). Either way unmount() must end it with exit status 0,
    its log free of sanitizer reports, and the mountpoint no longer
    mounted; cleanup() is the last resort of a fixture."""

    def __init__(self, url, mountpoint, token_file, cache, log_path, options=None):
        self.url = url
        self.mountpoint = os.path.abspath(mountpoint)
        self.token_file = str(token_file)
        self.cache = str(cache)
        self.options = dict(options or {})
        self.foreground_log = str(log_path)
        self.proc = None  # the foreground process
        self.log_start = 0  # where a daemonized mount's part of its log starts
        self.startup_log = ""  # what it said on stderr until it was mounted
        self.pid = None   # the process serving the mount
        self.exit_status = None

    def argv(self, foreground=True):
        opts = {"token_file": self.token_file, "cache": self.cache, **self.options}
        return [MOUNT_CLOUDFS, self.url, self.mountpoint, *(["-f"] if foreground else []),
                "-o", ",".join(k if v is None else f"{k}={v}" for k, v in opts.items())]

    @property
    def log_path(self):
        if self.proc is not None or self.pid is None:
            return self.foreground_log
        return self.options.get("log") or os.path.join(self.cache, "mount.log")

    def log_text(self):
        """What this mount logged: with -f, its stderr; daemonized, what it
        said on stderr until it was mounted, then its part of its log file
        (the cache's, shared with the mounts of it before)."""
        if self.proc is not None:
            start, text = 0, ""
        else:
            start, text = self.log_start, self.startup_log
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(start)
                return text + f.read()
        except FileNotFoundError:
            return text

    def start(self, timeout=60):
        """Runs the driver with -f; returns once the mountpoint is mounted."""
        os.makedirs(self.mountpoint, exist_ok=True)
        with open(self.foreground_log, "a") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while not mounted(self.mountpoint):
            if self.proc.poll() is not None:
                rc, self.proc, self.pid = self.proc.returncode, None, None
                raise AssertionError(f"mount.cloudfs exited {rc} before mounting:\n"
                                     + self.log_text())
            if time.monotonic() > deadline:
                raise AssertionError("mount.cloudfs did not mount:\n" + self.log_text())
            time.sleep(0.01)
        return self

    def start_daemon(self, argv=None, timeout=60, cwd=None):
        """Runs the driver without -f (or ARGV, a command such as mount(8)
        that runs it so), in CWD if given; the command must exit 0 with the
        mount up. Returns the CompletedProcess."""
        os.makedirs(self.mountpoint, exist_ok=True)
        daemon_log = self.options.get("log") or os.path.join(self.cache, "mount.log")
        self.log_start = os.path.getsize(daemon_log) if os.path.exists(daemon_log) else 0
        p = subprocess.run(argv or self.argv(foreground=False), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, cwd=cwd)
        assert p.returncode == 0, f"{p.args} exited {p.returncode}: {p.stderr}"
        assert mounted(self.mountpoint), f"{p.args} returned, but nothing is mounted"
        self.startup_log = p.stderr
        with open(os.path.join(self.cache, "lock")) as f:
            self.pid = int(f.read().split()[0])
        return p

    def running(self):
        return self.pid is not None and self.exit_status is None

    # An unmount sends what is queued for up to the mount's timeout (30 s
    # by default, mount.cloudfs(8)) before the driver exits.
    DRAIN_S = 45

    def wait_exit(self, timeout=DRAIN_S):
        """The driver's exit status, once it exits (within TIMEOUT)."""
        if self.proc is not None:
            self.exit_status = self.proc.wait(timeout=timeout)
            return self.exit_status
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)  # we are its reaper
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
                return self.exit_status
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(MOUNT_CLOUDFS, timeout)
            time.sleep(0.01)

    def check_clean_exit(self, timeout=DRAIN_S):
        """The driver exits 0 within TIMEOUT, without a sanitizer report,
        and the mountpoint is no longer mounted."""
        try:
            rc = self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"mount.cloudfs did not exit within {timeout} s:\n"
                                 + self.log_text())
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in mount.cloudfs's log:\n{text}"
        assert rc == 0, f"mount.cloudfs exited {rc}:\n{text}"
        assert not mounted(self.mountpoint), f"{self.mountpoint} is still mounted"

    def unmount(self, command=("fusermount3", "-u")):
        """Unmounts with COMMAND + [MOUNTPOINT]; the driver must end cleanly."""
        p = subprocess.run([*command, self.mountpoint], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, f"{p.args} exited {p.returncode}: {p.stderr}"
        self.check_clean_exit()

    def kill9(self):
        """kill -9 of the driver; the dead mount is lazily unmounted."""
        os.kill(self.pid, signal.SIGKILL)
        self.wait_exit()
        subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
        assert not mounted(self.mountpoint)

    def cleanup(self):
        """The end of a test: a mount still up is unmounted and must end
        cleanly; whatever goes wrong, nothing is left mounted or running."""
        try:
            if self.running():
                self.unmount()
        finally:
            if self.running():
                try:
                    os.kill(self.pid, signal.SIGKILL)
                    self.wait_exit()
                except (ProcessLookupError, ChildProcessError):
                    pass
            if mounted(self.mountpoint):
                subprocess.run(["fusermount3", "-uz", self.mountpoint], capture_output=True)
