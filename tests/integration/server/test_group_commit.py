"""Group commit: commits that arrive together share one transaction and
one fsync, and each is answered as if it had run alone in its place
(server/meta_sql_commit.c, invariants 1-4 of group commit)."""

import concurrent.futures
import random
import re
import threading
import time

from cfs_server import Client, file_op

CLIENTS = 16  # twice the server's default HTTP threads: commits queue


def metric(server, name):
    text = Client(server.url).get("/metrics").body.decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def random_request(rng, me, i, shared):
    """A commit of 1-3 operations: a new file of its own, and some of the
    SHARED paths created at base 0 with content of ME's (a distinct
    mode), which all but one client get refused as a conflict."""
    ops = [file_op(f"own-{me}-{i}", mode=0o600)]
    for _ in range(rng.randrange(3)):
        ops.append(file_op(rng.choice(shared), mode=0o400 | me, base_jid=0))
    rng.shuffle(ops)
    return ops


def test_concurrent_commits_with_conflicts_get_the_answers_the_journal_shows(server, alice,
                                                                            bob):
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    ns, rounds = alice.root_ns, 30
    shared = [f"shared-{k}" for k in range(40)]
    start = threading.Barrier(CLIENTS)

    def commit_all(me):
        rng = random.Random(seed * 100 + me)
        client = alice.clone()
        answers = []
        start.wait()
        for i in range(rounds):
            if me == 0 and i % 3 == 0:
                # Refused as a whole (bob's namespace): its neighbours in
                # a group must still commit.
                r = client.commit(bob.root_ns, file_op(f"not-yours-{i}"))
                assert r.status == 404, r
                continue
            ops = random_request(rng, me, i, shared)
            r = client.commit(ns, *ops)
            assert r.status == 200, r
            answers.append((ops, r.json))
        return answers

    groups_before = metric(server, "cloudfsd_grouped_commits_total")
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for f in [pool.submit(commit_all, me) for me in range(CLIENTS)]
                   for a in f.result(timeout=300)]

    entries, head = alice.list_all(ns, 0)
    by_jid = {e["jid"]: e for e in entries}
    # Every path below is written once, so the journal lists each row.
    assert sorted(by_jid) == list(range(1, head + 1)), "JIDs with gaps or repeats"
    committed = {}
    for ops, answer in answers:
        assert answer["head"] >= max([r.get("jid", 0) for r in answer["results"]]), answer
        for op, res in zip(ops, answer["results"], strict=True):
            if res["status"] == "committed":
                row = by_jid[res["jid"]]
                assert (row["path"], row["mode"]) == (op["path"], op["mode"]), (op, res, row)
                # Answered committed once per JID, but a request holding
                # the same shared path twice gets the same JID twice.
                assert committed.setdefault(res["jid"], op["path"]) == op["path"]
            else:
                assert res["status"] == "conflict", (op, res)
                # Refused because the path was created first by another:
                # the row it names holds that path with another's mode.
                row = by_jid[res["jid"]]
                assert row["path"] == op["path"] and row["mode"] != op["mode"], (op, res, row)
    assert set(committed) == set(by_jid), "a row no answer committed, or the reverse"
    own = [p for p in committed.values() if p.startswith("own-")]
    assert len(own) == len(set(own)) == sum(len([o for o in ops if o["path"].startswith("own-")])
                                            for ops, _ in answers)
    assert bob.head(bob.root_ns) == 0
    # The clients outnumber the server's threads, so commits waited while
    # others were written: some must have shared a transaction.
    assert metric(server, "cloudfsd_grouped_commits_total") > groups_before


def test_a_kill_9_while_groups_are_written_loses_no_acknowledged_commit(server, alice):
    ns = alice.root_ns
    acknowledged, stop = [], threading.Event()
    lock = threading.Lock()

    def commit_until_gone(me):
        client = alice.clone()
        for i in range(100000):
            op = file_op(f"c{me}-{i}", mode=0o600)
            try:
                r = client.commit(ns, op)
            except OSError:
                return
            if r.status != 200:
                return
            (res,) = r.json["results"]
            assert res["status"] == "committed", r
            with lock:
                acknowledged.append((op["path"], res["jid"]))
            if stop.is_set():
                return

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(commit_until_gone, me) for me in range(CLIENTS)]
        deadline = time.monotonic() + 60
        while metric(server, "cloudfsd_grouped_commits_total") < 50:
            assert time.monotonic() < deadline, "no group formed in 60 s"
            time.sleep(0.05)
        server.kill9()
        stop.set()
        for f in futures:
            f.result(timeout=120)
    server.start()
    assert acknowledged
    print(f"{len(acknowledged)} commits acknowledged before kill -9")
    entries, head = alice.clone(server.url).list_all(ns, 0)
    kept = {e["path"]: e["jid"] for e in entries}
    assert sorted(kept.values()) == list(range(1, head + 1))
    lost = [(p, j) for p, j in acknowledged if kept.get(p) != j]
    assert not lost, f"{len(lost)} acknowledged commits lost or moved, e.g. {lost[:5]}"
