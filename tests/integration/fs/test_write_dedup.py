"""The uploader sends only the blocks the server does not hold for this
user, measured in bytes uploaded (the PUT /block lines of the server's
log, each block's size known from the bytes the test wrote): a 1-byte edit
of a large file uploads one 4 MiB block, a copy of content the server has
uploads none, and renames and deletes upload nothing.

The large file is 64 MiB (16 blocks; the issue says 1 GiB, which takes
too long to put on a server under ASan: what is measured does not depend
on the size). The mounts use settle=0."""

import os
import shutil

import pytest

from cfs_fs import (Dir, File, MiB, block_ids, log_size, payload, put_tree, read, until,
                    until_server_holds, uploaded_blocks, uploaded_bytes)
from cfs_server import BLOCK_SIZE, block_id, split_blocks

BIG = 64 * MiB + 100


def sizes_of(*contents):
    """{block id: its size} for every block of CONTENTS."""
    return {block_id(b): len(b) for data in contents for b in split_blocks(data)}


@pytest.fixture(scope="module")
def big():
    data = payload(BIG, "big")
    print(f"the large file: {len(data)} bytes ({len(data) // BLOCK_SIZE + 1} blocks)")
    return data


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_one_byte_edit_of_a_large_file_uploads_exactly_one_block(
        server, alice, mount, big, where):
    alice.write_file(alice.root_ns, "big.bin", big)
    m = mount(alice, settle=0)
    at = {"middle": BIG // 2 + 12345, "end": BIG}[where]  # an overwrite, or an append
    new = big[:at] + b"\xff" + big[at + 1:] if where == "middle" else big + b"\xff"
    since = log_size(server)

    with open(os.path.join(m.mountpoint, "big.bin"), "r+b") as f:
        f.seek(at)
        f.write(b"\xff")

    until_server_holds(alice, {"big.bin": new}, "the edit")
    changed = [b for b in block_ids(new) if b not in block_ids(big)]
    assert uploaded_blocks(server, since) == changed and len(changed) == 1
    print(f"a 1-byte edit at the {where} uploaded "
          f"{uploaded_bytes(server, since, sizes_of(new))} bytes")
    if where == "middle":
        assert uploaded_bytes(server, since, sizes_of(new)) == BLOCK_SIZE


def test_a_copy_within_the_mount_of_content_the_server_has_uploads_no_block(
        server, alice, mount):
    data = payload(3 * BLOCK_SIZE + 777, "copied")
    alice.write_file(alice.root_ns, "a.bin", data)
    m = mount(alice, settle=0)
    since = log_size(server)

    shutil.copyfile(os.path.join(m.mountpoint, "a.bin"), os.path.join(m.mountpoint, "b.bin"))

    until_server_holds(alice, {"b.bin": data}, "the copy")
    assert uploaded_blocks(server, since) == []


def test_the_same_bytes_written_under_new_names_upload_no_block(server, alice, mount):
    data = payload(2 * BLOCK_SIZE + 5, "again")
    m = mount(alice, settle=0)
    with open(os.path.join(m.mountpoint, "first.bin"), "wb") as f:
        f.write(data)
    until_server_holds(alice, {"first.bin": data}, "the first file")
    assert sorted(uploaded_blocks(server, 0)) == sorted(block_ids(data))
    since = log_size(server)

    os.mkdir(os.path.join(m.mountpoint, "d"))
    for name in ("second.bin", "d/third.bin"):
        with open(os.path.join(m.mountpoint, name), "wb") as f:
            f.write(data)

    until_server_holds(alice, {"second.bin": data, "d/third.bin": data}, "the copies")
    assert uploaded_blocks(server, since) == []


def test_content_only_another_user_has_is_uploaded_all_the_same(server, alice, bob, mount):
    # The server never lets knowing a block's id stand for having it.
    data = payload(BLOCK_SIZE + 9, "bob's")
    bob.write_file(bob.root_ns, "bobs.bin", data)
    m = mount(alice, settle=0)
    since = log_size(server)

    with open(os.path.join(m.mountpoint, "mine.bin"), "wb") as f:
        f.write(data)

    until_server_holds(alice, {"mine.bin": data}, "alice's file")
    assert sorted(uploaded_blocks(server, since)) == sorted(block_ids(data))


def test_renames_moves_and_deletes_upload_nothing_and_keep_the_node(server, alice, mount):
    tree = {"big.bin": File(payload(2 * BLOCK_SIZE + 1, "big")), "d": Dir(),
            "d/a.bin": File(payload(MiB, "a")), "d/b.bin": File(payload(MiB, "b")),
            "gone.bin": File(payload(MiB, "gone")), "e": Dir()}
    put_tree(alice, alice.root_ns, tree)
    nodes = {p: e["node"] for p, e in alice.snapshot(alice.root_ns)[0].items()}
    m = mount(alice, settle=0)
    since = log_size(server)

    os.rename(os.path.join(m.mountpoint, "big.bin"), os.path.join(m.mountpoint, "e/big.bin"))
    os.rename(os.path.join(m.mountpoint, "d"), os.path.join(m.mountpoint, "e/d2"))
    os.unlink(os.path.join(m.mountpoint, "gone.bin"))

    until(lambda: sorted(alice.snapshot(alice.root_ns)[0]) ==
          ["e", "e/big.bin", "e/d2", "e/d2/a.bin", "e/d2/b.bin"], within=30,
          what="the renames")
    assert uploaded_blocks(server, since) == []
    after = {p: e["node"] for p, e in alice.snapshot(alice.root_ns)[0].items()}
    assert [after["e/big.bin"], after["e/d2"], after["e/d2/a.bin"]] == \
        [nodes["big.bin"], nodes["d"], nodes["d/a.bin"]]
    assert read(os.path.join(m.mountpoint, "e/d2/b.bin")) == tree["d/b.bin"].data
