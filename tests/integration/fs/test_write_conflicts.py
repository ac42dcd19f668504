"""Conflicts keep both: a file changed on the server (by another client or
another mount) while this mount had uncommitted changes to it keeps the
server's version under its name, and the local bytes go next to it as
"NAME (HOST's conflicted copy YYYY-MM-DD).EXT" (a counter after the date when
that name is taken), and the log says so. A file deleted elsewhere while
edited here comes back with the edit, with the folders it needs. A local
delete of something changed elsewhere yields to the other side; a local
rename of it applies, to the newer bytes.

"Uncommitted" is made certain by keeping the file open (settle=0: it is
committed when closed), or by holding the mount's commit in a proxy."""

import datetime
import os
import socket
import time

import pytest

from cfs_fs import at, listing_of, read, rewrite, unmount_drained, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)


# The machine's name, which a conflicted copy's name carries.
HOST = socket.gethostname()[:32]


def days():
    """The dates a copy made now may carry: today in UTC and in local time
    (the man page does not say which)."""
    now = time.time()
    return {datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%d"),
            time.strftime("%Y-%m-%d", time.localtime(now))}


def copy_names(name, n=1, dates=()):
    """The names the man page gives the Nth conflicted copy of NAME, made
    today (or on one of DATES)."""
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension, or a leading dot only
        stem, dot, ext = name, "", ""
    tag = "" if n == 1 else f" {n}"
    return {f"{stem} ({HOST}'s conflicted copy {d}{tag}){dot}{ext}"
            for d in days() | set(dates)}


def server_files(client):
    """{path: bytes} of every file on the server, read through CLIENT."""
    snap, _ = client.snapshot(client.root_ns)
    return {p: b"".join(client.download(b).body for b in e["blocks"])
            for p, e in snap.items() if e["kind"] == "file"}


@pytest.mark.parametrize("name, elsewhere", [
    ("report.txt", "another client"), ("report.txt", "another mount"),
    ("Makefile", "another client"), ("archive.tar.gz", "another client"),
    (".bashrc", "another client")])
def test_a_file_changed_elsewhere_while_edited_here_keeps_both_versions(
        alice, mount, name, elsewhere):
    alice.write_file(alice.root_ns, name, b"the original\n")
    m = mount(alice, settle=0)
    other = mount(alice, settle=0) if elsewhere == "another mount" else None
    before = days()

    with open(at(m, name), "r+b") as f:
        f.write(b"local edit, ")
        f.flush()
        if other:
            until(lambda: read(at(other, name)) == b"the original\n", what="the file")
            with open(at(other, name), "wb") as g:
                g.write(b"the other side's edit\n")
            until(lambda: server_files(alice)[name] == b"the other side's edit\n",
                  what="the other side's edit on the server")
        else:
            rewrite(alice.clone(), alice.root_ns, name, b"the other side's edit\n")

    def both_kept():
        files = server_files(alice)
        return len(files) == 2 and files.get(name) == b"the other side's edit\n" and files
    until(both_kept, within=10, what="both versions on the server")
    (copy, local), = [(p, d) for p, d in server_files(alice).items() if p != name]
    assert copy in copy_names(name, dates=before), copy
    assert local == b"local edit, \n"  # 12 bytes written over the 13 of the original
    until(lambda: sorted(os.listdir(m.mountpoint)) == sorted([name, copy]) and
          read(at(m, name)) == b"the other side's edit\n" and read(at(m, copy)) == local,
          within=5, what="both versions in the mount")
    assert f"'{name}'" in m.log_text() and f"'{copy}'" in m.log_text() and \
        "conflict" in m.log_text(), m.log_text()
    assert alice.head(alice.root_ns) == 3  # the original, the other edit, the copy
    # What needs attention says so (cloudfs(1)).
    assert os.getxattr(at(m, copy), "user.cloudfs.status").startswith(b"conflict ")
    assert os.getxattr(at(m, name), "user.cloudfs.status").startswith(b"synced ")


