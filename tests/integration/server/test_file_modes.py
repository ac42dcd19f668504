"""Everything cloudfsd keeps under its data directory is its own: files
are made 0600 and folders 0700 whatever the umask, the store's SQLite
files (-wal, -shm) included (cloudfsd(8), FILES)."""

import os
import stat

import pytest

from cfs_server import Server, dir_blocks_only, file_op


def modes_under(top):
    """{path relative to TOP: permission bits} of TOP and all below it."""
    modes = {".": stat.S_IMODE(os.lstat(top).st_mode)}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            modes[os.path.relpath(p, top)] = stat.S_IMODE(os.lstat(p).st_mode)
    return modes


def assert_private(top):
    modes = modes_under(top)
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o700 if os.path.isdir(os.path.join(top, p)) else 0o600)}
    assert not wrong, f"not 0600 (files) or 0700 (folders): {wrong}"
    return modes


@dir_blocks_only("checks the modes of block files")
@pytest.mark.embedded_only("its metadata file meta.db")
def test_a_fresh_data_directory_is_private_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start()
        alice = s.user("alice")
        alice.write_file(alice.root_ns, "f", b"some bytes" * 1000)
        alice.commit_ok(alice.root_ns, file_op("g"))
        running = assert_private(s.data_dir)
        for name in ("meta.db", "meta.db-wal", "meta.db-shm", "serve.lock"):
            assert name in running, f"no {name} in {sorted(running)}"
        assert any(len(p) == len("blocks/ab/") + 64 for p in running if p.startswith("blocks/"))
        s.stop()
        assert_private(s.data_dir)
    finally:
        os.umask(old)


@pytest.mark.embedded_only("useradd makes the data directory of an embedded store")
def test_a_data_directory_made_by_useradd_is_private_too(tmp_path):
    old = os.umask(0o022)
    try:
        s = Server(tmp_path / "data", tmp_path / "cloudfsd.log")
        s.useradd("alice")  # before any server ran on it
        assert "meta.db" in assert_private(s.data_dir)
        s.start()
        s.stop()
        assert_private(s.data_dir)
    finally:
        os.umask(old)
