import pytest

from cfs_server import Server


@pytest.fixture
def server(tmp_path):
    """A running cloudfsd on an empty data directory; stopped (and checked
    for a clean exit) after the test."""
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start()
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


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One cloudfsd for a whole module of tests that each check they
    changed nothing (tables of refused requests)."""
    d = tmp_path_factory.mktemp("server")
    s = Server(d / "data", d / "cloudfsd.log").start()
    yield s
    s.stop()
