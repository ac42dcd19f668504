"""Hard links on the mount. A further name of a node (a LINK entry on the
server, op "link") is shown as that node's inode: one st_ino for every
name, st_nlink counting them, writes through any name changing the one
content; unlinking one name keeps the others, and unlinking (or renaming
over) the node's own name leaves it at one of its other names at once,
as the server does (cloudfs-protocol(7), "hard links"); link(2) on the
mount is the protocol's op "link", within one namespace."""

import errno
import os
import signal
import sqlite3
import subprocess

import pytest

from cfs_fs import at, cloudfs, read, tree_of, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)


def fsync_dir(path):
    """Makes folder PATH's entries durable (fsync(2) on the folder)."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def link(client, path, to):
    client.commit_ok(client.root_ns, {"op": "link", "path": path, "to": to})


def content_at(client, path):
    """The block list and size at PATH on the server, through a link."""
    snap, _ = client.snapshot(client.root_ns)
    e = snap[path]
    if e["kind"] == "link":
        (e,) = [f for f in snap.values() if f["node"] == e["of"]]
    return e["blocks"], e["size"]


def server_names(client):
    """{path: kind} on the server."""
    return {p: e["kind"] for p, e in client.snapshot(client.root_ns)[0].items()}


def append_synced(path, data):
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@pytest.fixture
def linked(alice, mount):
    """alice's a.txt with a further name, b.txt, made through the
    protocol; her mount, and the client."""
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "b.txt")
    return mount(alice), alice


def node_of(client, path):
    """The node whose content PATH names on the server (through a link)."""
    snap, _ = client.snapshot(client.root_ns)
    e = snap[path]
    return e["of"] if e["kind"] == "link" else e["node"]


def test_link_on_the_mount_is_a_link_on_the_server(linked):
    m, alice = linked
    os.mkdir(at(m, "d"))
    os.link(at(m, "b.txt"), at(m, "d", "c.txt"))
    st = [os.stat(at(m, p)) for p in ("a.txt", "b.txt", "d/c.txt")]
    assert len({s.st_ino for s in st}) == 1 and [s.st_nlink for s in st] == [3, 3, 3]
    until(lambda: "d/c.txt" in server_names(alice), within=30, what="the link on the server")
    assert server_names(alice) == {"a.txt": "file", "b.txt": "link", "d": "dir",
                                   "d/c.txt": "link"}
    assert node_of(alice, "d/c.txt") == node_of(alice, "a.txt")
    append_synced(at(m, "d", "c.txt"), b"more\n")
    until(lambda: content_at(alice, "a.txt")[1] == len(b"the one content\nmore\n"),
          within=30, what="the write through the new name")
    assert read(at(m, "a.txt")) == b"the one content\nmore\n"
    assert "conflicted copy" not in " ".join(os.listdir(m.mountpoint))


def test_link_refuses_folders_taken_names_and_other_namespaces(alice, mount):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "proj"})
    r = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "proj"})
    assert r.status == 200, r
    alice.write_file(alice.root_ns, "a.txt", b"x\n")
    m = mount(alice)
    os.mkdir(at(m, "d"))
    cases = [("d", "d2", errno.EPERM), ("a.txt", "d", errno.EEXIST),
             ("a.txt", "proj/a.txt", errno.EXDEV)]
    for src, dst, want in cases:
        with pytest.raises(OSError) as e:
            os.link(at(m, src), at(m, dst))
        assert e.value.errno == want, (src, dst)
    assert os.listdir(at(m, "proj")) == []
    assert os.stat(at(m, "a.txt")).st_nlink == 1


def test_a_link_to_a_file_just_written_follows_its_creation(alice, mount):
    """ln right after the write: the file's session is committed first,
    so that the server has the file when the link comes."""
    m = mount(alice)
    with open(at(m, "new"), "wb") as f:
        f.write(b"fresh bytes\n")
    os.link(at(m, "new"), at(m, "new2"))
    open(at(m, "empty"), "wb").close()
    os.link(at(m, "empty"), at(m, "empty2"))
    until(lambda: server_names(alice) == {"new": "file", "new2": "link",
                                          "empty": "file", "empty2": "link"},
          within=30, what="the files and their links on the server")
    assert content_at(alice, "new2")[1] == len(b"fresh bytes\n")
    assert os.stat(at(m, "new2")).st_nlink == 2
    assert read(at(m, "new2")) == b"fresh bytes\n"
    assert "refused" not in m.log_text()


def test_a_link_to_a_large_file_follows_its_blocks(alice, mount):
    """A file of 9 MiB linked and unlinked at once: the link goes after the
    file's blocks and commit, the node takes the link's place, and nothing
    is refused.  (A link that finds no file while the file's creation still
    waits in the queue is tried again: tests/unit/test_links.c.)"""
    m = mount(alice)
    big = os.urandom(9 * 1024 * 1024 + 7)
    with open(at(m, "big"), "wb") as f:
        f.write(big)
    os.link(at(m, "big"), at(m, "big2"))
    os.unlink(at(m, "big"))
    until(lambda: server_names(alice) == {"big2": "file"}
          and content_at(alice, "big2")[1] == len(big),
          within=60, what="the file at its second name on the server")
    assert "refused" not in m.log_text()
    m2 = mount(alice)
    assert read(at(m2, "big2")) == big


def test_a_link_made_on_one_mount_is_seen_on_another(linked, mount):
    m, alice = linked
    m2 = mount(alice)
    os.link(at(m, "a.txt"), at(m, "c.txt"))
    until(lambda: os.path.exists(at(m2, "c.txt")) and os.stat(at(m2, "a.txt")).st_nlink == 3,
          within=30, what="the link on the second mount")
    assert os.stat(at(m2, "c.txt")).st_ino == os.stat(at(m2, "b.txt")).st_ino
    assert read(at(m2, "c.txt")) == b"the one content\n"


def test_a_link_survives_a_kill_9_before_it_is_sent(alice, server, mount, paused):
    """The link is queued durably once fsync of its folder returns; the
    server, stopped meanwhile, gets it from the next mount."""
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    m = mount(alice, timeout=3)
    assert read(at(m, "a.txt")) == b"the one content\n"
    paused()
    os.link(at(m, "a.txt"), at(m, "b.txt"))
    fsync_dir(m.mountpoint)
    m.kill9()
    os.kill(server.proc.pid, signal.SIGCONT)
    m = mount(alice, cache=m.cache)
    assert os.stat(at(m, "b.txt")).st_nlink == 2
    until(lambda: server_names(alice) == {"a.txt": "file", "b.txt": "link"},
          within=30, what="the link on the server")
    assert read(at(m, "b.txt")) == b"the one content\n"


def test_every_name_of_a_node_is_its_inode_with_its_link_count(alice, mount):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "b.txt")
    link(alice, "b.txt", "d/c.txt")
    m = mount(alice)
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt", "d"]
    names = [at(m, "a.txt"), at(m, "b.txt"), at(m, "d", "c.txt")]
    stats = [os.stat(p) for p in names]
    assert len({s.st_ino for s in stats}) == 1
    assert [s.st_nlink for s in stats] == [3, 3, 3]
    assert all(read(p) == b"the one content\n" for p in names)
    # readdir's inode numbers are the same as stat's (find -samefile, du).
    inos = {e.name: e.inode() for e in os.scandir(m.mountpoint)}
    assert inos["a.txt"] == inos["b.txt"] == stats[0].st_ino
    assert os.stat(at(m, "d")).st_nlink == 2
    du = subprocess.run(["find", m.mountpoint, "-samefile", names[0]],
                        capture_output=True, text=True, check=True)
    assert sorted(du.stdout.split()) == sorted(names)


def test_writes_through_any_name_change_the_one_content(linked):
    m, alice = linked
    append_synced(at(m, "b.txt"), b"more\n")
    assert read(at(m, "a.txt")) == b"the one content\nmore\n"
    with open(at(m, "a.txt"), "r+b") as f:
        f.write(b"THE")
        f.flush()
        os.fsync(f.fileno())
    want = b"THE one content\nmore\n"
    assert read(at(m, "b.txt")) == want

    def both_changed():
        a, b = content_at(alice, "a.txt"), content_at(alice, "b.txt")
        return a == b and a[1] == len(want)
    until(both_changed, within=30, what="the writes on the server")
    assert server_names(alice) == {"a.txt": "file", "b.txt": "link"}
    assert "conflicted copy" not in " ".join(os.listdir(m.mountpoint))


def test_unlinking_a_further_name_keeps_the_node(linked):
    m, alice = linked
    os.unlink(at(m, "b.txt"))
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt"]
    until(lambda: server_names(alice) == {"a.txt": "file"}, within=30,
          what="the link's delete on the server")
    assert read(at(m, "a.txt")) == b"the one content\n"


def test_unlinking_the_nodes_own_name_leaves_it_at_its_other_name_at_once(linked):
    m, alice = linked
    ino = os.stat(at(m, "b.txt")).st_ino
    with open(at(m, "b.txt"), "ab") as f:
        os.unlink(at(m, "a.txt"))
        # No moment without it: the other name shows the node still.
        assert read(at(m, "b.txt")) == b"the one content\n"
        st = os.stat(at(m, "b.txt"))
        assert (st.st_ino, st.st_nlink) == (ino, 1)
        f.write(b"written after the unlink\n")
        f.flush()
        os.fsync(f.fileno())
    want = b"the one content\nwritten after the unlink\n"
    until(lambda: server_names(alice) == {"b.txt": "file"}
          and content_at(alice, "b.txt")[1] == len(want),
          within=30, what="the node at b.txt on the server, with the write")
    assert sorted(os.listdir(m.mountpoint)) == ["b.txt"]
    assert read(at(m, "b.txt")) == want
    assert os.stat(at(m, "b.txt")).st_ino == ino


def test_renames_over_and_of_names(linked):
    m, alice = linked
    # Onto another name of the same node: nothing changes (rename(2)).
    os.rename(at(m, "b.txt"), at(m, "a.txt"))
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt"]
    # A further name moves like any name.
    os.mkdir(at(m, "d"))
    os.rename(at(m, "b.txt"), at(m, "d", "b.txt"))
    assert os.stat(at(m, "d", "b.txt")).st_ino == os.stat(at(m, "a.txt")).st_ino
    # A file saved over the node's own name: the node lives on at d/b.txt.
    with open(at(m, "new"), "wb") as f:
        f.write(b"saved over\n")
    os.rename(at(m, "new"), at(m, "a.txt"))
    assert read(at(m, "a.txt")) == b"saved over\n"
    assert read(at(m, "d", "b.txt")) == b"the one content\n"
    assert os.stat(at(m, "d", "b.txt")).st_nlink == 1
    until(lambda: server_names(alice) == {"a.txt": "file", "d": "dir", "d/b.txt": "file"},
          within=30, what="the renames on the server")
    assert content_at(alice, "d/b.txt")[1] == len(b"the one content\n")
    assert sorted(os.listdir(m.mountpoint)) == ["a.txt", "d"]
    assert read(at(m, "d", "b.txt")) == b"the one content\n"


def test_a_folder_that_holds_a_links_name_is_not_empty(alice, mount):
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "d/b.txt")
    m = mount(alice)
    assert os.listdir(at(m, "d")) == ["b.txt"]
    with pytest.raises(OSError) as e:
        os.rmdir(at(m, "d"))
    assert e.value.errno == errno.ENOTEMPTY
    subprocess.run(["rm", "-rf", at(m, "d")], check=True)
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    until(lambda: server_names(alice) == {"a.txt": "file"}, within=30,
          what="d gone from the server")
    assert read(at(m, "a.txt")) == b"the one content\n"


def test_a_second_mount_sees_names_come_and_go(linked, mount):
    m, alice = linked
    m2 = mount(alice)
    assert os.stat(at(m2, "a.txt")).st_nlink == 2
    link(alice, "a.txt", "c.txt")
    until(lambda: os.stat(at(m2, "a.txt")).st_nlink == 3, within=30,
          what="the new name's count on the second mount")
    assert os.stat(at(m2, "c.txt")).st_ino == os.stat(at(m2, "a.txt")).st_ino
    os.unlink(at(m, "a.txt"))
    # The kernel of the second mount is told: every name's count drops.
    until(lambda: sorted(os.listdir(m2.mountpoint)) == ["b.txt", "c.txt"]
          and os.stat(at(m2, "b.txt")).st_nlink == 2
          and os.stat(at(m2, "c.txt")).st_nlink == 2,
          within=30, what="the node at one of its names on the second mount")
    append_synced(at(m2, "c.txt"), b"from the second mount\n")
    want = b"the one content\nfrom the second mount\n"
    until(lambda: read(at(m, "b.txt")) == want, within=30, what="the write on the first mount")
    assert os.stat(at(m, "b.txt")).st_nlink == 2
    assert os.stat(at(m, "b.txt")).st_ino == os.stat(at(m, "c.txt")).st_ino


def test_names_survive_a_remount_and_a_kill_9(linked, mount):
    m, alice = linked
    ino = os.stat(at(m, "a.txt")).st_ino
    m.unmount()
    m = mount(alice, cache=m.cache)
    st = os.stat(at(m, "b.txt"))
    assert (st.st_ino, st.st_nlink) == (ino, 2)
    os.unlink(at(m, "a.txt"))
    append_synced(at(m, "b.txt"), b"fsynced\n")
    m.kill9()
    m = mount(alice, cache=m.cache)
    want = b"the one content\nfsynced\n"
    assert read(at(m, "b.txt")) == want
    until(lambda: server_names(alice) == {"b.txt": "file"}
          and content_at(alice, "b.txt")[1] == len(want),
          within=30, what="the unlink and the write on the server")
    assert sorted(os.listdir(m.mountpoint)) == ["b.txt"]
    assert os.stat(at(m, "b.txt")).st_nlink == 1


def test_a_cache_from_before_links_lists_again_and_shows_them(linked, mount):
    """A cache of schema 6 took links as no entry: its next mount lists
    every namespace again, so that they show."""
    m, alice = linked
    assert os.stat(at(m, "a.txt")).st_nlink == 2
    m.unmount()
    db = sqlite3.connect(os.path.join(m.cache, "cache.db"))
    db.executescript("DELETE FROM entries WHERE kind = 9;"
                     "DROP INDEX entries_links;"
                     "ALTER TABLE entries DROP COLUMN link_of;"
                     "ALTER TABLE shadow DROP COLUMN link_of;"
                     "PRAGMA user_version = 6;")
    db.close()
    m = mount(alice, cache=m.cache)
    until(lambda: sorted(os.listdir(m.mountpoint)) == ["a.txt", "b.txt"], within=30,
          what="the link after the upgrade")
    assert os.stat(at(m, "a.txt")).st_nlink == 2
    assert read(at(m, "b.txt")) == b"the one content\n"


def link_groups(root):
    """The names under ROOT grouped by inode, each group sorted: what
    hard links a tree holds, whatever its inode numbers are."""
    groups = {}
    for d, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            groups.setdefault(st.st_ino, []).append(
                (os.path.relpath(p, root), st.st_nlink))
    return sorted(sorted(g) for g in groups.values())


def server_groups(client, under):
    """The same from the server's listing of the folder UNDER."""
    snap, _ = client.snapshot(client.root_ns)
    groups = {}
    for p, e in snap.items():
        if p.startswith(under + "/") and e["kind"] in ("file", "link"):
            node = e["of"] if e["kind"] == "link" else e["node"]
            groups.setdefault(node, []).append(p[len(under) + 1:])
    return sorted(sorted(g) for g in groups.values())