def test_a_conflicted_copy_whose_name_is_taken_gets_a_counter(alice, mount):
    alice.write_file(alice.root_ns, "notes.txt", b"the original\n")
    day = sorted(days())[0]
    taken = f"notes ({HOST}'s conflicted copy {day}).txt"
    alice.write_file(alice.root_ns, taken, b"an older copy\n")
    m = mount(alice, settle=0)

    with open(at(m, "notes.txt"), "r+b") as f:
        f.write(b"LOCAL")
        f.flush()
        rewrite(alice.clone(), alice.root_ns, "notes.txt", b"remote\n")

    until(lambda: len(server_files(alice)) == 3, within=10, what="the copy")
    files = server_files(alice)
    assert files["notes.txt"] == b"remote\n" and files[taken] == b"an older copy\n"
    (copy,) = set(files) - {"notes.txt", taken}
    assert copy in copy_names("notes.txt", 2), copy
    assert files[copy] == b"LOCALriginal\n"


def test_a_file_deleted_elsewhere_while_edited_here_comes_back_with_the_edit(alice, mount):
    alice.write_file(alice.root_ns, "keep.txt", b"the original\n")
    m = mount(alice, settle=0)

    with open(at(m, "keep.txt"), "r+b") as f:
        f.write(b"EDITED")
        f.flush()
        alice.clone().commit_ok(alice.root_ns, {"op": "delete", "path": "keep.txt"})

    until(lambda: server_files(alice) == {"keep.txt": b"EDITEDiginal\n"}, within=10,
          what="the edited file on the server")
    until(lambda: os.listdir(m.mountpoint) == ["keep.txt"] and
          read(at(m, "keep.txt")) == b"EDITEDiginal\n", what="the edited file in the mount")


def test_a_folder_deleted_elsewhere_keeps_the_file_edited_here_and_its_folders(
        alice, mount, tmp_path):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "a"}, {"op": "dir", "path": "a/b"},
                    {"op": "dir", "path": "a/other"})
    alice.write_files(alice.root_ns, {"a/b/c.txt": b"the original\n", "a/b/d.txt": b"d",
                                      "a/top.txt": b"top"})
    m = mount(alice, settle=0)

    with open(at(m, "a", "b", "c.txt"), "r+b") as f:
        f.write(b"EDITED")
        f.flush()
        alice.clone().commit_ok(alice.root_ns, {"op": "delete", "path": "a", "recursive": True})

    until(lambda: server_files(alice) == {"a/b/c.txt": b"EDITEDiginal\n"}, within=10,
          what="the edited file on the server")
    assert sorted(alice.snapshot(alice.root_ns)[0]) == ["a", "a/b", "a/b/c.txt"]
    until(lambda: sorted(p for p in listing_of(m.mountpoint)) == ["a", "a/b", "a/b/c.txt"],
          what="only the edited file and its folders in the mount")
    assert read(at(m, "a", "b", "c.txt")) == b"EDITEDiginal\n"


# A delete yields to the edit; a rename and an edit do not touch the same
# thing: the file ends up under the new name with the newer bytes.
@pytest.mark.parametrize("change, name", [("delete", "x.txt"), ("rename", "y.txt")])
def test_a_local_delete_or_rename_of_a_file_changed_elsewhere_keeps_the_edit(
        alice, mount, proxy, change, name):
    alice.write_file(alice.root_ns, "x.txt", b"the original\n")
    m = mount(alice.clone(proxy.url), settle=0)
    proxy.hold(r"POST /meta/ns/\d+/commit")

    if change == "delete":
        os.unlink(at(m, "x.txt"))
    else:
        os.rename(at(m, "x.txt"), at(m, "y.txt"))
    proxy.wait_held(1)
    rewrite(alice, alice.root_ns, "x.txt", b"changed elsewhere\n")
    proxy.release()

    until(lambda: os.listdir(m.mountpoint) == [name] and
          read(at(m, name)) == b"changed elsewhere\n", within=10,
          what=f"{name} with the newer bytes")
    unmount_drained(m)
    assert server_files(alice) == {name: b"changed elsewhere\n"}
