"""Fixtures every integration suite shares: a real cloudfsd and its users."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cfs_postgres  # noqa: E402
import cfs_rgw  # noqa: E402
import cfs_s3  # noqa: E402
import cfs_server  # noqa: E402
from cfs_server import Server, need, tls_files  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--blocks", choices=("dir", "s3"),
                     default=os.environ.get("CFS_TEST_BLOCKS", "dir"),
                     help="where the servers keep blocks: their data directory (dir), "
                          "or an S3 server started for the session (s3)")


def pytest_configure(config):
    config.addinivalue_line("markers", "dir_blocks_only(what): looks at block files, "
                            "skipped with --blocks s3")
    config.addinivalue_line(
        "markers", "embedded_only(reason): a test of the embedded store's data directory "
        "itself, skipped when the suite runs on PostgreSQL (CLOUDFS_TEST_META)")
    cfs_server.S3_BLOCKS = config.getoption("blocks") == "s3"


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("dir_blocks_only")
    if mark and cfs_server.S3_BLOCKS:
        pytest.skip(f"{mark.args[0]}: blocks are in S3 in this run")
    mark = item.get_closest_marker("embedded_only")
    if mark and cfs_postgres.ENGINE == "postgresql":
        pytest.skip("embedded store only: " + mark.args[0])


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """One S3 server (cfs_s3.S3Server) for the whole session."""
    need(cfs_s3.missing())
    d = tmp_path_factory.mktemp("s3")
    s = cfs_s3.S3Server(d / "data", d / "s3rver.log").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """One Ceph radosgw (cfs_rgw.RadosGateway), which checks signatures,
    for the whole session."""
    need(cfs_rgw.missing())
    g = cfs_rgw.RadosGateway(tmp_path_factory.mktemp("rgw"))
    try:
        yield g.start()
    finally:
        g.stop()


@pytest.fixture(scope="session", autouse=True)
def s3_blocks(request):
    """With --blocks s3, every Server keeps its blocks in the session's
    S3 server (cfs_server.S3)."""
    if cfs_server.S3_BLOCKS:
        cfs_server.S3 = request.getfixturevalue("s3")


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """An empty configuration directory ($XDG_CONFIG_HOME) for each test:
    the configuration of whoever runs the tests never changes what a
    mount.cloudfs or cloudfs they start does. Returns its cloudfs/."""
    d = tmp_path / "xdg-config" / "cloudfs"
    d.mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(d.parent))
    return d


@pytest.fixture
def server(tmp_path):
    """A running cloudfsd on an empty data directory; stopped (and checked
    for a clean exit) after the test, unless the test stopped it."""
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start()
    yield s
    s.stop()


@pytest.fixture
def tls(tmp_path):
    """A private CA and a certificate it signed for 127.0.0.1, with its
    key (cfs_server.tls_files)."""
    return tls_files(tmp_path / "tls")


@pytest.fixture
def tls_server(tmp_path, tls):
    """A running cloudfsd serving https with TLS's certificate, whose
    clients trust TLS's CA; stopped and checked as server is."""
    s = Server(tmp_path / "tls-data", tmp_path / "cloudfsd-tls.log")
    s.ca = tls.ca
    s.start(options=["--tls-cert", tls.cert, "--tls-key", tls.key])
    yield s
    s.stop()


@pytest.fixture
def alice(server):
    return server.user("alice")


@pytest.fixture
def bob(server):
    return server.user("bob")


@pytest.fixture
def carol(server):
    return server.user("carol")


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs, with 8 MiB of ballast to free up later."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)],
                   check=True)
    with open(disk / "ballast", "wb") as f:
        f.write(b"\0" * (8 << 20))
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)
