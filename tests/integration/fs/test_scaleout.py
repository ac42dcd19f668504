"""Two cloudfsd behind one address, as a scale-out deployment runs them:
both on one PostgreSQL database (a throwaway cluster, cfs_postgres) and
one bucket prefix (the session's s3rver), with haproxy on loopback
balancing round robin over them, no stickiness, health-checked on GET /.
Mounts are made as users make them (daemonized, default options):
through the balancer, and directly on each instance.

What it shows: a change committed through one instance reaches the mount
of the other within the second a mount promises (NOTIFY wakes the other
instance's long polls; without it they would wait for their recheck);
writers committing through both instances at once leave each namespace a
journal with no gap and no duplicate JID and every file whole; and a
SIGKILL of one instance while writers commit through the balancer loses
nothing that was acknowledged, the mounts carrying on through the other.

The change latency is printed (pytest -s), never asserted: speed is
measured by bench/run."""

import concurrent.futures
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

import cfs_postgres
from cfs_fs import at, block_ids, cloudfs, payload, read, server_listing, until
from cfs_server import Client, Server, block_id, need

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

CHANGES = 20
WRITERS = 8
COMMITS = 10


def missing():
    """Why the deployment cannot be started here, or None."""
    if not os.path.exists(os.path.join(cfs_postgres.PG_BIN, "initdb")):
        return f"no initdb in {cfs_postgres.PG_BIN} (Debian's postgresql; tools/install-deps)"
    if not os.access(HAPROXY, os.X_OK):
        return "haproxy is not installed (Debian's haproxy; tools/install-deps)"
    return None


def free_port():
    """A TCP port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Balancer:
    """haproxy -db on 127.0.0.1 and a free port, round robin over
    BACKENDS (host:port), checking each with GET / every 200 ms. Its
    timeouts outlast a long poll (300 s at most); a request that cannot
    connect to one instance is sent to the other. Its log (one line per
    request, httplog) goes to LOG_PATH."""

    def __init__(self, directory, backends):
        self.directory = str(directory)
        self.backends = backends
        self.port = free_port()
        self.log_path = os.path.join(self.directory, "haproxy.log")
        self.socket = os.path.join(self.directory, "haproxy.sock")
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def config(self):
        servers = "".join(
            f"    server i{i} {b} check inter 200ms fall 1 rise 2\n"
            for i, b in enumerate(self.backends))
        return f"""global
    log stdout format raw local0
    maxconn 2000
    stats socket {self.socket}

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 330s
    timeout server 330s
    timeout http-request 30s
    retries 3
    option redispatch 1

frontend cloudfs
    bind 127.0.0.1:{self.port}
    default_backend cloudfsd

backend cloudfsd
    balance roundrobin
    option httpchk GET /
{servers}"""

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        cfg = os.path.join(self.directory, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(self.config())
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited {self.proc.returncode}:\n"
                                     + self.log_text())
            try:
                if Client(self.url, timeout=2).get("/").status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("haproxy did not answer:\n" + self.log_text())
            time.sleep(0.05)

    def stats(self):
        """haproxy's counters (show stat) by proxy/server name, e.g.
        stats()["cloudfsd/i0"]["srv_abrt"]."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            s.sendall(b"show stat\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        header, *rows = out.decode().lstrip("# ").splitlines()
        names = header.split(",")
        return {f"{r[0]}/{r[1]}": dict(zip(names, r))
                for r in (row.split(",") for row in rows if row)}

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def deployment(tmp_path, s3):
    """Instances a and b of cloudfsd on one new database and one bucket
    prefix (b with --gc-every 0: one instance collects garbage), and the
    balancer in front of them: .a, .b, .balancer, .database."""
    need(missing())
    pg = cfs_postgres.cluster()
    database = pg.new_database()
    blocks = s3.blocks_options("scaleout-" + os.urandom(8).hex())
    instances = []
    try:
        for name, options in (("a", []), ("b", ["--gc-every", "0"])):
            s = Server(tmp_path / f"data-{name}", tmp_path / f"cloudfsd-{name}.log",
                       meta=pg.url(database), blocks=blocks, env=s3.credentials_env())
            s.database = database
            instances.append(s.start(options=options))
        balancer = Balancer(tmp_path / "haproxy",
                            [s.url.removeprefix("http://") for s in instances]).start()
        try:
            yield SimpleNamespace(a=instances[0], b=instances[1], balancer=balancer,
                                  database=database)
        finally:
            balancer.stop()
    finally:
        for s in instances:
            s.stop()  # a killed instance is left alone


