"""Streaming sync: while one mount uploads a large file, another mount of
the namespace fetches its blocks as they land on the server, so that they
are cached when the file's journal row comes, and the file shows only
with its row (mount.cloudfs(8), streaming)."""

import json
import os

from cfs_fs import at, block_ids, cloudfs, exists, payload, read, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import BLOCK_SIZE



def stats(m):
    return cloudfs("stats", "--json", m.mountpoint)


def cached(m, bid):
    """Whether M's cache directory holds block BID as a block file."""
    return os.path.exists(os.path.join(m.cache, "blocks", bid[:2], bid))


def landed_on_server(client, ns):
    """The ids of the landed blocks of the pending lists CLIENT sees in NS."""
    r = client.post("/meta/longpoll", {"cursors": [{"ns": ns, "cursor": client.head(ns)}],
                                       "timeout": 0, "pending": 0})
    assert r.status == 200, r
    return {b["id"] for lst in r.json["pending"] for b in lst["blocks"]}


def announcements_seen(proxy):
    return sum(1 for line in proxy.seen if line.endswith("/announce"))


def announce(client, path, data):
    """Publishes the pending list of a file of DATA at PATH of CLIENT's
    root, as a mount does before it uploads."""
    op = {"op": "file", "path": path, "size": len(data), "blocks": block_ids(data)}
    r = client.post(f"/meta/ns/{client.root_ns}/announce", {"ops": [op]})
    assert r.status == 200 and r.json["results"][0]["status"] == "need_blocks", r


def test_a_large_file_is_in_the_other_mounts_cache_before_its_row_arrives(
        alice, mount, proxy):
    a = mount(alice.clone(proxy.url), settle=0)
    b = mount(alice)
    data = payload(3 * BLOCK_SIZE + 4567, seed=16)  # four blocks
    ids = block_ids(data)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    with open(at(a, "big.bin"), "wb") as f:
        f.write(data)
    proxy.wait_held(1)
    # The announcement went by before the blocks; the commit waits.
    assert announcements_seen(proxy) == 1
    until(lambda: all(cached(b, i) for i in ids), within=60,
          what="the blocks in the other mount's cache")
    assert not exists(at(b, "big.bin"))
    before = stats(b)
    assert before["sync"]["streamed"] >= len(ids)
    assert json.dumps(cloudfs("cache", "ls", "--json", b.mountpoint)).find("big.bin") < 0
    proxy.release()
    until(lambda: exists(at(b, "big.bin")), within=30, what="the file's row")
    assert read(at(b, "big.bin")) == data
    after = stats(b)
    # Every block read was a cache hit: none came after the row.
    assert after["reads"]["fetched_blocks"] == before["reads"]["fetched_blocks"]
    assert after["reads"]["misses"] == before["reads"]["misses"]


def test_with_streaming_off_a_mount_neither_announces_nor_fetches_ahead(
        alice, mount, proxy):
    a = mount(alice.clone(proxy.url), settle=0, streaming="off")
    b = mount(alice, streaming="off")
    watcher = mount(alice)  # streams: shows what b could have had
    data = payload(2 * BLOCK_SIZE + 99, seed=17)  # three blocks
    proxy.hold(r"POST /meta/ns/\d+/commit")
    with open(at(a, "off.bin"), "wb") as f:
        f.write(data)
    proxy.wait_held(1)
    # No announcement: nothing pending on the server, the blocks only
    # uploaded.
    assert announcements_seen(proxy) == 0
    assert landed_on_server(alice, alice.root_ns) == set()
    proxy.release()
    until(lambda: exists(at(b, "off.bin")), within=30, what="the file")
    assert read(at(b, "off.bin")) == data
    assert stats(b)["sync"]["streamed"] == 0
    # Now one that streams, written through the API (announced as a
    # mount would), while b is off and watcher is on.
    big = payload(2 * BLOCK_SIZE + 7, seed=18)
    announce(alice, "api.bin", big)
    for i in range(0, len(big), BLOCK_SIZE):
        assert alice.upload(big[i:i + BLOCK_SIZE]).status == 200
    until(lambda: all(cached(watcher, i) for i in block_ids(big)), within=60,
          what="the blocks in the streaming mount's cache")
    # b had the same long polls to learn of them, and fetched nothing.
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "after"})
    until(lambda: exists(at(b, "after")), within=30, what="a later change")
    assert stats(b)["sync"]["streamed"] == 0
    assert not any(cached(b, i) for i in block_ids(big))



def test_blocks_fetched_ahead_for_a_file_that_never_comes_go_when_its_list_expires(
        server, mount):
    server.stop()
    server.start(options=["--pending-ttl", "5s"])
    alice = server.user("alice")
    b = mount(alice)
    data = payload(2 * BLOCK_SIZE + 5, seed=19)
    ids = block_ids(data)
    announce(alice, "never.bin", data)
    for i in range(0, len(data), BLOCK_SIZE):
        assert alice.upload(data[i:i + BLOCK_SIZE]).status == 200
    until(lambda: all(cached(b, i) for i in ids), within=60,
          what="the blocks in the mount's cache")
    # No file lists them: once the list expired, they go as unlisted
    # blocks do, and the file never showed.
    until(lambda: not any(cached(b, i) for i in ids), within=60,
          what="the blocks dropped")
    assert not exists(at(b, "never.bin"))
    assert cloudfs("cache", "stat", "--json", cwd=b.mountpoint)["bytes"] == 0
