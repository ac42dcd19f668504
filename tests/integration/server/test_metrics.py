"""GET /metrics: Prometheus text (0.0.4) that anyone may read, whose
counters move by what the server did, and which names no user and no path."""

import re
import time

from cfs_server import Client, block_id, file_op, waiting_longpoll

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(?:,|$)')


def parse(text):
    """The samples of exposition TEXT as {(name, frozenset(labels)): value},
    and the declared types as {name: type}; any other line fails."""
    samples, types = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            assert name not in types, f"{name} typed twice"
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels, value = m.groups()
        pairs = LABEL.findall(labels or "")
        assert "".join(f'{k}="{v}",' for k, v in pairs).rstrip(",") == (labels or ""), line
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, f"{name} has no # TYPE"
        key = (name, frozenset(pairs))
        assert key not in samples, f"{line!r} twice"
        samples[key] = float(value)
    return samples, types


def scrape(server):
    r = Client(server.url).get("/metrics")  # no token
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.body.decode()


def scrape_until(server, ok, within=5):
    """The samples once OK(samples) holds, or after WITHIN seconds: a
    request is counted once its answer is sent whole, which may be a
    moment after its client has read it."""
    deadline = time.monotonic() + within
    while True:
        samples, _ = parse(scrape(server))
        if ok(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples, route, status, method):
    return value(samples, "cloudfsd_http_requests_total",
                 method=method, route=route, status=str(status))


def test_metrics_parse_and_need_no_token(server):
    samples, types = parse(scrape(server))
    assert types["cloudfsd_http_requests_total"] == "counter"
    assert types["cloudfsd_longpolls_held"] == "gauge"
    assert types["cloudfsd_blockstore_seconds"] == "histogram"
    assert value(samples, "cloudfsd_commits_total") == 0


def test_a_commit_moves_the_counters_by_what_it_did(server, alice):
    data = b"x" * 5_000_000  # two blocks
    before, _ = parse(scrape(server))
    alice.write_file(alice.root_ns, "secret-name.txt", data)
    alice.commit_ok(alice.root_ns, file_op("a"), file_op("b"))
    after = scrape_until(server, lambda now: (
        requests(now, "/meta/ns/{ns}/commit", 200, "POST")
        - requests(before, "/meta/ns/{ns}/commit", 200, "POST") >= 3
        and requests(now, "/block/{block}", 200, "PUT")
        - requests(before, "/block/{block}", 200, "PUT") >= 2))

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # write_file commits twice: first answered need_blocks, then committed.
    assert moved("cloudfsd_commits_total") == 3
    assert moved("cloudfsd_committed_operations_total") == 3
    assert moved("cloudfsd_blocks_uploaded_total") == 2
    assert moved("cloudfsd_block_upload_bytes_total") == len(data)
    assert (requests(after, "/meta/ns/{ns}/commit", 200, "POST")
            - requests(before, "/meta/ns/{ns}/commit", 200, "POST")) == 3
    assert (requests(after, "/block/{block}", 200, "PUT")
            - requests(before, "/block/{block}", 200, "PUT")) == 2
    assert moved("cloudfsd_blockstore_seconds_count", op="write") == 2
    # The scrape before is counted once it is answered.
    assert requests(after, "/metrics", 200, "GET") >= 1


def test_refused_and_unknown_requests_are_counted_by_route_not_path(server, alice):
    before, _ = parse(scrape(server))
    assert Client(server.url, token="wrong").get("/meta/namespaces").status == 401
    assert alice.get("/no/such/thing").status == 404
    after = scrape_until(server, lambda now: requests(now, "unmatched", 404, "")
                         > requests(before, "unmatched", 404, "")
                         and requests(now, "/meta/namespaces", 401, "GET")
                         > requests(before, "/meta/namespaces", 401, "GET"))
    assert (requests(after, "/meta/namespaces", 401, "GET")
            - requests(before, "/meta/namespaces", 401, "GET")) == 1
    assert (requests(after, "unmatched", 404, "")
            - requests(before, "unmatched", 404, "")) == 1


def test_a_waiting_longpoll_is_held(server, alice):
    alice.commit_ok(alice.root_ns, file_op("a"))
    with waiting_longpoll(alice, {alice.root_ns: 1}, timeout=2) as poll:
        samples, _ = parse(scrape(server))
        assert value(samples, "cloudfsd_longpolls_held") == 1
        assert value(samples, "cloudfsd_connections_open") >= 2
        poll.result(timeout=10)
    samples = scrape_until(server, lambda now: value(now, "cloudfsd_longpolls_held") == 0)
    assert value(samples, "cloudfsd_longpolls_held") == 0


def test_metrics_name_no_user_and_no_path(server, alice):
    data = b"private bytes"
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "dir"})
    alice.write_file(alice.root_ns, "dir/secret-name.txt", data)
    alice.get(f"/meta/ns/{alice.root_ns}/list")
    alice.download(block_id(data))
    text = scrape(server)
    for secret in ("alice", "secret-name", "dir/", alice.token, block_id(data),
                   f"/meta/ns/{alice.root_ns}/"):
        assert secret not in text
