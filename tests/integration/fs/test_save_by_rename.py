"""Saving by renaming a new file over the old one (git's index.lock and
refs, sed -i, rsync, vim, Emacs, LibreOffice, Python's os.replace) replaces
the file everywhere: on the server and in a second mount, with no
conflicted copy, whether the new file reached the server before the
rename or not, and whatever its content.  Only another device's edit of
the replaced file is a conflict, and then both versions are kept.

Every test runs on a mount in the foreground and on a daemonized one, as
users run it."""

import json
import os
import subprocess

import pytest

from cfs_fs import read, server_listing, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import CLOUDFS

START = ["foreground", "daemon"]


def status(m, *args):
    p = subprocess.run([CLOUDFS, "status", *args, m.mountpoint], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"cloudfs status {args} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)["mounts"][0] if "--json" in args else p.stdout


def synced(m):
    """Waits until M has sent everything; returns its status."""
    status(m, "--wait", "--timeout", "30")
    st = status(m, "--json")
    assert st["synced"] and st["pending_ops"] == 0, st
    return st


def files_on_server(client):
    return {p: e["blocks"] for p, e in server_listing(client, client.root_ns).items()
            if e["kind"] == "file"}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def names(m, under=""):
    return sorted(os.listdir(os.path.join(m.mountpoint, under)))


def no_conflicted_copies(*mounts):
    for m in mounts:
        for dirpath, dirnames, filenames in os.walk(m.mountpoint):
            copies = [n for n in dirnames + filenames if "conflicted copy" in n]
            assert not copies, f"conflicted copies in {dirpath}: {copies}"
        assert "conflict" not in m.log_text(), m.log_text()


@pytest.mark.parametrize("start", START)
@pytest.mark.parametrize("new_file", ["settling", "on the server"])
def test_a_new_file_renamed_over_a_synced_one_replaces_it_everywhere(
        alice, mount, start, new_file):
    a = mount(alice, start=start)
    b = mount(alice, start=start)
    f, tmp = os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "f.tmp")
    write(f, b"old\n")
    synced(a)
    write(tmp, b"new\n")
    if new_file == "on the server":
        synced(a)
    os.rename(tmp, f)
    assert names(a) == ["f"] and read(f) == b"new\n"
    synced(a)
    assert names(a) == ["f"] and read(f) == b"new\n"
    listing = server_listing(alice, alice.root_ns)
    assert sorted(listing) == ["f"] and listing["f"]["size"] == 4
    until(lambda: names(b) == ["f"] and read(os.path.join(b.mountpoint, "f")) == b"new\n",
          within=5, what="the new f on the second mount")
    no_conflicted_copies(a, b)


@pytest.mark.parametrize("start", START)
def test_a_save_by_rename_of_the_same_bytes_does_not_jam_the_queue(alice, mount, start):
    """The server answers a commit of the content it has with the node
    that has it: the replaced entry must not still hold that node."""
    a = mount(alice, start=start)
    f, tmp = os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "f.tmp")
    write(f, b"same\n")
    synced(a)
    write(tmp, b"same\n")
    os.rename(tmp, f)
    synced(a)
    write(os.path.join(a.mountpoint, "after"), b"later changes still go\n")
    synced(a)
    assert sorted(files_on_server(alice)) == ["after", "f"]
    assert "UNIQUE" not in a.log_text(), a.log_text()
    no_conflicted_copies(a)


@pytest.mark.parametrize("start", START)
def test_saving_the_same_file_by_rename_again_and_again_keeps_the_last(alice, mount, start):
    """An editor saving every few milliseconds: each save renames over a
    version that may itself not have reached the server yet."""
    a = mount(alice, start=start)
    b = mount(alice, start=start)
    f = os.path.join(a.mountpoint, "doc.txt")
    for i in range(30):
        tmp = os.path.join(a.mountpoint, f".doc.txt.{i}")
        write(tmp, f"version {i}\n".encode())
        os.rename(tmp, f)
        if i % 10 == 9:
            synced(a)
    synced(a)
    assert names(a) == ["doc.txt"] and read(f) == b"version 29\n"
    assert sorted(files_on_server(alice)) == ["doc.txt"]
    until(lambda: read(os.path.join(b.mountpoint, "doc.txt")) == b"version 29\n",
          within=5, what="the last save on the second mount")
    assert names(b) == ["doc.txt"]
    no_conflicted_copies(a, b)


@pytest.mark.parametrize("start", START)
def test_a_folder_renamed_over_an_empty_synced_folder_replaces_it(alice, mount, start):
    a = mount(alice, start=start)
    root = a.mountpoint
    os.mkdir(os.path.join(root, "old"))
    os.mkdir(os.path.join(root, "new"))
    write(os.path.join(root, "new", "x"), b"x\n")
    synced(a)
    os.rename(os.path.join(root, "new"), os.path.join(root, "old"))
    synced(a)
    listing = server_listing(alice, alice.root_ns)
    assert sorted(listing) == ["old", "old/x"], listing
    fresh = mount(alice, start=start)
    assert read(os.path.join(fresh.mountpoint, "old", "x")) == b"x\n"
    no_conflicted_copies(a, fresh)


