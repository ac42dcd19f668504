"""Every malformed request gets its 4xx and a JSON error naming what was
wrong, and changes nothing: the namespaces list the same afterwards and
the server still serves."""

import hashlib
import json
import pytest

from cfs_server import assert_error, block_id, file_op, unchanged

MiB = 1 << 20
KEEP = block_id(b"keep")
GOOD_FILE = {"op": "file", "path": "new", "size": 4, "blocks": [KEEP]}


def f(**fields):
    """The good file operation with FIELDS changed (None drops a field)."""
    op = {**GOOD_FILE, **fields}
    return {k: v for k, v in op.items() if v is not None}


def ops(*o):
    return {"ops": list(o)}


@pytest.fixture(scope="module")
def people(module_server):
    """alice, with a few nodes and a shared folder, and bob."""
    a, b = module_server.user("alice"), module_server.user("bob")
    a.write_file(a.root_ns, "keep.txt", b"keep")
    a.commit_ok(a.root_ns, {"op": "dir", "path": "d"}, file_op("d/x"),
                {"op": "dir", "path": "shared"})
    a.shared_ns = a.post(f"/meta/ns/{a.root_ns}/share", {"path": "shared"}).json["ns"]
    b.commit_ok(b.root_ns, {"op": "dir", "path": "bobs"})
    return a, b


@pytest.fixture
def alice(people):
    return people[0]


@pytest.fixture
def bob(people):
    return people[1]


def assert_refused(client, method, path, body, status, codes, *words):
    """The request is answered STATUS with one of CODES, its message names
    WORDS, and neither of the caller's namespaces changed."""
    codes = (codes,) if isinstance(codes, str) else codes
    with unchanged(client, client.root_ns, client.shared_ns):
        r = client.request(method, path, body)
        assert r.status == status and r.error_code in codes, r
        assert_error(r, status, r.error_code, *words)


def commit_refused(client, body, status, codes, *words):
    assert_refused(client, "POST", f"/meta/ns/{client.root_ns}/commit", body,
                   status, codes, *words)


# -- the body is not a JSON object ---------------------------------------

@pytest.mark.parametrize("body", [
    b"{ops", b'{"ops": [', b"[]", b'"ops"', b"null", b"5", b'{"ops": []} {}',
    b'{"ops": [{"op": "dir", "path": "\xff"}]}',
    b'{"ops": [{"op": "dir", "path": "a\xc0\xafb"}]}',
    b'{"ops": [{"op": "dir", "path": "\xed\xa0\x80"}]}',
    b'{"ops": [{"op": "dir", "path": "caf\xe9"}]}',
], ids=["syntax", "truncated", "array", "string", "null", "number", "trailing-garbage",
        "invalid-utf8", "overlong-utf8", "utf8-encoded-surrogate", "latin1"])
def test_a_body_that_is_not_a_json_object_is_bad_json(alice, body):
    commit_refused(alice, body, 400, "bad_json")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "a\\ud83d"])
def test_a_lone_surrogate_escape_is_refused(alice, escape):
    body = b'{"ops": [{"op": "dir", "path": "%s"}]}' % escape.encode()
    commit_refused(alice, body, 400, ("bad_json", "bad_path"))


@pytest.mark.parametrize("path", [
    "/meta/longpoll", "/block/need", "/meta/ns/{shared}/invite", "/meta/ns/{shared}/remove",
    "/meta/ns/{root}/share"])
def test_every_post_endpoint_refuses_a_body_that_is_not_json(alice, path):
    path = path.format(root=alice.root_ns, shared=alice.shared_ns)
    assert_refused(alice, "POST", path, b'{"user": ', 400, "bad_json")
    assert_refused(alice, "POST", path, b"[1, 2]", 400, "bad_json")


# -- missing, mistyped and oversized fields --------------------------------

