"""Stopping cloudfsd with SIGTERM while clients keep it busy: it exits 0
every time, ends its parked long polls, and libmicrohttpd never aborts it
("Fatal error in GNU libmicrohttpd daemon.c:5531": quiescing the daemon
raced its epoll workers for the listen socket, server/cmd_serve.c).  That
race is a window of a few instructions, so rounds here seldom land in it;
what they hold is that a busy stop is clean.  When the stop lands is
random (the seed is printed); CFS_STOP_ROUNDS=N sets how many rounds."""

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

from cfs_server import block_id, file_op

ROUNDS = int(os.environ.get("CFS_STOP_ROUNDS", "12"))

# Connects, asks for the health check and hangs up, in a loop, in a
# process of its own (no GIL to share): each accept and each hang-up
# wakes a worker of the server.
KNOCKER = r"""
import socket, sys
while True:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    except OSError:
        pass
"""


def hammer(port, token, ns, w, stop):
    """The server's routes, each on a new connection, until STOP."""
    bid = block_id(b"hammer %d" % w)
    requests = [
        ("GET", f"/block/{bid}/more", None),
        ("POST", "/block/need", {"blocks": [bid]}),
        ("POST", f"/meta/ns/{ns}/commit", {"ops": [file_op(f"h{w}")]}),
        ("GET", f"/meta/ns/{ns}/list?cursor=0", None),
    ]
    n = 0
    while not stop.is_set():
        method, path, body = requests[n % len(requests)]
        n += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, json.dumps(body) if body else None,
                         {"Authorization": f"Bearer {token}"})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the server is going: refused or cut, as it may
        finally:
            conn.close()


def test_a_busy_server_stops_cleanly_every_time(server, alice, bob):
    seed = random.randrange(1 << 30)
    print(f"stop seed {seed}")
    rnd = random.Random(seed)
    server.stop()
    for r in range(ROUNDS):
        # Many workers: each connection wakes them all (they share the
        # listen socket), and each may be the one that races the stop.
        server.start(options=["--threads", "64"])
        port = int(server.url.rsplit(":", 1)[1])
        before = len(server.log_text())
        stop = threading.Event()
        answers = []

        def poll():
            try:
                answers.append(bob.clone(server.url).longpoll({bob.root_ns: 1}, 60).status)
            except (OSError, http.client.HTTPException) as e:
                answers.append(repr(e))

        threads = [threading.Thread(target=hammer,
                                    args=(port, alice.token, alice.root_ns, w, stop))
                   for w in range(4)]
        threads += [threading.Thread(target=poll) for _ in range(4)]
        knockers = [subprocess.Popen([sys.executable, "-c", KNOCKER, str(port)])
                    for _ in range(2)]
        try:
            for t in threads:
                t.start()
            time.sleep(0.2 + rnd.random() * 0.3)
            t0 = time.monotonic()
            server.stop()
        finally:
            stop.set()
            for k in knockers:
                k.kill()
                k.wait()
            for t in threads:
                t.join()
        log = server.log_text()[before:]
        assert "Fatal error" not in log, f"seed {seed}, round {r}:\n{log}"
        # Parked polls end with the server, not at their timeout.
        assert len(answers) == 4 and time.monotonic() - t0 < 20, (seed, r, answers)
