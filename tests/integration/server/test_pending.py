"""Streaming sync: a commit answered need_blocks leaves a pending block
list that members of the namespace, and only they, see and fetch as its
blocks land (cloudfs-protocol(7), "Pending block lists")."""

import concurrent.futures
import os
import sqlite3
import time

import pytest

from cfs_server import (BLOCK_SIZE, assert_error, block_id, file_op, split_blocks,
                        waiting_longpoll, woken)

# Three blocks, the last one short.
BIG = os.urandom(2 * BLOCK_SIZE + 1000)
SECRET = b"alice's secret bytes" * 500


def share_with(owner, member, folder="S"):
    """OWNER's folder FOLDER, shared with MEMBER: its namespace."""
    owner.commit_ok(owner.root_ns, {"op": "dir", "path": folder})
    ns = owner.post(f"/meta/ns/{owner.root_ns}/share", {"path": folder}).json["ns"]
    assert owner.post(f"/meta/ns/{ns}/invite", {"user": member.name}).status == 200
    return ns


def pending_poll(client, cursors, after=0, timeout=0):
    """A long poll that asks for pending lists from cursor AFTER."""
    body = {"cursors": [{"ns": ns, "cursor": c} for ns, c in cursors.items()],
            "timeout": timeout, "pending": after}
    r = client.post("/meta/longpoll", body, timeout=timeout + 30)
    assert r.status == 200, r
    return r.json


def landed(answer):
    """The block ids of the pending lists of a long poll's answer."""
    return [b["id"] for lst in answer["pending"] for b in lst["blocks"]]


def announce(client, ns, path, data):
    """Commits DATA at PATH without its blocks: answered need_blocks."""
    r = client.commit(ns, file_op(path, data))
    res = r.json["results"][0]
    assert res["status"] == "need_blocks", r
    return res["blocks"]


def test_a_member_is_woken_by_each_landing_block_and_may_fetch_only_those(
        alice, carol):
    ns = share_with(alice, carol)
    head = carol.head(ns)
    blocks = split_blocks(BIG)
    assert announce(alice, ns, "big.bin", BIG) == [block_id(b) for b in blocks]
    # Nothing landed: nothing to show, and no block to fetch.
    first = pending_poll(carol, {ns: head})
    assert first["pending"] == []
    assert_error(carol.download(block_id(blocks[0])), 404, "not_found")
    with waiting_longpoll(carol, {ns: head}) as poll:
        # waiting_longpoll's own poll asks no pending: it must stay parked
        # through a landing, as old clients' polls do.
        assert alice.upload(blocks[0]).status == 200
        time.sleep(0.3)
        assert not poll.done(), poll.result()
        assert alice.upload(blocks[1]).status == 200
        alice.commit_ok(ns, {"op": "dir", "path": "D"})
        assert woken(poll)["changes"][0]["ns"] == ns
    answer = pending_poll(carol, {ns: head}, after=first["pending_cursor"])
    assert answer["pending"] == [{
        "list": answer["pending"][0]["list"], "ns": ns, "path": "big.bin",
        "expires": answer["pending"][0]["expires"],
        "blocks": [{"id": block_id(b), "size": len(b)} for b in blocks[:2]]}]
    assert carol.download(block_id(blocks[0])).body == blocks[0]
    assert carol.download(block_id(blocks[1])).body == blocks[1]
    assert_error(carol.download(block_id(blocks[2])), 404, "not_found")
    # From the cursor it gave, a poll waits for the next landing.
    head = carol.head(ns)
    cursor = answer["pending_cursor"]
    body = {"cursors": [{"ns": ns, "cursor": head}], "timeout": 10, "pending": cursor}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = pool.submit(carol.clone().post, "/meta/longpoll", body, timeout=40)
        time.sleep(0.3)
        assert not poll.done(), poll.result()
        assert alice.upload(blocks[2]).status == 200
        r = poll.result(timeout=30)
    assert r.status == 200, r
    assert landed(r.json) == [block_id(blocks[2])]
    assert r.json["changes"] == []
    # The file commits: the list is gone, the blocks are the file's.
    alice.commit_ok(ns, file_op("big.bin", BIG))
    assert pending_poll(carol, {ns: carol.head(ns)}, after=0)["pending"] == []
    assert carol.download(block_id(blocks[2])).body == blocks[2]