@pytest.mark.parametrize("body, words", [
    (b"", ["ops"]),
    ({}, ["ops"]),
    ({"ops": {}}, ["ops"]),
    ({"ops": "dir"}, ["ops"]),
    (ops(5), ["0"]),
    (ops(f(op=None)), ["op"]),
    (ops(f(op="chmod")), ["op"]),
    (ops(f(op=1)), ["op"]),
    (ops(f(path=None)), ["path"]),
    (ops(f(path=5)), ["path"]),
    (ops(f(size=None)), ["size"]),
    (ops(f(size=4.0)), ["size"]),
    (b'{"ops": [{"op": "file", "path": "new", "size": 4e0, "blocks": ["%s"]}]}'
     % KEEP.encode(), ["size"]),
    (ops(f(size="4")), ["size"]),
    (ops(f(size=-1)), ["size"]),
    (ops(f(size=True)), ["size"]),
    (ops(f(blocks=None)), ["blocks"]),
    (ops(f(blocks=KEEP)), ["blocks"]),
    (ops(f(size=4, blocks=[])), []),
    (ops(f(size=4, blocks=[KEEP, KEEP])), []),
    (ops(f(size=0, blocks=[KEEP])), []),
    (ops(f(size=4 * MiB + 1, blocks=[KEEP])), []),
    (ops(f(base_jid="0")), ["base_jid"]),
    (ops(f(base_jid=0.0)), ["base_jid"]),
    (ops(f(base_jid=-1)), ["base_jid"]),
    (ops(f(mode="0644")), ["mode"]),
    (ops(f(mode=420.0)), ["mode"]),
    (ops(f(mode=-1)), ["mode"]),
    (ops(f(mtime_ns="1")), ["mtime_ns"]),
    (ops(f(mtime_ns=1.5)), ["mtime_ns"]),
    (ops({"op": "delete", "path": "d", "recursive": "yes"}), ["recursive"]),
    (ops({"op": "delete", "path": "d", "recursive": 1}), ["recursive"]),
    (ops({"op": "delete", "path": "d", "base_jid": "3"}), ["base_jid"]),
    (ops({"op": "move", "path": "keep.txt", "to": "d/x", "replace": 1}), ["replace"]),
    (ops({"op": "move", "path": "keep.txt"}), ["to"]),
    (ops({"op": "move", "path": "keep.txt", "to": 7}), ["to"]),
    (ops({"op": "dir", "path": "e", "mode": "755"}), ["mode"]),
    (ops({"op": "symlink", "path": "l"}), ["target"]),
    (ops({"op": "symlink", "path": "l", "target": 7}), ["target"]),
    (ops({"op": "symlink", "path": "l", "target": ""}), ["target"]),
    (ops({"op": "symlink", "path": "l", "target": "t" * 4097}), ["target"]),
    (ops({"op": "symlink", "path": "l", "target": "a\u0000b"}), ["target"]),
    (ops({"op": "chardev", "path": "c"}), ["target"]),
    (ops({"op": "chardev", "path": "c", "target": "1"}), ["target", "MAJOR:MINOR"]),
    (ops({"op": "blockdev", "path": "c", "target": "1:-3"}), ["target", "MAJOR:MINOR"]),
    (ops({"op": "blockdev", "path": "c", "target": "1:4294967296"}), ["target"]),
    (ops({"op": "chardev", "path": "c", "target": " 1:3"}), ["target"]),
    (ops({"op": "chardev", "path": "c", "target": "1:3\u0000"}), ["target"]),
    (ops({"op": "fifo", "path": "p", "mode": "600"}), ["mode"]),
    (ops({"op": "pipe", "path": "p"}), ["op", "fifo"]),
], ids=lambda v: None)
def test_a_missing_or_mistyped_field_is_bad_field(alice, body, words):
    commit_refused(alice, body, 400, "bad_field", *words)


def test_a_file_over_256_gib_is_refused(alice):
    n = 65537
    body = ops(f(size=n * 4 * MiB, blocks=[KEEP] * n))
    commit_refused(alice, body, 400, "bad_field", "size")


