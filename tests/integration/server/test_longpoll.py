"""POST /meta/longpoll: at once when behind, woken by a commit, empty
after its timeout; waiting polls hold no server thread."""

import concurrent.futures
import threading
import time

from cfs_server import assert_error, file_op, run_cli, waiting_longpoll, woken

# The server asks its store about a waiting poll's token this often
# (server/api_longpoll.c, RECHECK_MS): a revocation by another process
# is noticed within it.
RECHECK_S = 5.0


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


def revoke(server, token):
    """`cloudfsd revoke`, by a process of its own, as an administrator runs it."""
    run_cli("revoke", *server.store_args(), token)


def test_a_token_revoked_by_another_process_ends_its_waiting_longpoll_with_401(
        server, alice):
    other_device = alice.clone()
    other_device.token = run_cli("token", *server.store_args(), "alice").stdout.strip()
    with waiting_longpoll(alice, {alice.root_ns: 0}, timeout=60) as revoked, \
            waiting_longpoll(other_device, {alice.root_ns: 0}, timeout=60) as live:
        revoke(server, alice.token)
        t0 = time.monotonic()
        r = revoked.result(timeout=60)
        waited = time.monotonic() - t0
        print(f"the revoked token's poll ended {waited:.2f} s after the revocation")
        assert_error(r, 401, "unauthorized", "revoked")
        assert waited < RECHECK_S + 3
        # The user's other token was not revoked: its poll goes on.
        assert not live.done(), live.result()
        other_device.commit_ok(alice.root_ns, file_op("a"))
        assert woken(live) == {"changes": [{"ns": alice.root_ns, "head": 1}], "gone": []}
    assert_error(alice.get("/meta/namespaces"), 401, "unauthorized")


def test_a_commit_wakes_a_revoked_tokens_longpoll_with_401_at_once(server, alice):
    other_device = alice.clone()
    other_device.token = run_cli("token", *server.store_args(), "alice").stdout.strip()
    with waiting_longpoll(alice, {alice.root_ns: 0}, timeout=60) as poll:
        revoke(server, alice.token)
        other_device.commit_ok(alice.root_ns, file_op("a"))
        t0 = time.monotonic()
        r = poll.result(timeout=60)
        waited = time.monotonic() - t0
    assert_error(r, 401, "unauthorized", "revoked")
    assert waited < 1.0, f"answered {waited:.2f} s after the commit"


def test_a_longpoll_longer_than_the_recheck_answers_at_its_timeout_and_still_wakes(alice):
    timeout = int(RECHECK_S) + 2
    answer, took = timed_longpoll(alice, {alice.root_ns: 0}, timeout)
    print(f"answered after {took:.2f} s")
    assert answer == {"changes": [], "gone": []}
    assert timeout - 0.1 <= took < timeout + 3
    with waiting_longpoll(alice, {alice.root_ns: 0}, timeout=60) as poll:
        time.sleep(RECHECK_S + 1)  # past the first recheck: parked anew
        assert not poll.done(), poll.result()
        alice.commit_ok(alice.root_ns, file_op("a"))
        assert woken(poll) == {"changes": [{"ns": alice.root_ns, "head": 1}], "gone": []}
