"""Attacks with request bodies, by a user with a valid token: JSON that
takes fifty times its size to parse, and bodies that never finish.  The
server's memory stays within a stated bound above its idle level while
an honest user keeps working, and comes back down afterwards."""

import threading
import time

from conftest import MiB, Peak, connect, rss, waiting

# Above its idle level, the server may take this much during an attack:
# four large parses at a time (one a user) of at most 32 MiB of values
# each, more under AddressSanitizer, which pads every allocation (151 MiB
# measured there), plus the bodies in flight (a user's budget, 64 MiB).
# Before the limits, eight 8 MiB bodies took over 2 GiB.
RSS_BOUND = 256 * MiB
# ... and this much once the attack is over.
RSS_AFTER = 96 * MiB


def blowup(size):
    """A JSON object of SIZE bytes that is nearly all empty arrays."""
    head, tail = b'{"blocks":[', b"[]]}"
    n = (size - len(head) - len(tail)) // 3
    body = head + b"[]," * n + tail
    return body + b" " * (size - len(body))


def post_raw(server, user, path, body):
    """POSTs BODY, however big, and returns the status (None if cut)."""
    s = connect(server, timeout=60)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {user.token}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = s.recv(4096)
        return int(answer.split()[1]) if answer else None
    except OSError:
        return None
    finally:
        s.close()


def test_json_that_takes_fifty_times_its_size_to_parse_is_bounded(attacked):
    server, honest = attacked()
    attacker = server.user("attacker")
    honest.round()
    idle = rss(server)
    statuses = []
    stop = threading.Event()

    def attack(path, size):
        body = blowup(size)
        while not stop.is_set():
            statuses.append(post_raw(server, attacker, path, body))

    threads = [threading.Thread(target=attack, args=a, daemon=True) for a in
               [("/block/need", 1 * MiB)] * 4 +
               [(f"/meta/ns/{attacker.root_ns}/commit", 8 * MiB)] * 4]
    with Peak(server) as peak:
        for t in threads:
            t.start()
        honest.during(10)
        stop.set()
        for t in threads:
            t.join()
    honest.check()
    print(f"statuses: {sorted(set(statuses), key=str)}, {len(statuses)} requests; "
          f"idle {idle / MiB:.0f} MiB, peak {peak.peak / MiB:.0f} MiB")
    assert len(statuses) >= 8
    assert set(statuses) <= {400, 413, 503}, statuses
    assert peak.peak - idle < RSS_BOUND, f"peak {(peak.peak - idle) / MiB:.0f} MiB over idle"
    settled = until_below(server, idle + RSS_AFTER, within=15)
    assert settled, f"{(rss(server) - idle) / MiB:.0f} MiB over idle 15 s after"


def test_bodies_that_never_finish_hold_no_more_than_a_budget(attacked):
    server, honest = attacked()
    attacker = server.user("attacker")
    honest.round()
    idle = rss(server)
    socks, refused = [], 0
    with Peak(server) as peak:
        for _ in range(60):
            s = connect(server)
            s.sendall(f"POST /meta/ns/{attacker.root_ns}/commit HTTP/1.1\r\n"
                      f"Host: x\r\nAuthorization: Bearer {attacker.token}\r\n"
                      f"Content-Length: {8 * MiB}\r\n\r\n".encode())
            try:
                s.sendall(b" " * (6 * MiB))
            except OSError:
                pass
            socks.append(s)
        time.sleep(1)
        for s in socks:
            if not waiting(s):
                refused += 1
        honest.during(5)
    honest.check()
    print(f"{refused} of 60 unfinished bodies refused; idle {idle / MiB:.0f} MiB, "
          f"peak {peak.peak / MiB:.0f} MiB")
    assert refused >= 52  # 8 fit in the user's budget of 64 MiB
    assert peak.peak - idle < 128 * MiB
    for s in socks:
        s.close()


def until_below(server, limit, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if rss(server) < limit:
            return True
        time.sleep(0.5)
    return False
