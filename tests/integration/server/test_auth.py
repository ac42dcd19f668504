"""Health check, bearer tokens, methods and routes."""

import pytest

from cfs_server import assert_error, block_id, file_op, unchanged

HELLO = block_id(b"hello")


@pytest.fixture(scope="module")
def alice(module_server):
    return module_server.user("alice")


def endpoints(ns):
    """(method, path, body) of every endpoint but the health check, each
    with a body that would succeed for the owner of NS."""
    return [
        ("GET", "/meta/namespaces", None),
        ("GET", f"/meta/ns/{ns}/list?cursor=0", None),
        ("POST", f"/meta/ns/{ns}/commit", {"ops": [file_op("new.txt")]}),
        ("POST", "/meta/longpoll", {"cursors": [{"ns": ns, "cursor": 0}], "timeout": 0}),
        ("POST", f"/meta/ns/{ns}/share", {"path": "dir"}),
        ("POST", f"/meta/ns/{ns}/invite", {"user": "alice"}),
        ("POST", f"/meta/ns/{ns}/remove", {"user": "alice"}),
        ("POST", f"/meta/ns/{ns}/leave", {}),
        ("GET", f"/meta/ns/{ns}/members", None),
        ("POST", "/block/need", {"blocks": [HELLO]}),
        ("PUT", f"/block/{HELLO}", b"hello"),
        ("GET", f"/block/{HELLO}", None),
    ]


def test_the_health_check_needs_no_token(module_server):
    r = module_server.client().get("/")
    assert r.status == 200, r
    assert r.json == {"name": "cloudfsd", "version": "0.1.0", "protocol": 1}


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer nonsense",
    "Bearer " + "0" * 64,
    "Bearer ",
    "Basic YWxpY2U6c2VjcmV0",
], ids=["missing", "garbage", "unknown", "empty", "basic"])
def test_every_endpoint_refuses_a_bad_token_with_401_and_changes_nothing(
        module_server, alice, authorization):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "dir"})
    stranger = module_server.client()
    headers = {} if authorization is None else {"Authorization": authorization}
    with unchanged(alice, alice.root_ns):
        for method, path, body in endpoints(alice.root_ns):
            r = stranger.request(method, path, body, headers=headers)
            assert_error(r, 401, "unauthorized")
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (path, r.headers)


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/", "GET"),
    ("DELETE", "/", "GET"),
    ("POST", "/meta/namespaces", "GET"),
    ("POST", "/meta/ns/{ns}/list", "GET"),
    ("GET", "/meta/ns/{ns}/commit", "POST"),
    ("PUT", "/meta/ns/{ns}/commit", "POST"),
    ("GET", "/meta/longpoll", "POST"),
    ("GET", "/meta/ns/{ns}/share", "POST"),
    ("GET", "/meta/ns/{ns}/invite", "POST"),
    ("GET", "/meta/ns/{ns}/remove", "POST"),
    ("GET", "/meta/ns/{ns}/leave", "POST"),
    ("POST", "/meta/ns/{ns}/members", "GET"),
    ("GET", "/block/need", "POST"),
    ("DELETE", f"/block/{HELLO}", "GET, PUT"),
    ("POST", f"/block/{HELLO}", "GET, PUT"),
])
def test_a_wrong_method_is_405_with_an_allow_header(alice, method, path, allowed):
    with unchanged(alice, alice.root_ns):
        r = alice.request(method, path.format(ns=alice.root_ns), b"{}")
        assert_error(r, 405, "method_not_allowed", method)
        got = {m.strip() for m in r.headers.get("Allow", "").split(",")}
        assert got == set(allowed.split(", ")), r.headers


@pytest.mark.parametrize("path", [
    "/nope",
    "/meta",
    "/meta/",
    "/meta/nope",
    "/meta/ns",
    "/meta/ns/{ns}",
    "/meta/ns/{ns}/nope",
    "/meta/ns/{ns}/list/more",
    "/meta/ns/abc/list",
    "/meta/ns/-1/list",
    "/meta/ns/0/list",
    "/block",
    "/blocks/" + HELLO,
    "/block/" + HELLO + "/more",
])
def test_an_unknown_route_is_404(alice, path):
    r = alice.get(path.format(ns=alice.root_ns))
    assert_error(r, 404, "not_found")