def local_tree_with_links(root):
    """A tree with files of two, three and one name, some in folders."""
    os.makedirs(os.path.join(root, "sub", "deep"))
    for name, data in [("one", b"1\n"), ("two", b"2" * 5000), ("solo", b"s\n")]:
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    os.link(os.path.join(root, "one"), os.path.join(root, "sub", "one-again"))
    os.link(os.path.join(root, "two"), os.path.join(root, "sub", "two-b"))
    os.link(os.path.join(root, "two"), os.path.join(root, "sub", "deep", "two-c"))


def names_only(groups):
    return [[n for n, _ in g] for g in groups]


@pytest.mark.parametrize("tool", ["tar", "rsync -H", "cp -a"])
def test_tools_copy_hard_links_onto_the_mount(alice, mount, tmp_path, tool):
    src = str(tmp_path / "src")
    local_tree_with_links(src)
    m = mount(alice)
    dst = at(m, "copy")
    if tool == "tar":
        os.mkdir(dst)
        subprocess.run(f"tar --format=posix -C {src} -cf - . | tar -C {dst} -xf -",
                       shell=True, check=True)
    elif tool == "rsync -H":
        subprocess.run(["rsync", "-aH", src + "/", dst + "/"], check=True)
    else:
        subprocess.run(["cp", "-a", src, dst], check=True)
    # rsync -H makes its links after it set the folders' times, on a
    # local disk too.
    dir_mtimes = tool != "rsync -H"
    assert link_groups(dst) == link_groups(src)
    assert tree_of(dst, dir_mtimes=dir_mtimes) == tree_of(src, dir_mtimes=dir_mtimes)
    until(lambda: server_groups(alice, "copy") == names_only(link_groups(src)),
          within=60, what="the links on the server")
    m2 = mount(alice)
    assert link_groups(at(m2, "copy")) == link_groups(src)
    assert tree_of(at(m2, "copy"), dir_mtimes=False) == tree_of(src, dir_mtimes=False)


