"""cloudfsd serve --tls-cert FILE --tls-key FILE: HTTPS through
libmicrohttpd, and a certificate or key that would not do refused at
start, naming its file (exit 1), before anything is created."""

import http.client
import os
import ssl
import subprocess

import pytest

from cfs_server import CLOUDFSD, Client, Server, tls_files


def serve(data, *args):
    """cloudfsd serve ARGS on DATA, with a time limit: a refusal must come
    before it would serve."""
    return subprocess.run([CLOUDFSD, "serve", "--data", str(data), "--listen", "127.0.0.1:0",
                           *args], capture_output=True, text=True, timeout=20)


def test_with_a_certificate_and_key_the_server_speaks_https(tls_server):
    alice = tls_server.user("alice")

    assert tls_server.url.startswith("https://127.0.0.1:"), tls_server.url
    alice.write_file(alice.root_ns, "hello.txt", b"over TLS")
    entries, _ = alice.list_all(alice.root_ns)
    assert [e["path"] for e in entries] == ["hello.txt"]
    assert alice.download(entries[0]["blocks"][0]).body == b"over TLS"


def test_an_https_client_that_does_not_trust_the_ca_is_refused(tls_server):
    stranger = Client(tls_server.url)  # the system's CAs only

    with pytest.raises(ssl.SSLCertVerificationError):
        stranger.get("/")


def test_plain_http_to_the_https_port_gets_no_answer(tls_server):
    plain = Client(tls_server.url.replace("https://", "http://"))

    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.get("/")
    assert tls_server.client().get("/").status == 200


def garbage(tmp_path, tls):
    path = tmp_path / "garbage.pem"
    path.write_text("-----BEGIN NOTHING-----\nnot base64\n-----END NOTHING-----\n")
    return str(path)


def another_key(tmp_path, tls):
    return tls_files(tmp_path / "other").key


# What to give as the certificate and as the key (made from the test's
# folder and its tls files), which of the two is at fault, and words of the
# error.
BAD_PAIRS = {
    "missing certificate": (lambda t, f: str(t / "none.pem"), lambda t, f: f.key,
                            "cert", ["cannot read certificate file", "No such file"]),
    "missing key": (lambda t, f: f.cert, lambda t, f: str(t / "none.key"),
                    "key", ["cannot read key file", "No such file"]),
    "key is a directory": (lambda t, f: f.cert, lambda t, f: str(t),
                           "key", ["cannot read key file", "Is a directory"]),
    "garbage certificate": (garbage, lambda t, f: f.key,
                            "cert", ["certificate file", "holds no PEM certificate"]),
    "garbage key": (lambda t, f: f.cert, garbage,
                    "key", ["key file", "holds no unencrypted PEM private key"]),
    "key given as certificate": (lambda t, f: f.key, lambda t, f: f.key,
                                 "cert", ["certificate file", "holds no PEM certificate"]),
    "certificate given as key": (lambda t, f: f.cert, lambda t, f: f.cert,
                                 "key", ["key file", "holds no unencrypted PEM private key"]),
    "another certificate's key": (lambda t, f: f.cert, another_key,
                                  "key", ["is not the key of the certificate in"]),
}


@pytest.mark.parametrize("case", BAD_PAIRS.values(), ids=BAD_PAIRS.keys())
def test_a_bad_certificate_or_key_stops_the_server_at_start_naming_the_file(
        tmp_path, tls, case):
    cert, key, fault, words = case
    cert, key = cert(tmp_path, tls), key(tmp_path, tls)

    p = serve(tmp_path / "data", "--tls-cert", cert, "--tls-key", key)

    assert p.returncode == 1, p
    message = p.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"'{cert if fault == 'cert' else key}'" in message, message
    for w in words:
        assert w in message, message
    assert not os.path.exists(tmp_path / "data"), "the data directory was created"


@pytest.mark.parametrize("given", ["--tls-cert", "--tls-key"])
def test_a_certificate_without_its_key_or_the_other_way_is_a_usage_error(tmp_path, tls, given):
    p = serve(tmp_path / "data", given, tls.cert if given == "--tls-cert" else tls.key)

    assert p.returncode == 2, p
    assert "--tls-cert and --tls-key go together" in p.stderr
    assert "usage: cloudfsd serve" in p.stderr


CLEAR_TEXT = "tokens and file contents travel in clear text"


@pytest.mark.parametrize("listen, tls_on, warned", [
    ("0.0.0.0:0", False, True),
    ("127.0.0.1:0", False, False),
    ("0.0.0.0:0", True, False),
], ids=["all-addresses-plain", "loopback-plain", "all-addresses-tls"])
def test_plain_http_beyond_loopback_is_served_with_one_warning_line(
        tmp_path, tls, listen, tls_on, warned):
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log")
    if tls_on:
        s.ca = tls.ca
    s.start(listen, ["--tls-cert", tls.cert, "--tls-key", tls.key] if tls_on else [])
    try:
        assert Client(s.url.replace("0.0.0.0", "127.0.0.1"), ca=s.ca).get("/").status == 200
    finally:
        s.stop()

    warnings = [line for line in s.log_text().splitlines() if CLEAR_TEXT in line]
    assert len(warnings) == (1 if warned else 0), s.log_text()
    if warned:
        assert "warning:" in warnings[0] and "0.0.0.0" in warnings[0], warnings
