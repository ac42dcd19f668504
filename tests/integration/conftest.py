"""Fixtures every integration suite shares: a real cloudfsd and its users."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cfs_postgres  # noqa: E402
from cfs_server import Server, tls_files  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "embedded_only(reason): a test of the embedded store's data directory "
        "itself, skipped when the suite runs on PostgreSQL (CLOUDFS_TEST_META)")


def pytest_collection_modifyitems(config, items):
    if cfs_postgres.ENGINE != "postgresql":
        return
    for item in items:
        mark = item.get_closest_marker("embedded_only")
        if mark:
            item.add_marker(pytest.mark.skip(reason="embedded store only: " + mark.args[0]))


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