def test_cp_al_and_a_local_git_clone_link_within_the_mount(alice, mount):
    m = mount(alice)
    local_tree_with_links(at(m, "tree"))
    subprocess.run(["cp", "-al", at(m, "tree"), at(m, "tree2")], check=True)
    assert os.stat(at(m, "tree2", "two")).st_nlink == 6
    assert os.stat(at(m, "tree2", "solo")).st_ino == os.stat(at(m, "tree", "solo")).st_ino
    git = ["git", "-c", "user.name=a", "-c", "user.email=a@b", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", at(m, "repo")], check=True)
    with open(at(m, "repo", "f.txt"), "w") as f:
        f.write("hello\n")
    subprocess.run([*git, "-C", at(m, "repo"), "add", "f.txt"], check=True)
    subprocess.run([*git, "-C", at(m, "repo"), "commit", "-qm", "one"], check=True)
    # A local clone hard-links the objects.
    subprocess.run([*git, "clone", "-q", "--local", at(m, "repo"), at(m, "clone")], check=True)
    objs = [os.path.join(d, f) for d, _, fs in os.walk(at(m, "clone", ".git", "objects"))
            for f in fs]
    assert objs and all(os.stat(p).st_nlink == 2 for p in objs if "/pack/" not in p)
    subprocess.run([*git, "-C", at(m, "clone"), "fsck", "--strict"], check=True)
    # Edits in the clone do not reach the repository's files.
    with open(at(m, "clone", "f.txt"), "w") as f:
        f.write("changed\n")
    subprocess.run([*git, "-C", at(m, "clone"), "commit", "-qam", "two"], check=True)
    assert read(at(m, "repo", "f.txt")) == b"hello\n"
    subprocess.run([*git, "-C", at(m, "repo"), "fsck", "--strict"], check=True)
    until(lambda: server_groups(alice, "tree2") and
          len(server_groups(alice, "tree")) == 3, within=60, what="the trees on the server")
    m2 = mount(alice)
    until(lambda: os.path.exists(at(m2, "clone", "f.txt")), within=60, what="the clone on m2")
    assert os.stat(at(m2, "tree", "two")).st_nlink == 6
    subprocess.run([*git, "-C", at(m2, "clone"), "fsck", "--strict"], check=True)


def test_the_cache_commands_take_a_links_name_for_its_file(linked):
    m, alice = linked
    read(at(m, "a.txt"))
    entries = {e["name"]: e for e in cloudfs("cache", "ls", "--json", m.mountpoint)["entries"]}
    assert entries["b.txt"]["kind"] == "file"
    assert entries["b.txt"]["bytes"] == entries["a.txt"]["bytes"] == len(b"the one content\n")
    (e,) = cloudfs("cache", "ls", "--json", at(m, "b.txt"))["entries"]
    assert e["kind"] == "file" and e["cached_bytes"] == len(b"the one content\n")


def test_a_link_across_a_folder_shared_on_its_way_goes_and_the_file_stays(
        alice, mount, proxy):
    """The link was queued before its folder became a shared folder, so it
    would cross a namespace: the name goes (a warning says so), the file
    keeps its content at its own name, and the queue empties."""
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "proj"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    m = mount(alice.clone(proxy.url))
    assert read(at(m, "a.txt")) == b"the one content\n"
    proxy.hold(r"POST /meta/ns/\d+/commit")
    os.link(at(m, "a.txt"), at(m, "proj", "b.txt"))
    proxy.wait_held(1)
    r = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "proj"})
    assert r.status == 200, r
    proxy.release()
    until(lambda: not os.path.exists(at(m, "proj", "b.txt")), within=30,
          what="the link's name gone")
    cloudfs("status", "--wait", m.mountpoint)
    assert "cannot link 'a.txt' to 'proj/b.txt'" in m.log_text()
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    assert read(at(m, "a.txt")) == b"the one content\n"
    assert server_names(alice) == {"a.txt": "file", "proj": "mount"}


