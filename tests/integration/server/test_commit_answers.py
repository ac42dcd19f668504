"""Every commit is answered with what became of it: its results, however
often its transaction collided with others (a collision is the store's to
wait out, server/meta_sql.c, sq_run), or, when the store itself fails, a
5xx whose message names the request and what failed."""

import os
import threading
import time

from cfs_server import assert_error, file_op

WRITERS = int(os.environ.get("CFS_COLLISION_WRITERS", "24"))


def test_many_writers_in_one_namespace_all_get_their_results(server, alice):
    """WRITERS clients commit into one namespace for 6 s, each with a
    server thread of its own, so that as many transactions run at once
    and take the namespace's next JID: on PostgreSQL most collide."""
    server.stop()
    server.start(options=["--threads", str(WRITERS)])
    alice = alice.clone(server.url)
    ns = alice.root_ns
    failures = []
    counts = [0] * WRITERS

    def writer(w):
        client = alice.clone()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not failures:
            r = client.commit(ns, file_op(f"w{w}-{counts[w] % 4}"))
            if r.status != 200 or "results" not in r.json:
                failures.append(f"writer {w}, commit {counts[w]}: {r}")
                return
            counts[w] += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert all(counts), counts


def test_a_commit_the_store_fails_is_a_500_that_names_the_request(server, alice):
    ns = alice.root_ns
    request = f"POST /meta/ns/{ns}/commit"
    server.store_sql("ALTER TABLE journal RENAME TO journal_gone")
    try:
        r = alice.commit(ns, file_op("a.txt"))
    finally:
        server.store_sql("ALTER TABLE journal_gone RENAME TO journal")
    assert_error(r, 500, "internal", request, "journal")
    assert any(request in line and "journal" in line and " error: " in line
               for line in server.log_text().splitlines()), server.log_text()
    alice.commit_ok(ns, file_op("a.txt"))
