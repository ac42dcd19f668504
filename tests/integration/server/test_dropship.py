"""Knowing a block's id is never enough to read it: the Dropship rule."""

from cfs_server import assert_error, block_id, file_op, unchanged

SECRET = b"alice's secret bytes" * 500


def alice_keeps(alice, data):
    """alice uploads DATA and commits it as a file of her root."""
    alice.write_file(alice.root_ns, "secret.txt", data)
    return block_id(data)


def error_answer(r):
    return (r.status, r.error_code, r.json["error"]["message"])


def test_another_users_block_is_not_found_exactly_like_a_block_that_exists_nowhere(
        alice, bob):
    bid = alice_keeps(alice, SECRET)
    nowhere = block_id(b"bytes nobody ever uploaded")
    mine, foreign = bob.download(nowhere), bob.download(bid)
    assert_error(foreign, 404, "not_found")
    assert error_answer(foreign)[:2] == error_answer(mine)[:2]
    assert error_answer(foreign)[2].replace(bid, "ID") == \
        error_answer(mine)[2].replace(nowhere, "ID")
    assert alice.download(bid).body == SECRET


def test_another_users_block_is_needed_like_a_block_that_exists_nowhere(alice, bob):
    bid = alice_keeps(alice, SECRET)
    nowhere = block_id(b"bytes nobody ever uploaded")
    assert sorted(bob.need([bid, nowhere])) == sorted([bid, nowhere])
    assert alice.need([bid, nowhere]) == [nowhere]


def test_committing_another_users_block_needs_an_upload_of_ones_own(alice, bob):
    bid = alice_keeps(alice, SECRET)
    op = file_op("copy.txt", SECRET)
    with unchanged(bob, bob.root_ns):
        r = bob.commit(bob.root_ns, op)
    assert r.json["results"] == [{"status": "need_blocks", "blocks": [bid]}]
    assert_error(bob.download(bid), 404, "not_found")
    assert_error(bob.put(f"/block/{bid}", b"not the secret"), 400, "hash_mismatch")
    assert bob.need([bid]) == [bid]
    up = bob.upload(SECRET)
    assert up.status == 200 and up.json == {"block": bid, "size": len(SECRET)}
    bob.commit_ok(bob.root_ns, op)
    assert bob.snapshot(bob.root_ns)[0]["copy.txt"]["blocks"] == [bid]
    assert bob.download(bid).body == SECRET


def test_a_file_row_gives_access_only_to_members_of_its_namespace(alice, bob, carol):
    bid = alice_keeps(alice, SECRET)
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "S"})
    shared = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "S"}).json["ns"]
    assert alice.post(f"/meta/ns/{shared}/invite", {"user": "bob"}).status == 200
    assert_error(bob.download(bid), 404, "not_found")
    alice.commit_ok(shared, file_op("now-shared.txt", SECRET))
    assert bob.download(bid).body == SECRET
    assert bob.need([bid]) == []
    bob.commit_ok(bob.root_ns, file_op("mine-now.txt", SECRET))
    assert_error(carol.download(bid), 404, "not_found")
    assert carol.need([bid]) == [bid]