def test_a_folder_deleted_elsewhere_takes_its_names_out_of_the_counts(alice, mount):
    """The server lists the folder's delete alone; the kernel is told that
    the files it held further names of have fewer now."""
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "d"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    link(alice, "a.txt", "d/b.txt")
    m = mount(alice)
    assert os.stat(at(m, "a.txt")).st_nlink == 2
    assert os.stat(at(m, "d", "b.txt")).st_nlink == 2
    alice.commit_ok(alice.root_ns, {"op": "delete", "path": "d", "recursive": True})
    until(lambda: not os.path.exists(at(m, "d")), within=30, what="d gone from the mount")
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    assert read(at(m, "a.txt")) == b"the one content\n"


def test_a_link_whose_name_was_taken_meanwhile_goes(alice, mount, proxy):
    """Another device made a file at the link's name before the link came:
    the server refuses it (exists), and the mount shows that file there,
    the linked file with its one name."""
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    m = mount(alice.clone(proxy.url))
    assert read(at(m, "a.txt")) == b"the one content\n"
    proxy.hold(r"POST /meta/ns/\d+/commit")
    os.link(at(m, "a.txt"), at(m, "c.txt"))
    proxy.wait_held(1)
    alice.write_file(alice.root_ns, "c.txt", b"another device's\n")
    proxy.release()
    cloudfs("status", "--wait", m.mountpoint)
    until(lambda: read(at(m, "c.txt")) == b"another device's\n", within=30,
          what="the other device's file at the name")
    assert os.stat(at(m, "a.txt")).st_nlink == 1
    assert os.stat(at(m, "c.txt")).st_ino != os.stat(at(m, "a.txt")).st_ino
    assert server_names(alice) == {"a.txt": "file", "c.txt": "file"}
    assert "refused link 'a.txt' to c.txt: 'c.txt' exists" in m.log_text()


