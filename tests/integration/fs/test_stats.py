"""cloudfs stats: the counters of a mount, run in the background as users
run it, move by what it did: a read of an uncached file fetches its blocks,
a write uploads and commits them."""

from cfs_fs import at, cloudfs, payload, read, until, until_server_holds
from cfs_server import BLOCK_SIZE


def stats(m):
    return cloudfs("stats", "--json", m.mountpoint)


def moved(before, after, group, key):
    return after[group][key] - before[group][key]


def test_stats_count_a_read_of_an_uncached_file(alice, mount):
    data = payload(BLOCK_SIZE + 1000, seed=1)  # two blocks
    alice.write_file(alice.root_ns, "far.bin", data)
    m = mount(alice)
    until(lambda: cloudfs("status", "--json", m.mountpoint, expect=(0, 3))
          ["mounts"][0]["synced"], within=10, what="the listing")
    before = stats(m)
    assert before["mountpoint"] == m.mountpoint
    assert read(at(m, "far.bin")) == data
    after = stats(m)
    assert moved(before, after, "reads", "fetched_blocks") == 2
    assert moved(before, after, "reads", "fetched_bytes") == len(data)
    assert moved(before, after, "reads", "misses") >= 2
    assert after["reads"]["fetch_failures"] == 0


def test_stats_count_a_write_sent_to_the_server(alice, mount):
    m = mount(alice)
    before = stats(m)
    data = payload(BLOCK_SIZE * 2 + 7, seed=2)  # three blocks
    with open(at(m, "new.bin"), "wb") as f:
        f.write(data)
    until_server_holds(alice, {"new.bin": data})
    until(lambda: stats(m)["uploads"]["queue"] == 0, within=10, what="an empty queue")
    after = stats(m)
    assert moved(before, after, "uploads", "blocks") == 3
    assert moved(before, after, "uploads", "bytes") == len(data)
    assert moved(before, after, "uploads", "commits") >= 1
    assert moved(before, after, "uploads", "committed") >= 1
    assert after["uploads"]["failures"] == 0
    text = cloudfs("stats", m.mountpoint)
    assert "3 blocks" in text and "changes to send" in text


def test_stats_need_a_mount(tmp_path):
    cloudfs("stats", "--cache", str(tmp_path), expect=2)
