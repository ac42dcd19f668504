"""A block whose bytes do not hash to its id is never served: the read
fails with EIO, the log names the file, the block's index and its id, and
nothing of it reaches the cache directory. Once the server holds the right
bytes again, the read works."""

import errno
import os

import pytest

from cfs_fs import payload, read
from cfs_server import BLOCK_SIZE, block_id, split_blocks

DATA = payload(3 * BLOCK_SIZE - 1000, "corrupt me")
BAD = 1  # the index of the block that goes bad
BAD_ID = block_id(split_blocks(DATA)[BAD])


@pytest.fixture
def corrupt(server, alice, mount):
    """Alice's mount of dir/data.bin (DATA), block BAD of it corrupted on
    the server: bytes flipped, length kept. Yields (mount, restore)."""
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "dir"})
    alice.write_file(alice.root_ns, "dir/data.bin", DATA)
    path = os.path.join(server.data_dir, "blocks", BAD_ID[:2], BAD_ID)
    with open(path, "rb") as f:
        good = f.read()
    assert len(good) == BLOCK_SIZE
    bad = bytearray(good)
    for i in (0, 12345, BLOCK_SIZE // 2, BLOCK_SIZE - 1):
        bad[i] ^= 0xFF

    def write(data):
        os.chmod(path, 0o600)
        with open(path, "r+b") as f:
            f.write(data)

    write(bytes(bad))
    yield mount(alice), lambda: write(good)


def read_until_error(path):
    """Reads PATH from the start, 64 KiB at a time, until the end or an
    error. Returns (the bytes read, the OSError or None)."""
    got = []
    with open(path, "rb", buffering=0) as f:
        try:
            while chunk := f.read(65536):
                got.append(chunk)
        except OSError as e:
            return b"".join(got), e
    return b"".join(got), None


def test_a_corrupt_block_is_never_served_and_the_read_fails_with_eio(corrupt):
    m, _ = corrupt
    path = os.path.join(m.mountpoint, "dir", "data.bin")

    got, error = read_until_error(path)

    assert error is not None and error.errno == errno.EIO, error
    assert got == DATA[:len(got)] and len(got) <= BAD * BLOCK_SIZE
    with open(path, "rb", buffering=0) as f:
        with pytest.raises(OSError) as e:
            os.pread(f.fileno(), 100, BAD * BLOCK_SIZE + 500_000)
        assert e.value.errno == errno.EIO
        # The blocks around it are fine.
        assert os.pread(f.fileno(), 1000, (BAD + 1) * BLOCK_SIZE + 10) == \
            DATA[(BAD + 1) * BLOCK_SIZE + 10:][:1000]
    assert not os.path.exists(os.path.join(m.cache, "blocks", BAD_ID[:2], BAD_ID))


def test_the_log_names_the_file_the_block_index_and_the_block_id(corrupt):
    m, _ = corrupt

    with pytest.raises(OSError):
        read(os.path.join(m.mountpoint, "dir", "data.bin"))

    lines = [line for line in m.log_text().splitlines() if BAD_ID in line
             and "dir/data.bin" in line and f"block {BAD} " in line]
    assert lines, m.log_text()


def test_a_corrupt_block_restored_on_the_server_reads_again(corrupt):
    m, restore = corrupt
    path = os.path.join(m.mountpoint, "dir", "data.bin")
    with pytest.raises(OSError):
        read(path)

    restore()

    assert read(path) == DATA
