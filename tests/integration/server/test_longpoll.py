"""POST /meta/longpoll: at once when behind, woken by a commit, empty
after its timeout; waiting polls hold no server thread."""

import concurrent.futures
import threading
import time

from cfs_server import file_op, waiting_longpoll, woken


def timed_longpoll(client, cursors, timeout):
    t0 = time.monotonic()
    r = client.longpoll(cursors, timeout)
    assert r.status == 200, r
    return r.json, time.monotonic() - t0


def test_a_longpoll_answers_at_once_when_a_namespace_is_past_its_cursor(alice):
    alice.commit_ok(alice.root_ns, file_op("a"), file_op("b"))
    for cursor in (0, 1):
        answer, took = timed_longpoll(alice, {alice.root_ns: cursor}, 60)
        print(f"answered in {took * 1000:.1f} ms")
        assert answer == {"changes": [{"ns": alice.root_ns, "head": 2}], "gone": []}
        assert took < 1.0


def test_a_waiting_longpoll_wakes_within_a_second_of_a_commit(alice):
    alice.commit_ok(alice.root_ns, file_op("a"))
    with waiting_longpoll(alice, {alice.root_ns: 1}) as poll:
        alice.commit_ok(alice.root_ns, file_op("b"))
        t0 = time.monotonic()
        answer = woken(poll)
        print(f"woken {(time.monotonic() - t0) * 1000:.1f} ms after the commit's answer")
    assert answer == {"changes": [{"ns": alice.root_ns, "head": 2}], "gone": []}


def test_a_longpoll_answers_no_change_after_its_timeout(alice):
    alice.commit_ok(alice.root_ns, file_op("a"))
    answer, took = timed_longpoll(alice, {alice.root_ns: 1}, 1)
    print(f"answered after {took:.2f} s")
    assert answer == {"changes": [], "gone": []}
    assert 0.9 <= took < 5.0


def test_a_timeout_of_0_answers_at_once(alice):
    answer, took = timed_longpoll(alice, {alice.root_ns: 0}, 0)
    assert answer == {"changes": [], "gone": []}
    assert took < 1.0


def test_a_longpoll_lists_only_the_namespaces_that_moved(alice):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "S"}, file_op("S/f"))
    shared = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "S"}).json["ns"]
    cursors = {alice.root_ns: alice.head(alice.root_ns), shared: alice.head(shared)}
    with waiting_longpoll(alice, cursors) as poll:
        (res,) = alice.commit_ok(shared, file_op("g"))
        assert woken(poll) == {"changes": [{"ns": shared, "head": res["jid"]}], "gone": []}
    answer, _ = timed_longpoll(alice, {alice.root_ns: 0, shared: 0}, 0)
    assert sorted(c["ns"] for c in answer["changes"]) == sorted([alice.root_ns, shared])


def test_a_commit_that_changes_nothing_wakes_no_longpoll(alice):
    (res,) = alice.commit_ok(alice.root_ns, file_op("a", mtime_ns=5))
    with waiting_longpoll(alice, {alice.root_ns: 1}, timeout=1) as poll:
        alice.commit_ok(alice.root_ns, file_op("a", mtime_ns=5, base_jid=res["jid"]))
        assert poll.result(timeout=10).json == {"changes": [], "gone": []}


def test_fifty_waiting_longpolls_hold_no_thread_and_one_commit_wakes_them_all(alice):
    """cloudfsd serves with 8 worker threads: with 50 polls waiting, the
    health check and the commit are only answered if no poll holds one."""
    n = 50
    sent = threading.Barrier(n + 1)

    def poll(client):
        sent.wait()
        return client.longpoll({alice.root_ns: 0}, 20)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        polls = [pool.submit(poll, alice.clone()) for _ in range(n)]
        sent.wait()
        time.sleep(1.0)  # let every poll reach the server and park there
        assert not any(p.done() for p in polls)
        other = alice.clone()
        other.timeout = 5
        assert other.get("/").status == 200
        other.commit_ok(alice.root_ns, file_op("wake-up"))
        t0 = time.monotonic()
        answers = [p.result(timeout=30) for p in polls]
        slowest = time.monotonic() - t0
    print(f"all {n} polls answered within {slowest * 1000:.0f} ms of the commit")
    expected = {"changes": [{"ns": alice.root_ns, "head": 1}], "gone": []}
    wrong = [a for a in answers if a.status != 200 or a.json != expected]
    assert not wrong, f"{len(wrong)} of {n} polls answered {wrong[0]}"
    assert slowest < 5.0