def test_a_malformed_block_id_in_a_commit_is_bad_block(alice):
    for block in ("xyz", KEEP.upper(), KEEP[:-1], KEEP + "0", "g" * 64):
        commit_refused(alice, ops(f(blocks=[block])), 400, "bad_block")
    commit_refused(alice, ops(f(blocks=[5])), 400, ("bad_block", "bad_field"))


# -- names and paths -----------------------------------------------------

BAD_PATHS = {
    "dotdot": "..",
    "dot": ".",
    "dotdot-inside": "d/../keep.txt",
    "dot-inside": "d/./x",
    "empty-component": "d//x",
    "leading-slash": "/d",
    "trailing-slash": "d/",
    "root": "/",
    "empty": "",
    "nul": "d/a\u0000b",
    "256-byte-name": "n" * 256,
    "256-byte-utf8-name": "\u00e9" * 128,
    "4097-byte-path": "/".join(["x" * 240] * 16 + ["x" * 241]),
}


def ops_at(path):
    """One operation of each kind naming PATH."""
    return [{"op": "dir", "path": path}, f(path=path),
            {"op": "symlink", "path": path, "target": "t"},
            {"op": "delete", "path": path},
            {"op": "move", "path": path, "to": "moved"},
            {"op": "move", "path": "keep.txt", "to": path}]


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_a_bad_path_is_bad_path_in_every_operation(alice, path):
    for op in ops_at(path):
        field = "to" if op.get("to") == path else "path"
        commit_refused(alice, ops(op), 400, "bad_path", field)


@pytest.mark.parametrize("path", ["..", "a//b", "/shared", "n" * 256])
def test_a_bad_path_to_share_is_bad_path(alice, path):
    assert_refused(alice, "POST", f"/meta/ns/{alice.root_ns}/share", {"path": path},
                   400, "bad_path", "path")


# -- batches and sizes ---------------------------------------------------

def test_a_malformed_operation_in_a_batch_refuses_the_whole_batch(alice):
    body = ops(file_op("first"), {"op": "dir", "path": "second"}, {"op": "dir"},
               {"op": "dir", "path": "fourth"})
    commit_refused(alice, body, 400, "bad_field", "2")


def test_a_bad_path_late_in_a_batch_refuses_the_whole_batch(alice):
    body = ops(*(file_op(f"f{i}") for i in range(10)), {"op": "dir", "path": "a/../b"})
    commit_refused(alice, body, 400, "bad_path", "10")


def test_a_batch_of_1001_operations_is_too_large(alice):
    body = ops(*(file_op(f"f{i}") for i in range(1001)))
    commit_refused(alice, body, 413, "too_large")


COMMIT_CAP = 8 * MiB
JSON_CAP = 1 * MiB
LONGPOLL_CAP = 64 * 1024


def padded(body, size):
    """BODY with a padding field that makes its JSON SIZE bytes long."""
    body = dict(body, padding="")
    body["padding"] = "x" * (size - len(json.dumps(body).encode()))
    assert len(json.dumps(body).encode()) == size
    return body


def test_a_commit_over_8_mib_is_too_large(alice):
    commit_refused(alice, padded(ops(file_op("f")), COMMIT_CAP + 1), 413,
                   "too_large")


def test_a_commit_of_8_mib_is_read(alice):
    body = padded(ops({"op": "dir", "path": "d"}), COMMIT_CAP)
    r = alice.post(f"/meta/ns/{alice.root_ns}/commit", body)
    assert r.status == 200 and r.json["results"][0]["status"] == "committed", r


def test_a_commit_of_the_largest_file_under_the_longest_path_fits(alice):
    """The commit cap leaves room for 65536 block ids (a 256 GiB file)."""
    path = "/".join(["d" * 250] * 16)[:4000]
    blocks = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(65536)]
    body = ops({"op": "file", "path": path, "size": 65536 * 4 * MiB,
                "blocks": blocks})
    assert len(json.dumps(body).encode()) < COMMIT_CAP
    r = alice.post(f"/meta/ns/{alice.root_ns}/commit", body)
    assert r.status == 200, r
    assert r.json["results"][0]["status"] in ("need_blocks", "error"), r
    assert r.json["results"][0].get("error", {}).get("code") != "too_large", r


