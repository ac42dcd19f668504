"""A change the server cannot take (here: its disk is full) is never
dropped and never waits in silence: `cloudfs status` names it with the
reason, its bytes stay readable in the mount, and it reaches the server
once the server can take it."""

import glob
import json
import os
import shutil
import subprocess

import pytest

from cfs_fs import MiB, payload, read, server_listing, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import CLOUDFS, Server, fill


def status(m):
    p = subprocess.run([CLOUDFS, "status", "--json", m.mountpoint], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode in (0, 3), p.stderr  # 3: not synced
    return json.loads(p.stdout)["mounts"][0]


def dropped(path):
    """Reads PATH past the kernel's page cache, so the mount serves it."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return f.read()


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_a_change_a_full_server_refuses_is_named_kept_and_sent_later(
        small_disk, tmp_path, mount, start):
    server = Server(small_disk / "data", tmp_path / "cloudfsd.log").start()
    try:
        alice = server.user("alice")
        m = mount(alice, start=start)
        fill(small_disk / "filler")
        data = payload(6 * MiB, "refused")
        path = os.path.join(m.mountpoint, "big.bin")
        with open(path, "wb") as f:
            f.write(data)

        def named():
            st = status(m)
            return [f for f in st["failing"] if f["path"] == "big.bin"]
        failing = []
        until(lambda: failing.extend(named()) or failing, within=30,
              what="big.bin named as failing")
        assert "full" in failing[0]["why"], failing
        assert failing[0]["tries"] >= 1
        out = subprocess.run([CLOUDFS, "status", m.mountpoint], capture_output=True,
                             text=True, timeout=60).stdout
        assert "'big.bin'" in out and "not sent yet" in out, out
        assert dropped(path) == data
        assert "big.bin" not in server_listing(alice, alice.root_ns)

        os.remove(small_disk / "filler")
        os.remove(small_disk / "ballast")
        p = subprocess.run([CLOUDFS, "status", "--wait", "--timeout", "60", m.mountpoint],
                           capture_output=True, text=True, timeout=90)
        assert p.returncode == 0, p.stdout + p.stderr
        st = status(m)
        assert st["pending_ops"] == 0 and st["failing"] == [] and st["retrying"] == 0, st
        assert server_listing(alice, alice.root_ns)["big.bin"]["size"] == len(data)
        fresh = mount(alice, start=start)
        assert read(os.path.join(fresh.mountpoint, "big.bin")) == data
        fresh.unmount()
        m.unmount()
    finally:
        server.stop()


def test_a_file_the_server_refuses_for_good_is_kept_under_the_cache_and_named(
        alice, mount, proxy):
    # Another device turned the folder into a file while the new file's
    # commit was on its way: the server can never take it there.  Its
    # bytes are kept under the cache directory, and status is not synced
    # until the user has taken them.
    m = mount(alice.clone(proxy.url))
    os.mkdir(os.path.join(m.mountpoint, "docs"))
    until(lambda: "docs" in server_listing(alice, alice.root_ns), within=10,
          what="docs on the server")
    proxy.hold(r"POST /meta/ns/\d+/commit")
    with open(os.path.join(m.mountpoint, "docs", "draft.txt"), "wb") as f:
        f.write(b"the only copy of these words")
    proxy.wait_held(1)
    alice.commit_ok(alice.root_ns, {"op": "delete", "path": "docs"})
    alice.write_file(alice.root_ns, "docs", b"a file now")
    proxy.release()

    until(lambda: status(m)["refused"] == 1, within=30, what="the refusal")
    kept = glob.glob(os.path.join(m.cache, "refused", "*-ns*", "docs", "draft.txt"))
    assert len(kept) == 1, kept
    with open(kept[0], "rb") as f:
        assert f.read() == b"the only copy of these words"
    assert "refused" in m.log_text() and kept[0] in m.log_text()
    p = subprocess.run([CLOUDFS, "status", m.mountpoint], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 3 and "not synced" in p.stdout, p.stdout
    assert f"1 files the server refused are kept in {m.cache}/refused" in p.stdout, p.stdout
    until(lambda: read(os.path.join(m.mountpoint, "docs")) == b"a file now", within=10,
          what="the server's docs in the mount")

    shutil.rmtree(os.path.join(m.cache, "refused"))

    subprocess.run([CLOUDFS, "status", "--wait", "--timeout", "30", m.mountpoint], check=True)


def test_a_special_file_the_server_refuses_is_named_by_its_kind(alice, mount, proxy):
    """A FIFO whose folder became a file on the server meanwhile is
    refused; the log names the operation by the FIFO's kind (its line
    once read past the table of operation names)."""
    m = mount(alice.clone(proxy.url))
    os.mkdir(os.path.join(m.mountpoint, "docs"))
    until(lambda: "docs" in server_listing(alice, alice.root_ns), within=10,
          what="docs on the server")
    proxy.hold(r"POST /meta/ns/\d+/commit")
    os.mkfifo(os.path.join(m.mountpoint, "docs", "pipe"))
    proxy.wait_held(1)
    alice.commit_ok(alice.root_ns, {"op": "delete", "path": "docs"})
    alice.write_file(alice.root_ns, "docs", b"a file now")
    proxy.release()

    until(lambda: "the server refused fifo 'docs/pipe'" in m.log_text(), within=30,
          what="the refusal in the log")
    # Until the listing arrives the mount may still show docs a folder.
    docs = os.path.join(m.mountpoint, "docs")
    until(lambda: os.path.isfile(docs) and read(docs) == b"a file now", within=10,
          what="the server's docs in the mount")


def test_a_failure_of_the_server_names_its_request_once(server, alice, mount):
    """The server names the request in its own 5xx; the mount, which names
    the requests it reports, does not say it again."""
    m = mount(alice)
    request = f"POST /meta/ns/{alice.root_ns}/commit"
    server.store_sql("ALTER TABLE journal RENAME TO journal_gone")
    try:
        with open(os.path.join(m.mountpoint, "a.txt"), "wb") as f:
            f.write(b"kept while the server fails\n")
        failing = []
        until(lambda: failing.extend(f for f in status(m)["failing"]
                                     if f["path"] == "a.txt") or failing,
              within=30, what="a.txt named as failing")
    finally:
        server.store_sql("ALTER TABLE journal_gone RENAME TO journal")
    why = failing[0]["why"]
    assert why.count(request) == 1 and "journal" in why, why
    until(lambda: "a.txt" in server_listing(alice, alice.root_ns), within=90,
          what="a.txt on the server once it works again")
