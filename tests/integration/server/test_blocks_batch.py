"""POST /block/batch: many small blocks in one request, each hashed and
checked; SHA-256 (hashlib) and single PUTs are the reference."""

import os
import random
import re
import subprocess
import time

import pytest

from cfs_server import BLOCK_SIZE, assert_error, block_id, dir_blocks_only

MAX_BLOCKS = 256


def payload(size):
    """SIZE bytes that differ from test to test (no accidental dedup)."""
    chunk = os.urandom(64)
    return (chunk * (size // len(chunk) + 1))[:size]


def framed(blocks, ids=None):
    """The batch body of BLOCKS: "ID SIZE\\n" and the bytes, for each (IDS
    in place of the blocks' own ids where given)."""
    ids = ids or [block_id(b) for b in blocks]
    return b"".join(f"{i} {len(b)}\n".encode() + b for i, b in zip(ids, blocks))


def batch(client, body, **kw):
    return client.post("/block/batch", body, **kw)


def assert_not_stored(client, *blocks):
    ids = [block_id(b) for b in blocks]
    assert sorted(client.need(ids)) == sorted(ids)
    for bid in ids:
        assert_error(client.download(bid), 404, "not_found")


def test_a_batch_of_small_blocks_stores_each_byte_exact(alice):
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    rnd = random.Random(seed)
    blocks = [payload(rnd.choice([1, 17, 4096, 65536, 100_000])) for _ in range(60)]
    r = batch(alice, framed(blocks))
    assert r.status == 200, r
    assert r.json == {"blocks": [{"block": block_id(b), "size": len(b)} for b in blocks]}
    assert alice.need([block_id(b) for b in blocks]) == []
    for b in blocks:
        d = alice.download(block_id(b))
        assert d.status == 200 and d.body == b, d


def test_a_batch_takes_256_blocks_and_a_block_of_bytes_in_all(alice):
    blocks = [payload(BLOCK_SIZE // MAX_BLOCKS) for _ in range(MAX_BLOCKS)]
    r = batch(alice, framed(blocks))
    assert r.status == 200 and len(r.json["blocks"]) == MAX_BLOCKS, r
    one = [payload(BLOCK_SIZE)]
    assert batch(alice, framed(one)).status == 200
    assert alice.download(block_id(one[0])).body == one[0]


def test_a_batch_with_one_wrong_block_stores_none_and_names_it(alice):
    blocks = [payload(1000) for _ in range(5)]
    ids = [block_id(b) for b in blocks]
    ids[2] = block_id(b"something else")
    r = batch(alice, framed(blocks, ids))
    assert_error(r, 400, "hash_mismatch", "block 3", ids[2], block_id(blocks[2]))
    assert_not_stored(alice, *blocks)


def test_a_batch_of_257_blocks_or_over_4_mib_is_too_large_and_stores_none(alice):
    many = [payload(10) for _ in range(MAX_BLOCKS + 1)]
    assert_error(batch(alice, framed(many)), 413, "too_large", "256")
    assert_not_stored(alice, *many)
    big = [payload(BLOCK_SIZE // 2 + 1) for _ in range(2)]
    assert_error(batch(alice, framed(big)), 413, "too_large", "4194304")
    assert_not_stored(alice, *big)
    huge = [payload(BLOCK_SIZE) for _ in range(2)]
    assert_error(batch(alice, framed(huge)), 413, "too_large")
    assert_not_stored(alice, *huge)


def test_a_malformed_batch_is_bad_block_names_the_block_and_stores_none(alice):
    good = payload(100)
    g = framed([good])
    x = b"x" * 10
    xid = block_id(x)
    for body, words in [
            (b"", ("empty",)),
            (g + xid.encode() + b" 10" + x, ("block 2",)),  # no newline
            (g + xid.upper().encode() + b" 10\n" + x, ("block 2", "not a block id")),
            (g + xid.encode() + b"  10\n" + x, ("block 2", "size")),
            (g + xid.encode() + b" 010\n" + x, ("block 2", "size")),
            (g + xid.encode() + b" 0\n", ("block 2", "size")),
            (g + xid.encode() + b" -1\n" + x, ("block 2", "size")),
            (g + xid.encode() + b" 4194305\n" + x, ("block 2", "size")),
            (g + xid.encode() + b" 11\n" + x, ("block 2", "ends")),
            (g + b"trailing", ("block 2",)),
    ]:
        r = batch(alice, body)
        assert_error(r, 400, "bad_block", *words)
        assert_not_stored(alice, good, x)


def test_a_batch_gives_no_access_to_blocks_the_caller_did_not_send(alice, bob):
    """Dropship: bob's block stays needed and unreadable for alice after a
    batch of her own, until she sends its bytes herself."""
    bobs, hers = payload(3000), payload(3000)
    assert bob.upload(bobs).status == 200
    assert batch(alice, framed([hers])).status == 200
    assert alice.need([block_id(bobs), block_id(hers)]) == [block_id(bobs)]
    assert_error(alice.download(block_id(bobs)), 404, "not_found")
    assert batch(alice, framed([bobs, hers])).status == 200
    assert alice.download(block_id(bobs)).body == bobs


def test_a_batch_needs_a_token_and_post(server, alice):
    anon = alice.clone()
    anon.token = None
    body = framed([payload(10)])
    assert_error(batch(anon, body), 401, "unauthorized")
    assert_error(alice.put("/block/batch", body), 405, "method_not_allowed", "POST")


@dir_blocks_only("the syncs of the directory block store")
def test_a_batch_is_durable_before_its_answer_with_two_syncs_not_two_per_block(
        server, alice, tmp_path):
    """cloudfsd(8)'s block store: a block file appears only by a rename of
    a temporary file whose bytes are on disk, and its name is on disk
    before the upload is answered.  A batch does it with syncfs(2) before
    the renames and after them, not an fsync of each file and folder.
    strace (attached to the running server) is the witness."""
    blocks = [payload(4096) for _ in range(20)]
    out, log = tmp_path / "strace.out", tmp_path / "strace.log"
    with open(log, "w") as err:
        trace = subprocess.Popen(
            ["strace", "-f", "-ttt", "-y", "-e",
             "trace=syncfs,fsync,fdatasync,rename,renameat,renameat2",
             "-o", str(out), "-p", str(server.proc.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while " attached" not in log.read_text():
            assert trace.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        r = batch(alice, framed(blocks))
        assert r.status == 200, r
    finally:
        trace.terminate()
        trace.wait(timeout=10)
    calls = []  # (call, the line), in order
    for line in out.read_text().splitlines():
        m = re.match(r"\d+\s+[\d.]+\s+(?:<\.\.\. )?(\w+)", line)
        if m and "resumed>" not in line:
            calls.append((m[1], line))
    names = [c for c, _ in calls]
    renames = [i for i, (c, line) in enumerate(calls)
               if c.startswith("rename") and "upload-" in line]
    assert len(renames) == len(blocks), names
    syncs = [i for i, c in enumerate(names) if c == "syncfs"]
    assert len(syncs) == 2 and syncs[0] < renames[0] and syncs[1] > renames[-1], names
    assert not [line for c, line in calls if c == "fsync" and "upload-" in line], names
    for b in blocks:
        assert alice.download(block_id(b)).body == b
