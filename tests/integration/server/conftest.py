import pytest

from cfs_server import Server


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One cloudfsd for a whole module of tests that each check they
    changed nothing (tables of refused requests)."""
    d = tmp_path_factory.mktemp("server")
    s = Server(d / "data", d / "cloudfsd.log").start()
    yield s
    s.stop()