def test_two_git_commits_in_the_mount_are_whole_in_a_fresh_mount(alice, mount):
    """The reproduction of the report: git saves its index and refs by
    renaming over them, so the second commit used to be lost."""
    a = mount(alice, start="daemon")
    repo = os.path.join(a.mountpoint, "repo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", repo], check=True)
    for i in range(2):
        write(os.path.join(repo, "README"), f"line {i}\n".encode())
        subprocess.run([*git, "-C", repo, "add", "README"], check=True)
        subprocess.run([*git, "-C", repo, "commit", "-qm", f"commit {i}"], check=True)
    synced(a)
    fresh = mount(alice, start="daemon")
    clone = os.path.join(fresh.mountpoint, "repo")
    subprocess.run(["git", "-C", clone, "fsck", "--full"], check=True)
    st = subprocess.run(["git", "-C", clone, "status", "--porcelain"], check=True,
                        capture_output=True, text=True).stdout
    assert st == "", st
    log = subprocess.run(["git", "-C", clone, "log", "--format=%s"], check=True,
                         capture_output=True, text=True).stdout
    assert log.split("\n")[:2] == ["commit 1", "commit 0"], log
    no_conflicted_copies(a, fresh)


def test_renaming_over_a_file_another_device_changed_keeps_both(alice, mount, proxy):
    """The one conflict left: the replaced file changed on the server
    since this mount saw it.  The other device's version keeps the name,
    ours becomes a conflicted copy; nothing is lost."""
    a = mount(alice.clone(proxy.url))
    f, tmp = os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "f.tmp")
    write(f, b"ours, first\n")
    synced(a)
    proxy.hold(r"POST /meta/ns/\d+/commit")
    write(tmp, b"ours, saved\n")
    os.rename(tmp, f)
    proxy.wait_held(1)
    jid = alice.snapshot(alice.root_ns)[0]["f"]["jid"]
    alice.write_file(alice.root_ns, "f", b"theirs\n", base_jid=jid)
    proxy.release()
    synced(a)
    on_server = server_listing(alice, alice.root_ns)
    copies = [p for p in on_server if p.startswith("f (") and "conflicted copy " in p]
    assert sorted(on_server) == sorted(["f"] + copies) and len(copies) == 1, on_server
    until(lambda: read(f) == b"theirs\n", within=5, what="the other device's f")
    assert read(os.path.join(a.mountpoint, copies[0])) == b"ours, saved\n"


SAVER = """
import os, sys
root, me = sys.argv[1], int(sys.argv[2])
for i in range(30):
    tmp = os.path.join(root, f".f.{me}.{i}")
    with open(tmp, "wb") as f:
        f.write(f"{me} {i}\\n".encode())
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(root, "f"))
"""


@pytest.mark.parametrize("start", START)
def test_saves_racing_from_four_processes_never_bring_back_a_replaced_file(
        alice, mount, start):
    """Each save deletes the file the one before it made, often while a
    listing of the namespace is on its way: a listing older than a delete
    must not bring the deleted file back (it did, as a second "f", and
    the saves after it were refused)."""
    a = mount(alice, start=start)
    write(os.path.join(a.mountpoint, "f"), b"first\n")
    synced(a)
    savers = [subprocess.Popen(["/usr/bin/python3", "-c", SAVER, a.mountpoint, str(me)])
              for me in range(4)]
    assert [p.wait(timeout=120) for p in savers] == [0] * 4
    last = read(os.path.join(a.mountpoint, "f"))
    assert last in {f"{me} 29\n".encode() for me in range(4)}, last
    synced(a)
    assert names(a) == ["f"] and read(os.path.join(a.mountpoint, "f")) == last
    assert sorted(server_listing(alice, alice.root_ns)) == ["f"]
    assert "refused" not in a.log_text(), a.log_text()
    fresh = mount(alice, start=start)
    assert names(fresh) == ["f"] and read(os.path.join(fresh.mountpoint, "f")) == last
    no_conflicted_copies(a, fresh)


def test_a_rename_whose_answer_was_lost_is_sent_again_and_kept(alice, mount, proxy):
    """The server applied the move, its answer never came: sent again,
    the move names its node and is committed as it stands, instead of
    failing for a source that is gone and being undone (it was, at
    unmount, with saves by rename that followed it conflicting)."""
    a = mount(alice.clone(proxy.url), timeout=2)
    write(os.path.join(a.mountpoint, "f"), b"content\n")
    synced(a)
    proxy.lose(r"POST /meta/ns/\d+/commit")
    os.rename(os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "g"))
    proxy.wait_lost(1)
    proxy.lose(None)  # the commit sent again is answered
    synced(a)
    assert names(a) == ["g"] and sorted(files_on_server(alice)) == ["g"]
    assert "refused" not in a.log_text(), a.log_text()
    fresh = mount(alice)
    assert names(fresh) == ["g"] and read(os.path.join(fresh.mountpoint, "g")) == b"content\n"


def test_a_save_by_rename_whose_answer_was_lost_keeps_the_saved_file(alice, mount, proxy):
    """The delete of the replaced file and the move were applied, their
    answer never came: sent again, the delete (based on the old version)
    must not conflict with the saved file now at that path, nor bring
    the old one back in the mount."""
    a = mount(alice.clone(proxy.url), timeout=2)
    f, tmp = os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "f.tmp")
    write(f, b"old\n")
    write(tmp, b"new\n")
    synced(a)
    proxy.lose(r"POST /meta/ns/\d+/commit")
    os.rename(tmp, f)
    proxy.wait_lost(1)
    proxy.lose(None)
    synced(a)
    assert names(a) == ["f"] and read(f) == b"new\n"
    assert sorted(files_on_server(alice)) == ["f"]
    assert "refused" not in a.log_text() and "conflict" not in a.log_text(), a.log_text()
    fresh = mount(alice)
    assert read(os.path.join(fresh.mountpoint, "f")) == b"new\n"
