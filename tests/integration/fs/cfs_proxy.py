"""A man in the middle between mount.cloudfs and cloudfsd, to stop the
conversation at an exact point: a TCP proxy that reads the HTTP requests
going up (request line, headers, a Content-Length body) and can hold
those that match, or pass one and swallow its answer. Answers are relayed
as bytes, unparsed.

    proxy = Proxy(server.url)              # a mount of alice.clone(proxy.url)
    proxy.hold(r"POST /meta/ns/\\d+/commit") # commits stop here
    proxy.wait_held(1)                     # one is waiting
    proxy.release()                        # and goes on

Requests matching stall(...) reach the server at once, but their
answers wait until release(): what the request did has happened, and
the client does not know it yet.  Requests matching lose(...) reach the
server, but their answers never
reach the client (its connection stays open, silent). cut() ends every
connection, dropping what is held, and relays new ones faithfully: a
mount of the same cache directory (which belongs to the proxy's URL) can
then start again through it."""

import re
import socket
import threading
import time
import urllib.parse

import pytest


class Proxy:
    def __init__(self, upstream_url):
        u = urllib.parse.urlparse(upstream_url)
        self.upstream = (u.hostname, u.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Condition()
        self.hold_rx = None
        self.hold_after = 0
        self.lose_rx = None
        self.stall_rx = None
        self.stalled = 0       # answers waiting now
        self.held = 0          # requests waiting now
        self.passes = 0        # held requests let go by pass_held()
        self.seen = []         # request lines forwarded, in order
        self.lost = []         # request lines whose answers were swallowed
        self.socks = []
        self.closed = False
        self.epoch = 0         # of cut()
        threading.Thread(target=self._accept, daemon=True).start()

    # What the test controls.

    def hold(self, pattern, after=0):
        """From now on, requests whose "METHOD PATH" matches PATTERN wait,
        but for the first AFTER of them, which go on."""
        with self.lock:
            self.hold_rx = re.compile(pattern)
            self.hold_after = after

    def release(self):
        """Held requests go on, stalled answers too; nothing is held or
        stalled any more."""
        with self.lock:
            self.hold_rx = self.stall_rx = None
            self.lock.notify_all()

    def stall(self, pattern):
        """From now on, requests matching PATTERN are forwarded, but
        their answers wait until release()."""
        with self.lock:
            self.stall_rx = re.compile(pattern)

    def wait_stalled(self, n=1, within=30):
        """Waits until the answers of N requests are stalled: the server
        answered them."""
        with self.lock:
            self._wait(lambda: self.stalled >= n, within, f"{n} answers were not stalled")

    def pass_held(self, n=1):
        """N of the requests held now go on; the pattern holds the rest,
        and those to come."""
        with self.lock:
            self.passes += n
            self.lock.notify_all()

    def lose(self, pattern):
        """From now on, requests matching PATTERN (None: none) are
        forwarded, but their answers (and anything after them on that
        connection) are dropped."""
        with self.lock:
            self.lose_rx = re.compile(pattern) if pattern else None

    def wait_held(self, n=1, within=30):
        """Waits until N requests are held; returns the request lines seen."""
        with self.lock:
            self._wait(lambda: self.held >= n, within, f"{n} requests were not held")
            return list(self.seen)

    def wait_lost(self, n=1, within=30):
        """Waits until the answers of N requests were swallowed."""
        with self.lock:
            self._wait(lambda: len(self.lost) >= n, within, "no answer was lost")
            return list(self.lost)

    def _wait(self, done, within, failure):
        """Waits (self.lock held) until done() is true, at most WITHIN
        seconds; fails saying FAILURE and what was seen last."""
        deadline = time.monotonic() + within
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{failure} within {within} s; seen: {self.seen[-20:]}")
            self.lock.wait(left)

    def cut(self):
        """Ends every connection made so far, dropping the requests held on
        them (they never reach the server); nothing is held or lost from
        now on. New connections are relayed as before."""
        with self.lock:
            self.epoch += 1
            self.hold_rx = self.lose_rx = None
            socks, self.socks = self.socks, []
            self.lock.notify_all()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        """Closes the listener and every connection."""
        with self.lock:
            self.closed = True
            self.hold_rx = None
            self.lock.notify_all()
        for s in [self.listener, *self.socks]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    # The relay.

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = {"mute": False}
            with self.lock:
                self.socks += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream, conn), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, conn), daemon=True).start()

    def _up(self, client, upstream, conn):
        """Requests, one at a time, from the client to the server."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                line = " ".join(lines[0].split()[:2])
                length = 0
                for h in lines[1:]:
                    k, _, v = h.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                while len(buf) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                with self.lock:
                    epoch = self.epoch
                    if self.hold_rx and self.hold_rx.match(line) and self.hold_after:
                        self.hold_after -= 1
                    elif self.hold_rx and self.hold_rx.match(line):
                        self.held += 1
                        self.lock.notify_all()
                        while self.hold_rx and self.hold_rx.match(line) and not self.closed \
                                and self.epoch == epoch and not self.passes:
                            self.lock.wait()
                        if self.passes:
                            self.passes -= 1
                        self.held -= 1
                    if self.closed or self.epoch != epoch:
                        return
                    if self.lose_rx and self.lose_rx.match(line):
                        conn["mute"] = True
                        self.lost.append(line)
                    # One request at a time on a connection: what comes
                    # down from now on is this request's answer.
                    conn["stalled"] = bool(self.stall_rx and self.stall_rx.match(line))
                    self.seen.append(line)
                    self.lock.notify_all()
                upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _down(self, upstream, client, conn):
        """Answers, as bytes, from the server to the client."""
        try:
            while data := upstream.recv(65536):
                with self.lock:
                    if conn.get("stalled") and self.stall_rx:
                        self.stalled += 1
                        self.lock.notify_all()
                        while self.stall_rx and not self.closed:
                            self.lock.wait()
                        self.stalled -= 1
                    conn["stalled"] = False
                if not conn["mute"]:
                    client.sendall(data)
        except OSError:
            pass
        finally:
            if not conn["mute"]:
                try:
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass


@pytest.fixture
def proxy(server):
    """A Proxy to the test's server, closed at the end of the test (import
    it into a test module to use it)."""
    p = Proxy(server.url)
    yield p
    p.close()