def test_a_non_member_never_sees_a_pending_list_or_its_blocks(alice, bob, carol):
    ns = share_with(alice, carol)
    blocks = split_blocks(BIG)
    announce(alice, ns, "big.bin", BIG)
    bob_head = bob.head(bob.root_ns)
    with waiting_longpoll(bob, {bob.root_ns: bob_head}, timeout=3):
        for b in blocks:
            assert alice.upload(b).status == 200
    assert pending_poll(bob, {bob.root_ns: bob_head})["pending"] == []
    r = bob.post("/meta/longpoll", {"cursors": [{"ns": ns, "cursor": 0}],
                                     "timeout": 0, "pending": 0})
    assert_error(r, 404, "not_found")
    nowhere = block_id(b"bytes nobody ever uploaded")
    for b in blocks:
        foreign = bob.download(block_id(b))
        assert_error(foreign, 404, "not_found")
        assert foreign.json["error"]["message"].replace(block_id(b), "ID") == \
            bob.download(nowhere).json["error"]["message"].replace(nowhere, "ID")
    # The member meanwhile sees all of them.
    assert landed(pending_poll(carol, {ns: carol.head(ns)})) == \
        [block_id(b) for b in blocks]


def test_listing_a_hash_in_a_commit_never_shows_its_block(alice, bob, carol):
    """Dropship through streaming: bob lists the id of alice's block in a
    commit to a folder he shares with carol; the server holds the bytes,
    but bob never sent them, so neither of them can fetch them."""
    alice.write_file(alice.root_ns, "secret.txt", SECRET)
    ns = share_with(bob, carol)
    assert announce(bob, ns, "stolen.txt", SECRET) == [block_id(SECRET)]
    assert pending_poll(carol, {ns: carol.head(ns)})["pending"] == []
    assert pending_poll(bob, {ns: bob.head(ns)})["pending"] == []
    assert_error(carol.download(block_id(SECRET)), 404, "not_found")
    assert_error(bob.download(block_id(SECRET)), 404, "not_found")


def test_an_expired_pending_list_leaves_nothing_behind(server):
    # Expiry counts in whole seconds from the last landing: a 1 s list
    # may live only a few milliseconds, less than a loaded machine needs
    # between an upload to S3 and the next poll.
    server.stop()
    server.start(options=["--pending-ttl", "5s"])
    alice, carol = server.user("alice"), server.user("carol")
    ns = share_with(alice, carol)
    blocks = split_blocks(BIG)
    announce(alice, ns, "big.bin", BIG)
    assert alice.upload(blocks[0]).status == 200
    assert landed(pending_poll(carol, {ns: carol.head(ns)})) == [block_id(blocks[0])]
    assert carol.download(block_id(blocks[0])).body == blocks[0]
    deadline = time.monotonic() + 30
    while pending_poll(carol, {ns: carol.head(ns)})["pending"]:
        assert time.monotonic() < deadline, "the pending list never expired"
        time.sleep(0.2)
    assert_error(carol.download(block_id(blocks[0])), 404, "not_found")
    # A block landing after the expiry does not bring it back.
    assert alice.upload(blocks[1]).status == 200
    assert pending_poll(carol, {ns: carol.head(ns)})["pending"] == []
    assert_error(carol.download(block_id(blocks[1])), 404, "not_found")
    # The uploader's own blocks stay hers, as any upload not committed
    # yet; garbage collection drops what expired.
    assert alice.download(block_id(blocks[0])).body == blocks[0]
    server.stop()
    server.cli("gc")
    if server.database is None:
        db = sqlite3.connect(os.path.join(server.data_dir, "meta.db"))
        try:
            assert db.execute("SELECT count(*) FROM pending").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM pending_blocks").fetchone() == (0,)
        finally:
            db.close()


