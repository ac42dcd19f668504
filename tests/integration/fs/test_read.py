"""Every byte read through the mount is the server's byte for that file:
whole files at the sizes around a block's edge, reads at any offset, and
many readers at once. Each test mounts with a cache directory of its own,
so that what it reads is fetched."""

import concurrent.futures
import os
import random
import subprocess

import pytest

from cfs_fs import MiB, payload, read, sha, until
from cfs_server import BLOCK_SIZE, Server

SIZES = {"0": 0, "1": 1, "4MiB-1": BLOCK_SIZE - 1, "4MiB": BLOCK_SIZE,
         "4MiB+1": BLOCK_SIZE + 1, "100MiB": 100 * MiB}

FILES = {
    **{f"size/{name}": payload(n, name) for name, n in SIZES.items()},
    "three-blocks-and-a-bit": payload(3 * BLOCK_SIZE + 12345, "odd"),
    **{f"many/{i}": payload(2 * BLOCK_SIZE + i * 100_003, f"many{i}") for i in range(4)},
}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """One server for the module, holding FILES in alice's root."""
    d = tmp_path_factory.mktemp("server")
    s = Server(d / "data", d / "cloudfsd.log").start()
    alice = s.user("alice")
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "size"}, {"op": "dir", "path": "many"})
    alice.write_files(alice.root_ns, FILES)
    yield alice
    s.stop()


@pytest.mark.parametrize("name", SIZES)
def test_a_file_reads_byte_exact(library, mount, name):
    m = mount(library)
    path = os.path.join(m.mountpoint, "size", name)

    assert os.stat(path).st_size == SIZES[name]
    assert sha(read(path)) == sha(FILES[f"size/{name}"])


@pytest.mark.parametrize("readahead, parallel", [(0, 1), (1, 1), (16, 8)])
def test_the_100_mib_file_reads_byte_exact_whatever_the_readahead_and_parallelism(
        library, mount, readahead, parallel):
    m = mount(library, readahead=readahead, parallel=parallel)

    assert sha(read(os.path.join(m.mountpoint, "size", "100MiB"))) == sha(FILES["size/100MiB"])


def random_spans(size, n, seed):
    """N (offset, length) pairs over a file of SIZE bytes: random ones,
    and ones that straddle each block boundary or run past the end."""
    rnd = random.Random(seed)
    spans = []
    for edge in range(BLOCK_SIZE, size, BLOCK_SIZE):
        spans += [(edge - 1, 2), (edge - 4096, 8192), (edge - 1000, BLOCK_SIZE + 2000),
                  (edge, 1), (edge - 1, 1)]
    spans += [(size - 10, 100), (size, 10), (size + 5000, 10), (0, size + 1)]
    while len(spans) < n:
        off = rnd.randrange(size)
        spans.append((off, rnd.choice([1, 7, 4096, 65536, 131073, MiB + 3, 2 * MiB])))
    rnd.shuffle(spans)
    return spans


@pytest.mark.parametrize("flags", [0, os.O_DIRECT], ids=["page-cache", "O_DIRECT"])
def test_reads_at_random_offsets_return_the_sources_bytes(library, mount, flags):
    data = FILES["three-blocks-and-a-bit"]
    m = mount(library)
    fd = os.open(os.path.join(m.mountpoint, "three-blocks-and-a-bit"), os.O_RDONLY | flags)
    try:
        for off, length in random_spans(len(data), 300, seed=flags):
            got = os.pread(fd, length, off)
            assert got == data[off:off + length], f"pread({length}, {off})"
    finally:
        os.close(fd)


def read_in_chunks(path, chunk, order_seed=None):
    """The file at PATH read CHUNK bytes at a time, in order or (with
    ORDER_SEED) in a shuffled order of chunks, put back together."""
    size = os.stat(path).st_size
    offsets = list(range(0, size, chunk))
    if order_seed is not None:
        random.Random(order_seed).shuffle(offsets)
    parts = {}
    with open(path, "rb", buffering=0) as f:
        for off in offsets:
            parts[off] = os.pread(f.fileno(), chunk, off)
    return b"".join(parts[off] for off in sorted(parts))


def test_many_concurrent_readers_all_read_byte_exact(library, mount):
    names = [f"many/{i}" for i in range(4)] + ["size/4MiB+1"]
    m = mount(library)
    jobs = [(name, chunk, seed) for name in names
            for chunk, seed in [(MiB, None), (65536, None), (3 * 65536 + 1, 1), (MiB - 1, 2)]]
    procs = [subprocess.Popen(["sha256sum", os.path.join(m.mountpoint, name)],
                              stdout=subprocess.PIPE, text=True) for name in names * 2]

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(lambda j: read_in_chunks(os.path.join(m.mountpoint, j[0]), *j[1:]),
                            jobs))

    for (name, chunk, seed), data in zip(jobs, got):
        assert sha(data) == sha(FILES[name]), (name, chunk, seed)
    for name, p in zip(names * 2, procs):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and out.split()[0] == sha(FILES[name]), name


def resident_bytes(path):
    """How many bytes of PATH are in the page cache (util-linux fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def test_reading_through_the_mount_leaves_the_cached_block_in_the_page_cache(library, mount):
    # A reply spliced with SPLICE_MOVE takes the cache file's pages away
    # from it, so every warm read went back to the disk.
    name = "size/4MiB"
    m = mount(library)
    path = os.path.join(m.mountpoint, name)
    block = os.path.join(m.cache, "blocks", sha(FILES[name])[:2], sha(FILES[name]))

    for _ in range(2):
        with open(path, "rb") as f:  # the mount's own page cache: not kept
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        assert sha(read(path)) == sha(FILES[name])
        # The first read is answered before the storer makes the file.
        until(lambda: os.path.exists(block), within=5, what="the block stored")
        assert resident_bytes(block) == BLOCK_SIZE