def via(client, url):
    """CLIENT's user, talking to URL (an instance or the balancer)."""
    return client.clone(url)


def journal(deployment, ns):
    """The JIDs of namespace NS's journal, as the database holds them."""
    rows = cfs_postgres.cluster().sql(
        deployment.database, f"SELECT jid FROM journal WHERE ns = {ns} ORDER BY jid")
    return [int(r[0]) for r in rows]


def test_a_change_through_one_instance_shows_on_a_mount_of_the_other_within_a_second(
        deployment, mount):
    alice = deployment.a.user("alice")
    on_a = mount(alice)
    on_b = mount(via(alice, deployment.b.url))
    balanced = mount(via(alice, deployment.balancer.url))
    delays = []
    for i in range(CHANGES):
        # Both ways: A's commits woken on B, B's on A.
        writer, other = (on_a, on_b) if i % 2 == 0 else (on_b, on_a)
        data = payload(100 + i, f"change {i}")
        with open(at(writer, f"c{i}"), "wb") as f:
            f.write(data)
        delays.append(until(lambda: read(at(other, f"c{i}")) == data,
                            what=f"change {i} on the other instance's mount"))
        until(lambda: read(at(balanced, f"c{i}")) == data,
              what=f"change {i} on the balanced mount")
    # And what is written through the balancer shows on both instances.
    with open(at(balanced, "through"), "wb") as f:
        f.write(b"through the balancer")
    for m in (on_a, on_b):
        until(lambda: read(at(m, "through")) == b"through the balancer",
              what="the balanced mount's change on a direct mount")
    print(f"change latency from one instance's mount to the other's over {CHANGES} "
          f"changes: p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"max {max(delays) * 1000:.0f} ms")
    assert journal(deployment, alice.root_ns) == list(range(1, CHANGES + 2))


def test_eight_writers_through_both_instances_leave_each_journal_without_gap_or_duplicate(
        deployment, mount):
    d = deployment
    users = [d.a.user("alice"), d.a.user("bob")]
    # Writer i is users[i % 2] on instance (a, b)[i // 2 % 2]: each
    # namespace has two writers on each instance.
    clients = [via(users[i % 2], (d.a, d.b)[i // 2 % 2].url) for i in range(WRITERS)]
    files = {u.root_ns: {} for u in users}
    for i in range(WRITERS):
        for k in range(COMMITS):
            files[clients[i].root_ns][f"w{i}/f{k}"] = payload(3000 + 7 * k + i, f"{i}-{k}")
    done = threading.Event()
    seen = {u.root_ns: set() for u in users}

    def write(i):
        c, ns = clients[i], clients[i].root_ns
        c.commit_ok(ns, {"op": "dir", "path": f"w{i}"})
        jids = []
        for k in range(COMMITS):
            path = f"w{i}/f{k}"
            jids.append(c.write_file(ns, path, files[ns][path])["jid"])
        return ns, jids

    def follow(user):
        # Through the balancer, page by page: a cursor that skipped a row
        # (one instance's commit not yet visible below another's JID)
        # would never see that path.
        reader, cursor = via(user, d.balancer.url), 0
        while True:
            finished = done.is_set()
            entries, cursor = reader.list_all(user.root_ns, cursor, limit=7)
            seen[user.root_ns].update(e["path"] for e in entries)
            if finished:
                return cursor

    with concurrent.futures.ThreadPoolExecutor(WRITERS + len(users)) as pool:
        followers = [pool.submit(follow, u) for u in users]
        try:
            writers = [pool.submit(write, i) for i in range(WRITERS)]
            results = [f.result() for f in writers]
        finally:
            done.set()
        cursors = [f.result() for f in followers]

    per_writer = COMMITS + 1  # its folder, then its files
    total = WRITERS // len(users) * per_writer
    for u, cursor in zip(users, cursors):
        ns = u.root_ns
        jids = sorted(j for n, js in results if n == ns for j in js)
        assert len(jids) == len(set(jids)), f"duplicate JIDs answered in namespace {ns}"
        assert journal(d, ns) == list(range(1, total + 1))
        assert cursor == total == u.head(ns)
        assert seen[ns] == set(files[ns]) | {p.rsplit("/", 1)[0] for p in files[ns]}
        # Every file on the server, listed through the balancer, whole.
        listing = server_listing(via(u, d.balancer.url), ns)
        for path, data in files[ns].items():
            assert listing[path]["size"] == len(data), path
            assert listing[path]["blocks"] == block_ids(data), path
    # The bytes, read back through a mount of the balancer (each fetch
    # goes to either instance, each reads the bucket).
    balanced = mount(via(users[0], d.balancer.url))
    for path, data in files[users[0].root_ns].items():
        until(lambda: read(at(balanced, path)) == data, within=10, what=path)
    bob = via(users[1], d.balancer.url)
    for path, data in files[users[1].root_ns].items():
        r = bob.download(block_id(data))
        assert r.status == 200 and r.body == data, (path, r)


def commit_retrying(client, ns, path, data, deadline):
    """CLIENT's two-phase commit of DATA at PATH, retried as a client
    retries when the balancer cuts a request (an instance died under it:
    502, or the connection closes). Returns the committed JID."""
    while True:
        try:
            return client.write_file(ns, path, data)["jid"]
        except (AssertionError, OSError, http.client.HTTPException, KeyError, ValueError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_killing_an_instance_while_writers_commit_through_the_balancer_loses_nothing_acknowledged(
        deployment, mount):
    d = deployment
    alice = d.a.user("alice")
    ns = alice.root_ns
    balanced_client = via(alice, d.balancer.url)
    balanced = mount(balanced_client)
    on_b = mount(via(alice, d.b.url))
    acknowledged = {}  # path -> bytes: closed on the mount, or committed by the API
    lock = threading.Lock()
    stop = threading.Event()
    killed = threading.Event()
    after_kill = {"mount": 0, "api": 0}

    def ack(path, data, kind):
        with lock:
            acknowledged[path] = data
            if killed.is_set():
                after_kill[kind] += 1

    def mount_writer(w):
        os.mkdir(at(balanced, f"m{w}"))
        k = 0
        while not stop.is_set():
            path, data = f"m{w}/f{k}", payload(2000 + k, f"m{w}-{k}")
            with open(at(balanced, path), "wb") as f:
                f.write(data)
            ack(path, data, "mount")  # closed without error
            k += 1
            time.sleep(0.02)

    def api_writer(w):
        c = balanced_client.clone()
        k = 0
        while not stop.is_set():
            path, data = f"api{w}-{k}", payload(1000 + k, f"api{w}-{k}")
            commit_retrying(c, ns, path, data, time.monotonic() + 30)
            ack(path, data, "api")  # answered committed
            k += 1

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        writers = [pool.submit(mount_writer, w) for w in range(4)] + \
                  [pool.submit(api_writer, w) for w in range(4)]
        try:
            until(lambda: alice.head(ns) >= 30, within=30, what="the writers' first commits")
            # Frozen first, so that requests are caught inside instance a
            # (a commit's transaction open, a block half received) when
            # it dies; the balancer meanwhile finds it down.
            os.kill(d.a.proc.pid, signal.SIGSTOP)
            time.sleep(0.5)
            d.a.kill9()
            killed.set()
            with lock:
                at_kill = len(acknowledged)
            # The writers carry on through the other instance.
            until(lambda: min(after_kill.values()) >= 10, within=30,
                  what="commits through the balancer after the kill")
        finally:
            stop.set()
            for f in writers:
                f.result()
    print(f"{at_kill} writes acknowledged when instance a was killed, "
          f"{len(acknowledged)} in all")
    # The requests that were inside instance a when it died: the balancer
    # counts them as response errors (the clients retried them, through
    # b, as a client retries a request whose keep-alive connection closed).
    a = d.balancer.stats()["cloudfsd/i0"]
    print(f"requests to instance a: {a['stot']}, cut by the kill: {a['eresp']}")
    assert int(a["eresp"]) > 0, "no request was inside instance a when it was killed"

    cloudfs("status", "--wait", "--timeout", "30", balanced.mountpoint)
    on_b_client = via(alice, d.b.url)
    listing = server_listing(on_b_client, ns)
    lost = [p for p, data in acknowledged.items()
            if listing.get(p, {}).get("blocks") != block_ids(data)
            or listing[p]["size"] != len(data)]
    assert not lost, f"acknowledged writes not on the server: {sorted(lost)}"
    # The killed instance's transactions rolled back whole: no gap.
    head = on_b_client.head(ns)
    assert journal(d, ns) == list(range(1, head + 1))
    # And the bytes are in the bucket: read through the survivor's mount.
    for path, data in acknowledged.items():
        until(lambda: read(at(on_b, path)) == data, within=10, what=path)
    # The balanced mount's long poll carries on too (through b).
    on_b_client.write_file(ns, "last", b"after the kill")
    until(lambda: read(at(balanced, "last")) == b"after the kill",
          what="a change through b on the balanced mount")
