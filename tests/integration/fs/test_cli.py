"""The cloudfs command against a live mount with known content (and a
cache directory with no mount): status and status --wait, every cache
sub-command with --json (verify, gc and evict in text too), eviction
under a tiny cache limit while a file larger than the cache streams,
verify against a corrupted block file, a pinned tree read with the
server gone, and the user.cloudfs.* attributes; sharing between two
users."""

import errno
import hashlib
import os
import stat
import subprocess
import time

import pytest

from cfs_fs import (at, block_ids, cloudfs, Dir, File, MiB, payload, put_tree, read,
                    server_listing, timed, until)
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import BLOCK_SIZE, CLOUDFS

TREE = {
    "photos": Dir(),
    "photos/a.jpg": File(payload(BLOCK_SIZE + 10, "a")),
    "photos/b.jpg": File(payload(2 * BLOCK_SIZE, "b")),
    "notes.txt": File(b"some notes\n"),
    "big.bin": File(payload(2 * BLOCK_SIZE + 5, "big")),
}


@pytest.fixture
def tree(alice, mount):
    """Alice's mount of TREE, nothing read yet."""
    put_tree(alice, alice.root_ns, TREE)
    return mount(alice, timeout=2)


def dropped(path):
    """Reads PATH whole past the kernel's page cache, so the mount serves it."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return f.read()


def test_cloudfs_has_help_version_and_usage_errors():
    assert "cache verify" in cloudfs("--help")
    assert cloudfs("--version").startswith("cloudfs ")
    cloudfs(expect=2)
    cloudfs("frobnicate", expect=2)
    cloudfs("cache", "stat", "--wait", expect=2)
    cloudfs("status", "--timeout", "2", expect=2)  # only with --wait


@pytest.mark.parametrize("args", [["frobnicate"], ["--frobnicate"], []])
def test_a_wrong_command_is_one_line_with_the_help_hint(args):
    p = subprocess.run([CLOUDFS, *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stdout == "", p
    assert p.stderr.startswith("cloudfs: ") and p.stderr.count("\n") == 1, p.stderr
    assert "'cloudfs --help' lists them" in p.stderr, p.stderr


def test_status_of_a_quiet_mount_is_synced(tree):
    out = cloudfs("status", tree.mountpoint)
    assert f"{tree.mountpoint}: synced" in out
    st = cloudfs("status", "--json", tree.mountpoint)["mounts"][0]
    assert st["synced"] and st["server"] and st["pending_ops"] == 0
    assert all(ns["cursor"] == ns["head"] for ns in st["namespaces"])
    # Without a MOUNTPOINT: every cloudfs mount, this one among them (the
    # exit status is of them all: 3 while another one on the machine, of
    # another test run, is busy).
    every = cloudfs("status", "--json", expect=(0, 3))["mounts"]
    (this,) = [m for m in every if m["mountpoint"] == tree.mountpoint]
    assert this["synced"], this


def test_status_wait_returns_once_the_server_has_everything(alice, mount):
    m = mount(alice, settle=3)
    data = payload(3 * BLOCK_SIZE, "waited")
    with open(at(m, "new.bin"), "wb") as f:
        f.write(data)
    st = cloudfs("status", "--json", m.mountpoint, expect=3)["mounts"][0]
    assert not st["synced"] and st["pending_ops"] + st["open_writes"] > 0
    assert os.getxattr(at(m, "new.bin"), "user.cloudfs.status").startswith(b"pending")
    cloudfs("status", "--wait", m.mountpoint)
    # Already there: --wait returned no earlier than the commit.
    entry = server_listing(alice, alice.root_ns).get("new.bin", {})
    assert entry.get("blocks") == block_ids(data) and entry["size"] == len(data)
    assert cloudfs("status", "--json", m.mountpoint)["mounts"][0]["synced"]


def test_status_wait_gives_up_at_its_timeout(alice, mount, paused):
    m = mount(alice, settle=0, timeout=2)
    paused()
    with open(at(m, "stuck.txt"), "wb") as f:
        f.write(b"the server is away\n")
    cloudfs("status", "--wait", "--timeout", "2", m.mountpoint, expect=3)


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_cache_stat_and_ls_say_what_is_cached(alice, mount, start):
    """Also with the mount in the background, as users run it (issue 13:
    the command unlinked the daemonized mount's write-ahead log)."""
    put_tree(alice, alice.root_ns, TREE)
    tree = mount(alice, start=start, timeout=2)
    assert read(at(tree, "photos", "a.jpg")) == TREE["photos/a.jpg"].data
    # The read is answered before the mount's storer indexes the blocks.
    until(lambda: os.getxattr(at(tree, "photos", "a.jpg"), "user.cloudfs.status")
          == b"synced cached", within=5, what="a.jpg cached")
    st = cloudfs("cache", "stat", "--json", cwd=tree.mountpoint)
    assert st["mounted"] and st["files"] == 4 and st["files_cached"] == 1
    assert st["blocks"] == 2 and st["bytes"] == len(TREE["photos/a.jpg"].data)
    assert st["limit"] == 10 << 30 and st["pending_ops"] == 0
    assert st["misses"] >= 1 and st["hits"] + st["misses"] >= 2

    listed = {e["name"]: e for e in
              cloudfs("cache", "ls", "--json", at(tree, "photos"))["entries"]}
    assert listed["a.jpg"]["local"] == "cached" and listed["a.jpg"]["cached_blocks"] == 2
    assert listed["b.jpg"]["local"] == "online-only" and listed["b.jpg"]["blocks"] == 2
    assert {e["state"] for e in listed.values()} == {"synced"}
    assert "cached" in cloudfs("cache", "ls", at(tree, "photos"))


def test_cache_ls_marks_each_kind_as_ls_f_does(tree):
    m = tree.mountpoint
    os.mkdir(at(tree, "d"))
    os.symlink("notes.txt", at(tree, "link"))
    os.mkfifo(at(tree, "pipe"))
    os.mknod(at(tree, "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    header, *lines = cloudfs("cache", "ls", m).splitlines()
    assert header.split() == ["STATE", "LOCAL", "CACHED", "BYTES", "BLOCKS", "NAME"]
    names = {line.split()[-1] for line in lines}
    assert {"d/", "photos/", "link@", "pipe|", "null", "notes.txt"} <= names
    kinds = {e["name"]: e["kind"] for e in cloudfs("cache", "ls", "--json", m)["entries"]}
    assert (kinds["link"], kinds["pipe"], kinds["null"]) == ("symlink", "fifo", "chardev")


def test_user_cloudfs_attributes_tell_the_state_and_refuse_writes(tree):
    a, b = at(tree, "photos", "a.jpg"), at(tree, "photos", "b.jpg")
    read(a)
    # The reader is answered from the fetched block while the mount's
    # storer makes it a cache file, a few milliseconds later.
    until(lambda: os.getxattr(a, "user.cloudfs.status") == b"synced cached",
          within=5, what="a.jpg cached")
    assert os.getxattr(b, "user.cloudfs.status") == b"synced online-only"
    assert os.getxattr(at(tree, "photos"), "user.cloudfs.status") == b"synced"
    lines = os.getxattr(a, "user.cloudfs.blocks").decode().splitlines()
    assert [line.split()[1] for line in lines] == ["cached", "cached"]
    assert os.fsdecode(os.getxattr(a, "user.cloudfs.cache")) == tree.cache
    # Not listed (copies must not carry them), and not writable.
    assert os.listxattr(a) == []
    for name, err in [("user.cloudfs.status", errno.EPERM), ("user.other", errno.ENOTSUP)]:
        with pytest.raises(OSError) as e:
            os.setxattr(a, name, b"x")
        assert e.value.errno == err
    with pytest.raises(OSError) as e:
        os.getxattr(a, "user.cloudfs.nothing")
    assert e.value.errno == errno.ENODATA


def test_a_pinned_folder_stays_readable_with_the_server_gone(tree, paused):
    out = cloudfs("cache", "pin", "--json", at(tree, "photos"))
    assert out["files"] == 2 and out["bytes"] == 3 * BLOCK_SIZE + 10
    assert os.getxattr(at(tree, "photos", "b.jpg"), "user.cloudfs.status") == b"synced pinned"
    read(at(tree, "notes.txt"))
    evicted = cloudfs("cache", "evict", "--json", cwd=tree.mountpoint)
    assert evicted["blocks"] == 1 and evicted["kept"] == 4  # notes.txt went

    paused()
    for name in ("photos/a.jpg", "photos/b.jpg"):
        assert dropped(at(tree, name)) == TREE[name].data
    with pytest.raises(OSError) as e:
        dropped(at(tree, "notes.txt"))
    assert e.value.errno == errno.EIO


def test_unpin_lets_eviction_take_a_folder_again(tree):
    cloudfs("cache", "pin", at(tree, "photos"))
    cloudfs("cache", "unpin", at(tree, "photos"))
    assert os.getxattr(at(tree, "photos", "a.jpg"), "user.cloudfs.status") == b"synced cached"
    evicted = cloudfs("cache", "evict", "--json", at(tree, "photos"))
    assert evicted["blocks"] == 4 and evicted["kept"] == 0
    assert cloudfs("cache", "stat", "--json", cwd=tree.mountpoint)["bytes"] == 0


def test_warm_fetches_without_pinning(tree):
    out = cloudfs("cache", "warm", "--json", at(tree, "big.bin"))
    assert out["files"] == 1 and not out["pinned"]
    assert os.getxattr(at(tree, "big.bin"), "user.cloudfs.status") == b"synced cached"


def test_cache_stat_names_its_mount_from_outside_it(tree):
    inside = cloudfs("cache", "stat", "--json", cwd=tree.mountpoint)
    outside = cloudfs("cache", "stat", "--json", tree.mountpoint, cwd="/")
    assert outside["mounted"] and outside["files"] == inside["files"] == 4
    assert f"cache '{tree.cache}' (mounted)" in cloudfs("cache", "stat", at(tree, "photos"), cwd="/")
    cloudfs("cache", "stat", tree.mountpoint, "extra", expect=2)


def test_warm_reads_the_files_of_a_folder_and_passes_by_a_fifo(tree):
    os.mkfifo(at(tree, "photos", "pipe"))  # opening it would wait for a writer

    out, _ = timed(lambda: cloudfs("cache", "warm", "--json", at(tree, "photos")), 60)
    assert out["files"] == 2
    assert os.getxattr(at(tree, "photos", "b.jpg"), "user.cloudfs.status") == b"synced cached"


def test_verify_drops_a_corrupt_block_and_the_next_read_fetches_it_again(tree):
    path = at(tree, "big.bin")
    data = TREE["big.bin"].data
    assert read(path) == data
    until(lambda: os.getxattr(path, "user.cloudfs.status") == b"synced cached",
          within=5, what="big.bin cached")
    first = hashlib.sha256(data[:BLOCK_SIZE]).hexdigest()
    block_file = os.path.join(tree.cache, "blocks", first[:2], first)
    with open(block_file, "r+b") as f:
        f.seek(1000)
        f.write(b"rot")

    out = cloudfs("cache", "verify", "--json", cwd=tree.mountpoint, expect=3)
    assert out["blocks"] == 3 and out["bad"] == 1
    assert out["problems"][0]["block"] == first
    assert not os.path.exists(block_file)
    assert dropped(path) == data
    assert cloudfs("cache", "verify", "--json", cwd=tree.mountpoint)["bad"] == 0


def test_a_stream_larger_than_a_tiny_cache_reads_byte_exact(alice, mount):
    data = payload(40 * MiB + 3, "stream")
    alice.write_file(alice.root_ns, "movie.bin", data)
    m = mount(alice, cache_size="8M")
    h = hashlib.sha256()
    with open(at(m, "movie.bin"), "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    # The keeper evicts in the background, within moments of a store.
    until(lambda: 0 < cloudfs("cache", "stat", "--json", cwd=m.mountpoint)["bytes"]
          <= 8 * MiB, within=5, what="the cache back within its limit")
    assert cloudfs("cache", "stat", "--json", cwd=m.mountpoint)["limit"] == 8 * MiB
    assert "to stay within its limit" in m.log_text()


def test_eviction_takes_the_block_read_longest_ago(alice, mount):
    """A use the mount noted but has not yet written to the index (reads
    are written in batches) still counts when the cache is over its limit."""
    for name in ("old", "newer", "third"):
        alice.write_file(alice.root_ns, name, payload(BLOCK_SIZE, name))
    m = mount(alice)
    read(at(m, "old"))
    time.sleep(1.1)  # uses are kept in seconds
    read(at(m, "newer"))
    m.unmount()
    time.sleep(1.1)
    m = mount(alice, cache=m.cache, cache_size="14M")
    assert dropped(at(m, "old")) == payload(BLOCK_SIZE, "old")  # used last now
    # 12 MiB, past the limit less its margin (a quarter of a small cache,
    # 10.5 MiB): down to 10% below that, 9.1 MiB: one block goes.
    read(at(m, "third"))
    until(lambda: os.getxattr(at(m, "newer"), "user.cloudfs.status") == b"synced online-only",
          within=5, what="newer evicted")
    assert os.getxattr(at(m, "old"), "user.cloudfs.status") == b"synced cached"


def test_a_cache_directory_is_inspected_and_tended_with_no_mount(tree):
    read(at(tree, "photos", "a.jpg"))
    tree.unmount()
    cache = ["--cache", tree.cache]
    st = cloudfs(*cache, "cache", "stat", "--json")
    assert not st["mounted"] and st["files_cached"] == 1
    listed = cloudfs(*cache, "cache", "ls", "--json", "photos")["entries"]
    assert {e["name"]: e["local"] for e in listed} == {"a.jpg": "cached", "b.jpg": "online-only"}

    stray = os.path.join(tree.cache, "blocks", "ab", "ab" + "0" * 62)
    os.makedirs(os.path.dirname(stray), exist_ok=True)
    with open(stray, "wb") as f:
        f.write(b"nothing lists me")
    assert cloudfs(*cache, "cache", "gc", "--json")["blocks"] == 1
    assert not os.path.exists(stray)
    # A block file gone by hand: gc drops its row, and evict has one left.
    first = hashlib.sha256(TREE["photos/a.jpg"].data[:BLOCK_SIZE]).hexdigest()
    os.unlink(os.path.join(tree.cache, "blocks", first[:2], first))
    assert cloudfs(*cache, "cache", "gc", "--json")["rows"] == 1
    assert cloudfs(*cache, "cache", "evict", "--json")["blocks"] == 1
    assert cloudfs(*cache, "cache", "stat", "--json")["bytes"] == 0
    cloudfs(*cache, "status", expect=1)  # status needs a live mount


def test_upkeep_says_in_a_line_each_what_each_block_became_and_what_it_did(tree):
    """Without --json, verify, gc and evict name each block they found
    bad, then sum up in a line of their own."""
    read(at(tree, "photos", "a.jpg"))
    tree.unmount()
    cache = ["--cache", tree.cache]
    first = hashlib.sha256(TREE["photos/a.jpg"].data[:BLOCK_SIZE]).hexdigest()
    with open(os.path.join(tree.cache, "blocks", first[:2], first), "r+b") as f:
        f.write(b"rot")
    bad, verified = cloudfs(*cache, "cache", "verify", expect=3).splitlines()
    assert bad.startswith(f"bad block {first}: ")
    assert verified.startswith("verified 2 blocks (") and verified.endswith("): 1 bad, removed")

    stray = "ab" + "0" * 62
    os.makedirs(os.path.join(tree.cache, "blocks", "ab"), exist_ok=True)
    with open(os.path.join(tree.cache, "blocks", "ab", stray), "wb") as f:
        f.write(b"nothing lists me")
    removed, collected = cloudfs(*cache, "cache", "gc").splitlines()
    assert removed.startswith(f"removed block {stray}: ")
    assert collected == "removed 1 stray block files and 0 index rows"
    (evicted,) = cloudfs(*cache, "cache", "evict").splitlines()
    assert evicted.startswith("evicted 1 blocks (")
    assert evicted.endswith("); kept 0 pinned or not yet uploaded")


def test_sharing_a_folder_end_to_end_through_the_command(alice, bob, mount):
    ma, mb = mount(alice, settle=0), mount(bob, settle=0)
    os.mkdir(at(ma, "Trip"))
    with open(at(ma, "Trip", "plan.txt"), "wb") as f:
        f.write(b"day 1: the museum\n")
    cloudfs("status", "--wait", ma.mountpoint)

    shared = cloudfs("share", "--json", at(ma, "Trip"), "bob")
    assert shared["user"] == "bob" and shared["ns"] > 0
    until(lambda: read(at(mb, "Trip", "plan.txt")) == b"day 1: the museum\n",
          within=10, what="the shared folder in bob's mount")
    with open(at(mb, "Trip", "bob.txt"), "wb") as f:
        f.write(b"day 2: the beach\n")
    until(lambda: read(at(ma, "Trip", "bob.txt")) == b"day 2: the beach\n",
          within=10, what="bob's file in alice's mount")
    (share,) = cloudfs("shares", "--json", ma.mountpoint)["shares"]
    assert share["path"] == "Trip" and share["owner"] == "alice"
    assert sorted(m["user"] for m in share["members"]) == ["alice", "bob"]
    assert "Trip (owner alice): " in cloudfs("shares", cwd=mb.mountpoint)

    # Only the owner takes a member off; bob may leave.
    cloudfs("unshare", at(mb, "Trip"), "alice", expect=1)
    cloudfs("unshare", at(ma, "Trip"), "bob")
    until(lambda: not os.path.exists(at(mb, "Trip")), within=10,
          what="the folder gone from bob's mount")
    cloudfs("share", at(ma, "Trip"), "bob")
    until(lambda: os.path.exists(at(mb, "Trip")), within=10, what="the folder back")
    cloudfs("leave", at(mb, "Trip"))
    until(lambda: not os.path.exists(at(mb, "Trip")), within=10,
          what="the folder gone after leaving")
    assert read(at(ma, "Trip", "bob.txt")) == b"day 2: the beach\n"
    # A file is not a folder; a folder with changes not yet sent waits.
    cloudfs("share", at(ma, "Trip", "plan.txt"), "bob", expect=1)
    cloudfs("share", at(ma, "Trip"), expect=2)


def test_a_change_being_sent_says_uploading(alice, mount, proxy):
    m = mount(alice.clone(proxy.url), settle=0)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    with open(at(m, "sent.txt"), "wb") as f:
        f.write(b"on its way\n")
    proxy.wait_held(1)
    assert os.getxattr(at(m, "sent.txt"), "user.cloudfs.status") == b"uploading cached"
    (entry,) = cloudfs("cache", "ls", "--json", at(m, "sent.txt"))["entries"]
    assert entry["state"] == "uploading"
    st = cloudfs("status", "--json", m.mountpoint, expect=3)["mounts"][0]
    assert st["uploading"] == [os.stat(at(m, "sent.txt")).st_ino]
    proxy.release()
    cloudfs("status", "--wait", m.mountpoint)
    assert os.getxattr(at(m, "sent.txt"), "user.cloudfs.status") == b"synced cached"


def test_a_change_whose_block_verify_removed_is_dropped_loudly_and_the_rest_goes_on(
        alice, mount, proxy):
    m = mount(alice.clone(proxy.url), settle=0)
    proxy.hold(r"POST /block/need")
    data = b"rotten before it was sent\n"
    with open(at(m, "lost.txt"), "wb") as f:
        f.write(data)
    proxy.wait_held(1)
    block = hashlib.sha256(data).hexdigest()
    with open(os.path.join(m.cache, "blocks", block[:2], block), "r+b") as f:
        f.write(b"R")
    out = cloudfs("cache", "verify", "--json", cwd=m.mountpoint, expect=3)
    assert [p["block"] for p in out["problems"]] == [block]
    proxy.release()

    with open(at(m, "kept.txt"), "wb") as f:
        f.write(b"sent after\n")
    cloudfs("status", "--wait", "--timeout", "30", m.mountpoint)
    assert "'lost.txt' is lost" in m.log_text()
    listing = server_listing(alice, alice.root_ns)
    assert "lost.txt" not in listing and listing["kept.txt"]["size"] == 11
    assert sorted(os.listdir(m.mountpoint)) == ["kept.txt"]
