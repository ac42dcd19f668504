"""Concurrent commits: one winner per base JID, and journals without gaps."""

import concurrent.futures
import threading

from cfs_server import file_op


def in_parallel(*calls):
    """Runs the CALLS (functions of no argument) at the same moment, each
    in its own thread; returns their results in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(run, c) for c in calls]]


def test_two_commits_of_one_path_on_one_base_jid_have_exactly_one_winner(alice):
    ns = alice.root_ns
    devices = [alice.clone(), alice.clone()]
    base = 0
    for round in range(20):
        contents = [f"round {round} from device {d}".encode() for d in range(2)]
        for device, data in zip(devices, contents):
            assert device.upload(data).status == 200
        results = in_parallel(*(
            lambda device=device, data=data: device.commit(ns, file_op("race", data, base_jid=base))
            for device, data in zip(devices, contents)))
        assert [r.status for r in results] == [200, 200], (round, results)
        (a,), (b,) = (r.json["results"] for r in results)
        winner, loser = (a, b) if a["status"] == "committed" else (b, a)
        assert (winner["status"], loser["status"]) == ("committed", "conflict"), (a, b)
        assert loser["jid"] == winner["jid"] == base + 1
        won = contents[0 if winner is a else 1]
        assert alice.snapshot(ns)[0]["race"]["size"] == len(won)
        base = winner["jid"]
    assert alice.head(ns) == 20


def test_concurrent_commits_number_rows_without_gaps_and_a_cursor_never_skips_one(alice):
    ns = alice.root_ns
    writers, commits = 4, 25
    done = threading.Event()

    def write(w, client):
        jids = []
        for i in range(commits):
            ops = [file_op(f"w{w}-c{i}-{k}") for k in range(1 + i % 3)]
            jids += [r["jid"] for r in client.commit_ok(ns, *ops)]
        return jids

    def follow(client):
        """Lists from its cursor until the writers are done: every row
        must show up once, in JID order, after the cursor."""
        seen, cursor = [], 0
        while True:
            last_round = done.is_set()
            entries, new_cursor = client.list_all(ns, cursor)
            assert all(e["jid"] > cursor for e in entries)
            assert new_cursor >= cursor
            seen += [e["jid"] for e in entries]
            cursor = new_cursor
            if last_round:
                return seen, cursor

    with concurrent.futures.ThreadPoolExecutor(writers + 1) as pool:
        follower = pool.submit(follow, alice.clone())
        try:
            jids = [pool.submit(write, w, alice.clone()) for w in range(writers)]
            jids = [f.result(timeout=120) for f in jids]
        finally:
            done.set()
        seen, cursor = follower.result(timeout=120)

    head = alice.head(ns)
    rows = sum(len(j) for j in jids)
    assert head == rows == writers * sum(1 + i % 3 for i in range(commits))
    for mine in jids:
        assert mine == sorted(mine) and len(set(mine)) == len(mine)
    assert sorted(j for mine in jids for j in mine) == list(range(1, head + 1))
    assert [e["jid"] for e in alice.list_all(ns, 0)[0]] == list(range(1, head + 1))
    assert cursor == head
    assert sorted(seen) == list(range(1, head + 1))
