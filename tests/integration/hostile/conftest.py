"""What every hostile-load test needs: a cloudfsd to attack, an honest
user who must keep being served while it is attacked, a sampler of the
server's memory, and attackers that speak raw sockets."""

import os
import socket
import threading
import time

import pytest

from cfs_server import Client, Server, block_id

# The server's allocator under AddressSanitizer keeps freed memory in a
# quarantine (256 MiB by default) before reusing it; a small one keeps the
# memory these tests bound close to what a release build uses.
os.environ["ASAN_OPTIONS"] = ":".join(
    filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))

HONEST_WITHIN = 5.0  # s: a commit and a read each, while under attack
MiB = 1 << 20


def rss(server):
    """The server's resident memory, in bytes."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for cloudfsd")


def open_sockets(server):
    """How many sockets the server holds open (its listener among them)."""
    fds = f"/proc/{server.proc.pid}/fd"
    n = 0
    for fd in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, fd)).startswith("socket:")
        except FileNotFoundError:
            pass  # closed meanwhile
    return n


class Peak:
    """Samples the server's RSS every 50 ms while in the with block."""

    def __init__(self, server):
        self.server = server
        self.peak = 0
        self.stop = threading.Event()

    def __enter__(self):
        def sample():
            while not self.stop.is_set():
                self.peak = max(self.peak, rss(self.server))
                time.sleep(0.05)
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class Honest:
    """A user doing real work: each round commits a new small file (the
    two-phase commit: need, upload, commit) and reads a block back, each
    within HONEST_WITHIN seconds, retrying a refused or cut connection as
    a mount does.  Rounds that failed are kept with why."""

    def __init__(self, server, name="honest"):
        self.client = server.user(name)
        self.rounds = 0
        self.failures = []
        self.slowest = 0.0

    def _within(self, what, fn):
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < HONEST_WITHIN:
            c = self.client.clone()
            c.timeout = HONEST_WITHIN
            try:
                r = fn(c)
                if r is True:
                    self.slowest = max(self.slowest, time.monotonic() - t0)
                    return True
                last = r
            except OSError as e:  # refused, reset, timed out: a mount retries
                last = e
            finally:
                c.close()
            time.sleep(0.05)
        self.failures.append(f"round {self.rounds}: {what} failed within "
                             f"{HONEST_WITHIN} s: {last!r}")
        return False

    def round(self):
        self.rounds += 1
        data = os.urandom(1000) + b"round %d" % self.rounds
        path = f"honest-{self.rounds}"

        def commit(c):
            c.write_file(c.root_ns, path, data)
            return True

        def read(c):
            r = c.download(block_id(data))
            return True if r.status == 200 and r.body == data else r
        if self._within(f"committing '{path}'", commit):
            self._within(f"reading '{path}'", read)

    def during(self, seconds):
        """Rounds, back to back, for SECONDS."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.round()
            time.sleep(0.1)

    def check(self):
        assert self.rounds > 0
        assert not self.failures, "\n".join(self.failures)
        print(f"honest client: {self.rounds} rounds, slowest step {self.slowest:.2f} s")


@pytest.fixture
def attacked(tmp_path):
    """attacked(*options) -> (server, honest): a cloudfsd started with
    serve OPTIONS, and an honest user; the server is stopped (and must exit
    cleanly, sanitizer-clean) after the test."""
    made = []

    def make(*options):
        s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start(options=options)
        made.append(s)
        return s, Honest(s)
    yield make
    for s in made:
        s.stop()


def connect(server, source="127.0.0.1", timeout=5):
    """A raw TCP connection to SERVER from loopback address SOURCE."""
    c = Client(server.url)
    s = socket.create_connection((c.host, c.port), timeout=timeout,
                                 source_address=(source, 0))
    return s


def waiting(sock):
    """Whether the server holds SOCK open without having answered on it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return False  # an answer, or the end of the connection
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