def test_a_pending_cursor_that_is_not_a_number_is_refused(alice):
    r = alice.post("/meta/longpoll", {"cursors": [{"ns": alice.root_ns, "cursor": 0}],
                                      "timeout": 0, "pending": -1})
    assert_error(r, 400, "bad_field", "pending")


@pytest.mark.parametrize("after", [0, 10 ** 12])
def test_a_poll_without_pending_lists_answers_as_before(alice, after):
    answer = pending_poll(alice, {alice.root_ns: 0}, after=after)
    assert answer["pending"] == [] and answer["pending_cursor"] >= 0
    assert "pending" not in alice.longpoll({alice.root_ns: 0}, timeout=0).json


def test_an_announcement_publishes_the_list_and_applies_nothing(alice, carol):
    ns = share_with(alice, carol)
    blocks = split_blocks(BIG)
    head = alice.head(ns)
    # Its folder does not exist yet: the batch that makes it comes later.
    op = file_op("new/big.bin", BIG)
    r = alice.post(f"/meta/ns/{ns}/announce", {"ops": [op]})
    assert r.json["results"] == [{"status": "need_blocks",
                                  "blocks": [block_id(b) for b in blocks]}]
    assert alice.upload(blocks[0]).status == 200
    assert landed(pending_poll(carol, {ns: carol.head(ns)})) == [block_id(blocks[0])]
    for b in blocks[1:]:
        assert alice.upload(b).status == 200
    # All there now: still nothing applied, and nothing left to upload.
    r = alice.post(f"/meta/ns/{ns}/announce", {"ops": [op]})
    assert r.json["results"] == [{"status": "need_blocks", "blocks": []}]
    assert alice.head(ns) == head
    assert "new/big.bin" not in alice.snapshot(ns)[0]
    alice.commit_ok(ns, {"op": "dir", "path": "new"}, file_op("new/big.bin", BIG))
    assert pending_poll(carol, {ns: carol.head(ns)})["pending"] == []


@pytest.mark.parametrize("op", [{"op": "dir", "path": "d"},
                                {"op": "delete", "path": "x"}])
def test_an_announcement_takes_file_operations_only(alice, op):
    r = alice.post(f"/meta/ns/{alice.root_ns}/announce", {"ops": [op]})
    assert_error(r, 400, "bad_field", "op 0", "file")


def test_a_landing_of_more_blocks_than_one_answer_holds_does_not_stall_the_poll(
        alice, carol):
    # One block that a file lists more times than an answer holds (a disk
    # image full of one pattern): its landing is one step of the pending
    # cursor.  Polling on from the cursor each answer gives must get past
    # it, not be answered the same page at once, forever.
    ns = share_with(alice, carol)
    head = carol.head(ns)
    block = os.urandom(BLOCK_SIZE)
    n = 1100  # > CFS_PENDING_MAX_BLOCKS, 1024
    op = {"op": "file", "path": "image.bin", "size": n * BLOCK_SIZE,
          "blocks": [block_id(block)] * n}
    r = alice.commit(ns, op)
    assert r.json["results"][0]["status"] == "need_blocks", r
    cursor = pending_poll(carol, {ns: head})["pending_cursor"]
    assert alice.upload(block).status == 200
    pages = []
    for _ in range(5):
        answer = pending_poll(carol, {ns: head}, after=cursor, timeout=1)
        pages.append((answer["pending_cursor"], len(landed(answer))))
        if not answer["pending"]:
            break
        assert answer["pending_cursor"] > cursor, pages
        cursor = answer["pending_cursor"]
    assert pages[-1][1] == 0, f"the poll never got past the landing: {pages}"
    assert sum(k for _, k in pages) >= 1, pages
