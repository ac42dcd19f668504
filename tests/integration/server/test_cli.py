"""The cloudfsd command line: help, version, usage errors, users and
tokens (exit codes 0 success, 1 failure, 2 wrong command line)."""

import os
import pty
import re
import subprocess

import pytest

from cfs_server import CLOUDFSD, Server, block_id, dir_blocks_only, run_cli

TOKEN = re.compile(r"[0-9a-f]{64}\n")


def cli(*args):
    """cloudfsd ARGS with a short time limit: a usage error must not go on
    to serve."""
    return subprocess.run([CLOUDFSD, *args], capture_output=True, text=True, timeout=15)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["serve", "--help"]])
def test_help_exits_0_and_shows_the_usage(args):
    p = cli(*args)
    assert p.returncode == 0, p
    assert "usage" in (p.stdout + p.stderr).lower()
    assert "serve" in p.stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_exits_0_and_prints_the_version(flag):
    p = cli(flag)
    assert p.returncode == 0, p
    assert "0.1.0" in p.stdout


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--no-such-option"],
    ["serve"],
    ["serve", "--data", "{d}", "--no-such-option"],
    ["serve", "--data", "{d}", "--threads", "many"],
    ["serve", "--data", "{d}", "extra-argument"],
    ["useradd"],
    ["useradd", "--data", "{d}"],
    ["useradd", "alice"],
    ["useradd", "--data", "{d}", "alice", "bob"],
    ["token", "--data", "{d}"],
    ["revoke", "--data", "{d}"],
    ["useradd", "--meta", "mysql://db/cloudfs", "alice"],
    ["serve", "--data", "{d}", "--meta", "sqlite:"],
], ids=lambda a: " ".join(a) or "no-arguments")
def test_wrong_usage_exits_2_with_a_message(tmp_path, args):
    p = cli(*(a.format(d=tmp_path / "data") for a in args))
    assert p.returncode == 2, p
    assert p.stderr.strip(), p
    assert p.stdout == "", p


@dir_blocks_only("looks for the block file")
def test_meta_sqlite_dir_keeps_the_metadata_apart_from_the_blocks(tmp_path):
    meta, data = tmp_path / "meta", tmp_path / "data"
    token = run_cli("useradd", "--meta", f"sqlite:{meta}", "alice").stdout.strip()
    s = Server(data, tmp_path / "cloudfsd.log", meta=f"sqlite:{meta}").start()
    try:
        alice = s.client(token)
        ns = alice.get("/meta/namespaces").json["namespaces"][0]["ns"]
        alice.write_file(ns, "f", b"bytes")
    finally:
        s.stop()
    assert (meta / "meta.db").is_file() and not (data / "meta.db").exists()
    bid = block_id(b"bytes")
    assert (data / "blocks" / bid[:2] / bid).is_file()


@pytest.mark.parametrize("args", [[], ["frobnicate"]], ids=["no-command", "unknown"])
def test_a_missing_or_unknown_command_is_one_line_with_the_help_hint(args):
    p = cli(*args)
    assert p.returncode == 2, p
    assert p.stderr.count("\n") == 1 and "'cloudfsd --help'" in p.stderr, p.stderr
    assert args == [] or "'frobnicate'" in p.stderr


def test_errors_on_a_terminal_carry_no_timestamp_and_in_a_log_they_do(tmp_path):
    # The server's own messages, as a person at a terminal reads them, and
    # as a log file or the journal keeps them.
    args = [CLOUDFSD, "useradd", "--data", str(tmp_path / "data"), "alice"]
    run_cli(*args[1:])
    main, other = pty.openpty()
    p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=other, timeout=15)
    os.close(other)
    on_tty = os.read(main, 4096).decode()
    os.close(main)
    assert p.returncode == 1
    assert on_tty.startswith("cloudfsd: ") and "alice" in on_tty, on_tty
    in_log = cli(*args[1:]).stderr
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z cloudfsd\[\d+\] error: ", in_log), in_log


def test_useradd_prints_only_a_new_token(tmp_path):
    p = cli("useradd", "--data", str(tmp_path / "data"), "alice")
    assert p.returncode == 0, p
    assert TOKEN.fullmatch(p.stdout), repr(p.stdout)


def test_useradd_of_an_existing_user_exits_1_and_names_the_user(tmp_path):
    data = str(tmp_path / "data")
    run_cli("useradd", "--data", data, "alice")
    p = cli("useradd", "--data", data, "alice")
    assert p.returncode == 1, p
    assert "alice" in p.stderr
    assert p.stdout == ""


def test_token_for_an_unknown_user_exits_1_and_names_the_user(tmp_path):
    data = str(tmp_path / "data")
    run_cli("useradd", "--data", data, "alice")
    p = cli("token", "--data", data, "mallory")
    assert p.returncode == 1, p
    assert "mallory" in p.stderr


def test_revoking_an_unknown_token_exits_1(tmp_path):
    data = str(tmp_path / "data")
    run_cli("useradd", "--data", data, "alice")
    p = cli("revoke", "--data", data, "0" * 64)
    assert p.returncode == 1, p
    assert p.stderr.strip()


def test_a_second_token_works_and_revoking_it_leaves_the_first_working(server):
    first = server.useradd("alice")
    second = run_cli("token", *server.store_args(), "alice").stdout
    assert TOKEN.fullmatch(second), repr(second)
    second = second.strip()
    assert second != first
    a1, a2 = server.client(first), server.client(second)
    r1, r2 = a1.get("/meta/namespaces"), a2.get("/meta/namespaces")
    assert r1.status == r2.status == 200
    assert r1.json == r2.json

    run_cli("revoke", *server.store_args(), second)
    r = a2.get("/meta/namespaces")
    assert r.status == 401 and r.error_code == "unauthorized", r
    assert "WWW-Authenticate" in r.headers
    assert a1.get("/meta/namespaces").json == r1.json


def test_a_user_added_while_the_server_runs_can_use_their_token_at_once(server):
    alice = server.user("alice")
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    assert alice.list(alice.root_ns).status == 200
    for name in ("bob", "carol"):
        c = server.client(server.useradd(name))
        r = c.get("/meta/namespaces")
        assert r.status == 200, (name, r)
        assert r.json["namespaces"][0]["owner"] == name
        assert c.list(r.json["namespaces"][0]["ns"]).status == 200
