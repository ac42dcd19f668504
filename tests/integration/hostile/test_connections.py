"""Attacks on cloudfsd's connections, none of which needs a token:
connections that trickle their headers (slowloris), bodies that stall,
long polls by the hundred and long polls abandoned.  While each runs, an
honest user must keep committing and reading within a few seconds."""

import socket
import threading
import time

from conftest import connect, open_sockets, waiting


class Slowloris:
    """COUNT connections from each of SOURCES (loopback addresses), each
    sending a request's headers one byte every PERIOD seconds, never
    finishing them; with REOPEN, a connection the server cuts is opened
    again at once, as an attacker would."""

    def __init__(self, server, sources, count, period=0.5, reopen=True):
        self.server = server
        self.sources = sources
        self.count = count
        self.period = period
        self.reopen = reopen
        self.socks = []
        self.opened = self.cut = self.refused = 0
        self.stop = threading.Event()

    def _open(self, source):
        try:
            s = connect(self.server, source, timeout=2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            self.opened += 1
            self.socks.append((source, s))
        except OSError:
            self.refused += 1

    def _run(self):
        for source in self.sources:
            for _ in range(self.count):
                self._open(source)
        while not self.stop.wait(self.period):
            for source, s in list(self.socks):
                try:
                    s.sendall(b"X")
                    if waiting(s):
                        continue
                except OSError:
                    pass
                self.socks.remove((source, s))
                s.close()
                self.cut += 1
                if self.reopen:
                    self._open(source)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        time.sleep(2)  # the first wave is in
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for _, s in self.socks:
            s.close()
        print(f"slowloris: {self.opened} opened, {self.cut} cut, {self.refused} refused")


def test_one_address_cannot_hold_more_than_its_share_of_connections(attacked):
    server, honest = attacked("--max-per-address", "32")
    with Slowloris(server, ["127.0.0.2"], 100, reopen=False) as attack:
        time.sleep(1)
        held = sum(waiting(s) for _, s in attack.socks)
        honest.during(5)
    assert held <= 32, held
    honest.check()


def test_trickling_connections_from_many_addresses_are_cut_to_make_room(attacked):
    """More trickling connections than the server takes: once three
    quarters of its slots are taken, a connection that has not sent its
    headers within a second is cut, and the honest client gets in."""
    server, honest = attacked("--max-connections", "100", "--max-per-address", "40")
    sources = [f"127.0.0.{i}" for i in range(2, 6)]  # 4 * 40 = 160 > 100
    with Slowloris(server, sources, 40) as attack:
        honest.during(10)
    assert attack.cut > 0
    honest.check()
    assert "sent no request in time" in server.log_text()


def test_an_idle_connection_is_closed_after_the_header_timeout(attacked):
    server, _ = attacked("--header-timeout", "2s")
    s = connect(server)
    s.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(1)
    assert waiting(s)
    deadline = time.monotonic() + 5
    while waiting(s) and time.monotonic() < deadline:
        s.sendall(b"X")  # bytes do not keep it alive
        time.sleep(0.2)
    assert not waiting(s), "the connection was still open 6 s after it opened"
    s.close()


def test_a_body_that_stalls_is_cut_after_the_body_timeout(attacked):
    server, honest = attacked("--body-timeout", "1s")
    s = connect(server)
    s.sendall(f"POST /block/need HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {honest.client.token}\r\n"
              f"Content-Length: 1000\r\n\r\n{{\"blocks\": [".encode())
    t0 = time.monotonic()
    while waiting(s) and time.monotonic() - t0 < 10:
        s.sendall(b" ")  # a byte now and then does not keep it alive
        time.sleep(0.2)
    assert time.monotonic() - t0 < 5, "a stalled body was not cut within 5 s"
    s.close()


def longpoll(server, user, timeout):
    """A long poll of USER's root namespace from its head, on a raw socket
    (a client library would retry what the server cuts)."""
    body = ('{"cursors": [{"ns": %d, "cursor": 0}], "timeout": %d}'
            % (user.root_ns, timeout)).encode()
    s = connect(server)
    s.sendall(b"POST /meta/longpoll HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer " + user.token.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return s


def test_a_user_can_keep_only_so_many_long_polls_waiting(attacked):
    server, honest = attacked("--user-longpolls", "8")
    attacker = server.user("attacker")
    socks = [longpoll(server, attacker, timeout=60) for _ in range(12)]
    time.sleep(1)
    still = [s for s in socks if waiting(s)]
    answered = [s.recv(4096) for s in socks if not waiting(s)]
    assert len(still) == 8, len(still)
    assert len(answered) == 4 and all(b" 503 " in a and b"long polls" in a
                                      for a in answered), answered
    # Another user's long poll still waits, and wakes on a commit.
    poller = honest.client.clone()
    got = {}
    t = threading.Thread(target=lambda: got.update(
        r=poller.longpoll({poller.root_ns: 0}, timeout=30)))
    t.start()
    time.sleep(0.5)
    honest.round()
    t.join(10)
    assert got["r"].status == 200 and got["r"].json["changes"], got
    honest.check()
    for s in socks:
        s.close()


def test_long_polls_whose_clients_hung_up_free_their_connections(attacked):
    server, honest = attacked()
    attacker = server.user("attacker")
    base = open_sockets(server)
    polls = [longpoll(server, attacker, timeout=120) for _ in range(50)]
    time.sleep(1)
    assert all(waiting(s) for s in polls)
    assert open_sockets(server) >= base + 50
    for s in polls:
        s.shutdown(socket.SHUT_RDWR)  # gone, without a word
    deadline = time.monotonic() + 3
    while open_sockets(server) > base and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_sockets(server) <= base, (
        f"{open_sockets(server) - base} connections still open 3 s after their "
        f"long polls' clients hung up")
    honest.round()
    honest.check()
    for s in polls:
        s.close()