@pytest.mark.parametrize("path,cap", [
    ("/meta/longpoll", LONGPOLL_CAP),
    ("/block/need", JSON_CAP),
    ("/meta/ns/{shared}/invite", JSON_CAP),
    ("/meta/ns/{shared}/share", JSON_CAP),
])
def test_each_json_endpoint_takes_its_cap_and_not_a_byte_more(alice, path, cap):
    path = path.format(shared=alice.shared_ns)
    assert_refused(alice, "POST", path, padded({}, cap + 1), 413, "too_large",
                   str(cap))
    r = alice.request("POST", path, padded({}, cap))
    assert r.status != 413, r


# -- namespaces ----------------------------------------------------------

NS_REQUESTS = [
    ("GET", "/meta/ns/{ns}/list", None),
    ("GET", "/meta/ns/{ns}/list?cursor=1", None),
    ("POST", "/meta/ns/{ns}/commit", ops({"op": "dir", "path": "intruder"})),
    ("GET", "/meta/ns/{ns}/members", None),
    ("POST", "/meta/ns/{ns}/share", {"path": "bobs"}),
    ("POST", "/meta/ns/{ns}/invite", {"user": "alice"}),
    ("POST", "/meta/ns/{ns}/remove", {"user": "bob"}),
    ("POST", "/meta/ns/{ns}/leave", {}),
    ("POST", "/meta/longpoll", {"cursors": [{"ns": "{ns}", "cursor": 0}], "timeout": 0}),
]


def with_ns(body, ns):
    if body is None or "cursors" not in body:
        return body
    return {**body, "cursors": [{"ns": ns, "cursor": 0}]}


@pytest.mark.parametrize("method, path, body", NS_REQUESTS, ids=lambda v: None)
def test_a_foreign_namespace_and_a_missing_one_get_the_same_not_found(alice, bob, method,
                                                                      path, body):
    answers = []
    with unchanged(bob, bob.root_ns):
        for ns in (bob.root_ns, 999999):
            r = alice.request(method, path.format(ns=ns), with_ns(body, ns))
            assert_error(r, 404, "not_found")
            answers.append((r.status, r.error_code, r.json["error"]["message"].replace(str(ns), "NS")))
    assert answers[0] == answers[1]


# -- cursors, limits and long-poll fields --------------------------------

def longpoll_refused(client, body, status, codes, *words):
    assert_refused(client, "POST", "/meta/longpoll", body, status, codes, *words)


def test_a_cursor_beyond_the_head_is_bad_cursor_in_list_and_longpoll(alice):
    head = alice.head(alice.root_ns)
    assert_refused(alice, "GET", f"/meta/ns/{alice.root_ns}/list?cursor={head + 1}", None,
                   400, "bad_cursor", str(head + 1))
    longpoll_refused(alice, {"cursors": [{"ns": alice.root_ns, "cursor": head + 1}]},
                     400, "bad_cursor", str(head + 1))
    longpoll_refused(alice, {"cursors": [{"ns": alice.shared_ns, "cursor": 0},
                                         {"ns": alice.root_ns, "cursor": 2**53}]},
                     400, "bad_cursor")


@pytest.mark.parametrize("body, words", [
    ({}, ["cursors"]),
    ({"cursors": {}}, ["cursors"]),
    ({"cursors": []}, ["cursors"]),
    ({"cursors": [5]}, []),
    ({"cursors": [{"ns": "{root}"}]}, ["cursor"]),
    ({"cursors": [{"cursor": 0}]}, ["ns"]),
    ({"cursors": [{"ns": "{root}", "cursor": "0"}]}, ["cursor"]),
    ({"cursors": [{"ns": "{root}", "cursor": 0.0}]}, ["cursor"]),
    ({"cursors": [{"ns": "{root}", "cursor": -1}]}, ["cursor"]),
    ({"cursors": [{"ns": "1", "cursor": 0}]}, ["ns"]),
    ({"cursors": [{"ns": "{root}", "cursor": 0}, {"ns": "{root}", "cursor": 1}]}, []),
    ({"cursors": [{"ns": "{root}", "cursor": 0}], "timeout": 301}, ["timeout"]),
    ({"cursors": [{"ns": "{root}", "cursor": 0}], "timeout": -1}, ["timeout"]),
    ({"cursors": [{"ns": "{root}", "cursor": 0}], "timeout": 1.5}, ["timeout"]),
    ({"cursors": [{"ns": "{root}", "cursor": 0}], "timeout": "1"}, ["timeout"]),
], ids=lambda v: None)
def test_a_malformed_longpoll_is_bad_field(alice, body, words):
    def fill(v):
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return alice.root_ns if v == "{root}" else v
    longpoll_refused(alice, fill(body), 400, "bad_field", *words)