COMMIT = r"POST /meta/ns/\d+/commit"


def make_folder_while(proxy, window, m, *path):
    """mkdir PATH on mount M (through PROXY) while its commit is in
    WINDOW: "sending" (held before the server), "answered" (applied, its
    answer held), "lost" (applied, its answer never comes), "same batch"
    (behind another commit, held, so that the link goes with it)."""
    if window == "sending":
        proxy.hold(COMMIT)
    elif window == "answered":
        proxy.stall(COMMIT)
    elif window == "lost":
        proxy.lose(COMMIT)
    else:
        proxy.hold(COMMIT)
        os.mkdir(at(m, "first"))
        proxy.wait_held(1)
    os.mkdir(at(m, *path))
    if window == "sending":
        proxy.wait_held(1)
    elif window == "answered":
        proxy.wait_stalled(1)
    elif window == "lost":
        proxy.wait_lost(1)


@pytest.mark.parametrize("end", ["remount", "kill9"])
@pytest.mark.parametrize("window", ["sending", "answered", "lost", "same batch"])
def test_a_link_into_a_folder_just_made_keeps_its_name(alice, mount, proxy, window, end):
    """link(2) into a folder whose creation the server has not confirmed
    yet names the folder by an id of the mount's own until then: the name
    follows the folder to the id the server gives it, whenever the answer
    comes, and is there after a remount or a kill -9 and on the server."""
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    c = alice.clone(proxy.url)
    m = mount(c, timeout=3)
    assert read(at(m, "a.txt")) == b"the one content\n"
    make_folder_while(proxy, window, m, "d")
    os.link(at(m, "a.txt"), at(m, "d", "b.txt"))
    if end == "kill9":
        fsync_dir(at(m, "d"))
        m.kill9()
    proxy.lose(None)
    proxy.release()
    if end == "remount":
        cloudfs("status", "--wait", m.mountpoint)
        m.unmount()
    proxy.cut()
    m = mount(c, cache=m.cache, timeout=3)
    assert os.listdir(at(m, "d")) == ["b.txt"]
    cloudfs("status", "--wait", m.mountpoint)
    want = {"a.txt": "file", "d": "dir", "d/b.txt": "link"} | (
        {"first": "dir"} if window == "same batch" else {})
    assert server_names(alice) == want
    assert os.stat(at(m, "d", "b.txt")).st_nlink == 2
    m.unmount()
    m = mount(alice)
    assert os.listdir(at(m, "d")) == ["b.txt"]
    assert os.stat(at(m, "a.txt")).st_ino == os.stat(at(m, "d", "b.txt")).st_ino


def test_a_link_into_a_folder_made_again_is_not_refused(alice, mount, proxy):
    """The link and the folder it goes into go in one batch, and the
    folder's folder was deleted elsewhere: the server answers both "not
    found".  The folder is made again, and so is the link, after it: its
    name was refused and lost, the folder kept."""
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "p"})
    alice.write_file(alice.root_ns, "a.txt", b"the one content\n")
    m = mount(alice.clone(proxy.url), timeout=3)
    assert read(at(m, "a.txt")) == b"the one content\n"
    make_folder_while(proxy, "same batch", m, "p", "d")
    os.link(at(m, "a.txt"), at(m, "p", "d", "b.txt"))
    alice.commit_ok(alice.root_ns, {"op": "delete", "path": "p", "recursive": True})
    proxy.release()
    cloudfs("status", "--wait", m.mountpoint)
    assert "refused" not in m.log_text()
    assert os.listdir(at(m, "p", "d")) == ["b.txt"]
    assert server_names(alice) == {"a.txt": "file", "first": "dir", "p": "dir",
                                   "p/d": "dir", "p/d/b.txt": "link"}
    assert node_of(alice, "p/d/b.txt") == node_of(alice, "a.txt")
    assert os.stat(at(m, "a.txt")).st_nlink == 2
