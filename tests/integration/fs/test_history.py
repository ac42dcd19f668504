"""cloudfs history and restore on a live mount: the versions of a file
(also one deleted), and bringing back an earlier one, a deleted file, or
a folder deleted with everything in it, by default, by JID or by time.
A restore is a new version: on the server, in this mount and in any
other."""

import errno
import os
import time

from cfs_fs import at, cloudfs, payload, read, server_listing, until


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def synced(m):
    cloudfs("status", "--wait", "--timeout", "30", m.mountpoint)


def test_history_lists_a_files_versions_and_restore_brings_one_back(alice, mount):
    m = mount(alice)
    for i in range(3):
        write(at(m, "doc.txt"), f"version {i}\n".encode())
        synced(m)
    versions = cloudfs("history", "--json", at(m, "doc.txt"))["versions"]
    assert [v["size"] for v in versions] == [10, 10, 10] and len(versions) == 3
    text = cloudfs("history", at(m, "doc.txt"))
    assert "doc.txt:" in text and text.count("alice") == 3
    cloudfs("restore", at(m, "doc.txt"))  # the one before the last
    until(lambda: read(at(m, "doc.txt")) == b"version 1\n", within=10,
          what="version 1 back")
    first = versions[-1]["jid"]
    cloudfs("restore", "--jid", str(first), at(m, "doc.txt"))
    until(lambda: read(at(m, "doc.txt")) == b"version 0\n", within=10,
          what="version 0 back")
    assert len(cloudfs("history", "--json", at(m, "doc.txt"))["versions"]) == 5
    synced(m)
    assert "conflicted" not in " ".join(os.listdir(m.mountpoint))


def test_a_deleted_file_comes_back_and_a_time_chooses_the_version(alice, mount):
    m = mount(alice)
    write(at(m, "a.bin"), payload(5 * 1024 * 1024, "old"))
    synced(m)
    time.sleep(1.1)
    then = time.strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)
    write(at(m, "a.bin"), b"new")
    synced(m)
    os.unlink(at(m, "a.bin"))
    synced(m)
    assert [v["kind"] for v in cloudfs("history", "--json", at(m, "a.bin"))["versions"]] \
        == ["deleted", "file", "file"]
    cloudfs("restore", at(m, "a.bin"))
    until(lambda: os.path.exists(at(m, "a.bin")) and read(at(m, "a.bin")) == b"new",
          within=10, what="the deleted file back")
    cloudfs("restore", "--at", then, at(m, "a.bin"))
    until(lambda: read(at(m, "a.bin")) == payload(5 * 1024 * 1024, "old"), within=10,
          what="the version of then back")


def test_a_folder_deleted_with_its_contents_comes_back_whole(alice, mount):
    m = mount(alice)
    tree = {"proj/a.txt": b"a\n", "proj/src/main.c": b"int main;\n",
            "proj/src/deep/x.bin": payload(4 * 1024 * 1024 + 7, "x")}
    for path, data in tree.items():
        os.makedirs(os.path.dirname(at(m, path)), exist_ok=True)
        write(at(m, path), data)
    os.symlink("src/main.c", at(m, "proj/link"))
    synced(m)
    os.system(f"rm -rf {at(m, 'proj')}")
    synced(m)
    assert not os.path.exists(at(m, "proj"))
    out = cloudfs("restore", "--json", at(m, "proj"))
    assert out["restored"] == 7  # proj, a.txt, src, main.c, deep, x.bin, link
    for path, data in tree.items():
        until(lambda: os.path.exists(at(m, path)) and read(at(m, path)) == data,
              within=10, what=path)
    assert os.readlink(at(m, "proj/link")) == "src/main.c"
    fresh = mount(alice)
    for path, data in tree.items():
        assert read(at(fresh, path)) == data
    assert "proj/src/deep/x.bin" in server_listing(alice, alice.root_ns)


def test_what_cannot_be_restored_says_why(alice, mount):
    m = mount(alice)
    out = cloudfs("restore", at(m, "never-was"), expect=1)
    assert out == ""
    write(at(m, "one.txt"), b"only version\n")
    synced(m)
    cloudfs("restore", at(m, "one.txt"), expect=1)
    cloudfs("history", "--jid", "3", at(m, "one.txt"), expect=2)
    cloudfs("restore", "--at", "yesterday", at(m, "one.txt"), expect=2)


def test_a_point_in_time_mount_shows_the_tree_of_then_read_only(alice, mount):
    m = mount(alice)
    write(at(m, "doc.txt"), b"then\n")
    os.mkdir(at(m, "dir"))
    write(at(m, "dir/gone.bin"), payload(4 * 1024 * 1024 + 1, "gone"))
    synced(m)
    time.sleep(1.1)
    then = int(time.time())
    time.sleep(1.1)
    write(at(m, "doc.txt"), b"now\n")
    os.unlink(at(m, "dir/gone.bin"))
    write(at(m, "new.txt"), b"new\n")
    synced(m)
    past = mount(alice, at=f"@{then}")
    assert sorted(os.listdir(past.mountpoint)) == ["dir", "doc.txt"]
    assert read(at(past, "doc.txt")) == b"then\n"
    assert read(at(past, "dir/gone.bin")) == payload(4 * 1024 * 1024 + 1, "gone")
    try:
        write(at(past, "doc.txt"), b"changed\n")
        raise AssertionError("a point-in-time mount took a write")
    except OSError as e:
        assert e.errno == errno.EROFS, e
    assert read(at(m, "doc.txt")) == b"now\n"
    assert sorted(os.listdir(m.mountpoint)) == ["dir", "doc.txt", "new.txt"]
