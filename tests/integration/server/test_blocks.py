"""Block upload, download and need; SHA-256 (hashlib) is the reference."""

import http.client
import os

import pytest

from cfs_server import BLOCK_SIZE, assert_error, block_id


def payload(size, seed=b""):
    """SIZE bytes that differ from test to test (no accidental dedup)."""
    chunk = os.urandom(64) + seed
    return (chunk * (size // len(chunk) + 1))[:size]


def assert_not_stored(client, bid):
    """Nothing was stored under BID for CLIENT: still needed, not downloadable."""
    assert client.need([bid]) == [bid]
    assert_error(client.download(bid), 404, "not_found")


def put_chunked(client, bid, pieces):
    """PUT /block/BID with Transfer-Encoding: chunked (as `curl -T -` does)."""
    conn = http.client.HTTPConnection(client.host, client.port, timeout=60)
    try:
        conn.request("PUT", f"/block/{bid}", body=iter(pieces), encode_chunked=True,
                     headers={"Authorization": f"Bearer {client.token}"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# Beside the limits, the sizes around the pieces in which the directory
# store writes a block around the page cache (blockstore_dir.c, invariant
# 7): 4 KiB alignment, its first 64 KiB, then 1 MiB at a time.
@pytest.mark.parametrize("size", [1, 4095, 4097, 65536, 65537, 1114113,
                                  BLOCK_SIZE - 1, BLOCK_SIZE])
def test_a_block_round_trips_byte_exact(alice, size):
    data = payload(size)
    bid = block_id(data)
    r = alice.upload(data)
    assert r.status == 200, r
    assert r.json == {"block": bid, "size": size}
    assert alice.need([bid]) == []
    d = alice.download(bid)
    assert d.status == 200, d
    assert d.headers["Content-Type"] == "application/octet-stream"
    assert block_id(d.body) == bid and d.body == data


def test_a_block_of_4_mib_plus_1_is_too_large_and_not_stored(alice):
    data = payload(BLOCK_SIZE + 1)
    assert_error(alice.upload(data), 413, "too_large")
    assert_not_stored(alice, block_id(data))
    assert alice.get("/").status == 200


def test_an_empty_block_is_bad_block_and_not_stored(alice):
    bid = block_id(b"")
    assert_error(alice.put(f"/block/{bid}", b""), 400, "bad_block")
    assert_not_stored(alice, bid)


def test_a_body_that_hashes_to_another_id_is_a_mismatch_and_not_stored(alice):
    claimed, sent = payload(1000), payload(1000)
    r = alice.put(f"/block/{block_id(claimed)}", sent)
    assert_error(r, 400, "hash_mismatch", block_id(claimed))
    assert_not_stored(alice, block_id(claimed))
    assert_not_stored(alice, block_id(sent))


BAD_IDS = ["abc", block_id(b"x")[:63], block_id(b"x") + "0", block_id(b"x").upper(), "g" * 64]


def test_a_malformed_block_id_in_a_block_url_is_bad_block(alice):
    for bad_id in BAD_IDS:
        assert_error(alice.put(f"/block/{bad_id}", b"x"), 400, "bad_block")
        assert_error(alice.get(f"/block/{bad_id}"), 400, "bad_block")
    assert_not_stored(alice, block_id(b"x"))


def test_a_malformed_block_id_in_need_is_bad_block(alice):
    for bad_id in BAD_IDS:
        r = alice.post("/block/need", {"blocks": [block_id(b"x"), bad_id]})
        assert_error(r, 400, "bad_block")


def test_a_block_that_exists_nowhere_is_not_found(alice):
    assert_error(alice.download(block_id(b"nobody stored this")), 404, "not_found")


def test_a_chunked_upload_is_hashed_as_it_arrives(alice):
    pieces = [payload(100_000) for _ in range(30)]
    data = b"".join(pieces)
    status, body = put_chunked(alice, block_id(data), pieces)
    assert status == 200, body
    assert alice.download(block_id(data)).body == data


def test_a_chunked_upload_over_4_mib_is_too_large_and_not_stored(alice):
    pieces = [payload(1 << 20) for _ in range(4)] + [b"x"]
    bid = block_id(b"".join(pieces))
    status, body = put_chunked(alice, bid, pieces)
    assert status == 413, body
    assert_not_stored(alice, bid)


def test_an_upload_sent_as_curl_sends_it_with_expect_100_continue_round_trips(alice):
    data = payload(BLOCK_SIZE)
    r = alice.put(f"/block/{block_id(data)}", data, headers={"Expect": "100-continue"})
    assert r.status == 200 and r.json == {"block": block_id(data), "size": BLOCK_SIZE}, r
    assert alice.download(block_id(data)).body == data
    big = payload(BLOCK_SIZE + 1)
    r = alice.put(f"/block/{block_id(big)}", big, headers={"Expect": "100-continue"})
    assert_error(r, 413, "too_large")
    assert_not_stored(alice, block_id(big))


def test_need_lists_exactly_the_blocks_the_caller_has_not_uploaded(alice, bob):
    mine, other = payload(10), payload(10)
    alice.upload(mine)
    ids = [block_id(mine), block_id(other)]
    assert alice.need(ids) == [block_id(other)]
    assert sorted(bob.need(ids)) == sorted(ids)
    assert alice.need([]) == []


def test_need_takes_10000_ids_and_refuses_10001_with_too_large(alice):
    ids = [block_id(str(i).encode()) for i in range(10001)]
    assert sorted(alice.need(ids[:10000])) == sorted(ids[:10000])
    assert_error(alice.post("/block/need", {"blocks": ids}), 413, "too_large")


def test_uploading_a_block_twice_is_accepted_both_times(alice, bob):
    data = payload(5000)
    for client in (alice, alice, bob):
        r = client.upload(data)
        assert r.status == 200 and r.json == {"block": block_id(data), "size": 5000}, r
    assert bob.download(block_id(data)).body == data
