"""A full disk on the server: what does not fit is refused with 507
storage_full, and nothing already stored is damaged."""

import os

from cfs_server import Server, assert_error, block_id, dir_blocks_only, file_op, fill

MiB = 1 << 20


@dir_blocks_only("fills the disk the block files are on")
def test_a_full_disk_refuses_with_507_and_damages_nothing(small_disk, tmp_path):
    server = Server(small_disk / "data", tmp_path / "cloudfsd.log").start()
    try:
        alice = server.user("alice")
        kept = os.urandom(MiB)
        alice.write_file(alice.root_ns, "kept.bin", kept)

        refused = None
        for _ in range(16):
            r = alice.upload(os.urandom(4 * MiB))
            if r.status != 200:
                refused = r
                break
        assert refused is not None, "the 32 MiB disk never filled"
        assert_error(refused, 507, "storage_full")
        assert os.listdir(small_disk / "data" / "tmp") == []

        # With not a byte left, a commit either fits in what the store
        # has already allocated, or is refused and leaves no trace.
        fill(small_disk / "filler")
        for i in range(20):
            r = alice.commit(alice.root_ns, {"op": "dir", "path": f"d{i}"})
            listed = f"d{i}" in alice.snapshot(alice.root_ns)[0]
            if r.status == 200:
                assert listed, r
            else:
                assert_error(r, 507, "storage_full")
                assert not listed

        snap, _ = alice.snapshot(alice.root_ns)
        assert snap["kept.bin"]["blocks"] == [block_id(kept)]
        r = alice.get(f"/block/{block_id(kept)}")
        assert r.status == 200 and r.body == kept

        os.remove(small_disk / "filler")
        os.remove(small_disk / "ballast")
        more = os.urandom(2 * MiB)
        assert alice.upload(more).status == 200
        alice.commit_ok(alice.root_ns, file_op("more.bin", more))
    finally:
        server.stop()