def test_a_longpoll_on_1001_namespaces_is_refused(alice):
    cursors = [{"ns": alice.root_ns, "cursor": 0}] + \
              [{"ns": 1000000 + i, "cursor": 0} for i in range(1000)]
    r = alice.post("/meta/longpoll", {"cursors": cursors, "timeout": 0})
    assert (r.status, r.error_code) in ((400, "bad_field"), (413, "too_large")), r


@pytest.mark.parametrize("body, words", [
    ({}, ["blocks"]), ({"blocks": KEEP}, ["blocks"]), ({"blocks": {}}, ["blocks"]),
], ids=["missing", "string", "object"])
def test_a_malformed_need_is_bad_field(alice, body, words):
    assert_refused(alice, "POST", "/block/need", body, 400, "bad_field", *words)


@pytest.mark.parametrize("endpoint, body, words", [
    ("share", {}, ["path"]),
    ("share", {"path": 5}, ["path"]),
    ("invite", {}, ["user"]),
    ("invite", {"user": 5}, ["user"]),
    ("remove", {}, ["user"]),
    ("remove", {"user": ["bob"]}, ["user"]),
])
def test_a_malformed_share_request_is_bad_field(alice, endpoint, body, words):
    ns = alice.root_ns if endpoint == "share" else alice.shared_ns
    assert_refused(alice, "POST", f"/meta/ns/{ns}/{endpoint}", body, 400, "bad_field", *words)


# -- numbers in the query string -----------------------------------------

BAD_NUMBERS = {
    "2^63": str(2**63),
    "20 digits": "99999999999999999999",
    "2^64": str(2**64),
    "negative": "-1",
    "plus sign": "%2B5",
    "leading space": "%205",
    "trailing space": "5%20",
    "empty": "",
    "hex": "0x10",
    "exponent": "1e3",
    "fraction": "1.0",
    "letters": "five",
}


@pytest.mark.parametrize("arg", ["cursor", "limit", "as_of", "at"])
@pytest.mark.parametrize("value", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_a_malformed_or_out_of_range_number_in_a_listing_query_is_bad_field(
        alice, arg, value):
    assert_refused(alice, "GET", f"/meta/ns/{alice.root_ns}/list?{arg}={value}", None,
                   400, "bad_field", f"'{arg}'")


def test_the_largest_cursor_is_read_as_itself_not_clamped(alice):
    """2^63 - 1 parses (and is beyond the head); 2^63 is refused as a number,
    where it used to be clamped to 2^63 - 1."""
    assert_refused(alice, "GET", f"/meta/ns/{alice.root_ns}/list?cursor={2**63 - 1}", None,
                   400, "bad_cursor", str(2**63 - 1))
    r = alice.get(f"/meta/ns/{alice.root_ns}/list?cursor={2**63}")
    assert_error(r, 400, "bad_field", "'cursor'", str(2**63))


def test_a_longpoll_cursor_beyond_int64_is_refused_not_clamped(alice):
    body = ('{"cursors": [{"ns": %d, "cursor": %d}], "timeout": 0}'
            % (alice.root_ns, 2**63)).encode()
    r = alice.post("/meta/longpoll", body, headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.error_code in ("bad_json", "bad_field"), r
