"""Mounts that change the same tree converge: after a scripted random
interleaving of creates, writes, appends, truncates, renames, deletes,
mkdirs and rmdirs in two mounts (of one user, or of two users sharing a
folder), once everything is quiet both mounts show the same tree, the
server lists exactly that tree, and a third, fresh mount shows it too.
Whatever conflicts arose were settled the same way everywhere.

The script is random.Random(SEED); the seed is printed. The mounts use
settle=0, so that commits (and conflicts) happen as the script runs.

Directory mtimes are left out: a mount sets a directory's mtime when it
changes the directory's entries, the server keeps the one last set on it
(mount.cloudfs(8), POSIX BEHAVIOUR)."""

import errno
import os
import random
import time

import pytest

from cfs_fs import listing_of, payload, rewrite, server_listing, tree_of, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)

SEED = 4242
STEPS = 300
TOLERATED = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}


def entries(root):
    """(files, dirs) under ROOT, as relative paths ("" is ROOT itself)."""
    files, dirs = [], [""]
    for d, subdirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        rel = "" if rel == "." else rel
        dirs += [os.path.join(rel, n) for n in subdirs]
        files += [os.path.join(rel, n) for n in names]
    return sorted(files), sorted(dirs)


def step(rnd, root, i):
    """One random change under ROOT (what it sees now); returns its name.
    A change may fail as the other side changed the tree meanwhile (with
    an errno of TOLERATED)."""
    files, dirs = entries(root)
    p = lambda rel: os.path.join(root, rel)  # noqa: E731
    new_name = lambda: os.path.join(rnd.choice(dirs), f"n{i}-{rnd.randrange(1000)}")  # noqa: E731
    ops = ["create"] * 4 + ["mkdir"] * 2
    if files:
        ops += ["write", "write", "append", "append", "truncate", "rename", "delete"]
    if len(dirs) > 1:
        ops += ["rmdir", "renamedir"]
    op = rnd.choice(ops)
    if op == "create":
        with open(p(new_name()), "xb") as f:
            f.write(payload(rnd.choice([0, 10, 1000, 30000]), f"c{i}"))
    elif op == "mkdir":
        os.mkdir(p(new_name()))
    elif op == "write":
        with open(p(rnd.choice(files)), "r+b") as f:
            f.seek(rnd.randrange(2000))
            f.write(payload(rnd.randrange(1, 500), f"w{i}"))
    elif op == "append":
        with open(p(rnd.choice(files)), "ab") as f:
            f.write(payload(rnd.randrange(1, 300), f"a{i}"))
    elif op == "truncate":
        os.truncate(p(rnd.choice(files)), rnd.randrange(3000))
    elif op == "rename":
        os.rename(p(rnd.choice(files)), p(new_name()))
    elif op == "delete":
        os.unlink(p(rnd.choice(files)))
    elif op == "rmdir":
        os.rmdir(p(rnd.choice(dirs[1:])))
    elif op == "renamedir":
        src = rnd.choice(dirs[1:])
        dst = new_name()
        if (dst + "/").startswith(src + "/"):
            return "renamedir (skipped: into itself)"
        os.rename(p(src), p(dst))
    return op


def interleave(roots, seed, steps=STEPS):
    """STEPS random changes, each in one of ROOTS, with short pauses so
    that the other side's changes arrive in between. Returns a count of
    each change and of the failures."""
    rnd = random.Random(seed)
    done = {}
    for i in range(steps):
        root = rnd.choice(roots)
        try:
            op = step(rnd, root, i)
        except OSError as e:
            if e.errno not in TOLERATED:
                raise
            op = f"failed with {errno.errorcode[e.errno]}"
        done[op] = done.get(op, 0) + 1
        time.sleep(rnd.choice([0, 0, 0.005, 0.02]))
    return done


def quiet_views(client, ns, roots):
    """What each root of ROOTS and the server (namespace NS) list, without
    directory mtimes."""
    return [listing_of(r, dir_mtimes=False) for r in roots] + \
        [server_listing(client, ns, dir_mtimes=False)]


def until_quiet(client, ns, roots, within=20):
    """Waits until every root of ROOTS and the server (namespace NS) list
    the same tree, twice in a row half a second apart. Returns it."""
    last = None

    def same():
        nonlocal last
        views = quiet_views(client, ns, roots)
        now = views[0] if all(v == views[0] for v in views) else None
        if now is not None and now == last:
            return True
        last = now
        time.sleep(0.5)
        return False

    try:
        until(same, within=within, what="the same tree everywhere")
    except AssertionError:
        views = quiet_views(client, ns, roots)
        diff = {p: [v.get(p) for v in views] for p in set().union(*views)
                if any(v.get(p) != views[0].get(p) for v in views)}
        raise AssertionError(f"the mounts and the server did not converge within {within} s; "
                             f"where they differ (each mount, then the server): {diff}")
    return last


def test_two_mounts_of_one_user_converge_after_a_random_interleaving(alice, mount):
    print(f"seed {SEED}")
    m1, m2 = mount(alice, settle=0), mount(alice, settle=0)

    done = interleave([m1.mountpoint, m2.mountpoint], SEED)
    print(f"the script did {done}")

    tree = until_quiet(alice, alice.root_ns, [m1.mountpoint, m2.mountpoint])
    print(f"converged on {len(tree)} entries")
    assert tree_of(m1.mountpoint, dir_mtimes=False) == tree_of(m2.mountpoint, dir_mtimes=False)
    fresh = mount(alice)
    assert tree_of(fresh.mountpoint, dir_mtimes=False) == tree_of(m1.mountpoint, dir_mtimes=False)


def test_two_users_on_a_shared_folder_converge_after_a_random_interleaving(
        alice, bob, mount):
    print(f"seed {SEED + 1}")
    alice.commit_ok(alice.root_ns, {"op": "dir", "path": "shared"})
    ns = alice.post(f"/meta/ns/{alice.root_ns}/share", {"path": "shared"}).json["ns"]
    assert alice.post(f"/meta/ns/{ns}/invite", {"user": "bob"}).status == 200
    ma, mb = mount(alice, settle=0), mount(bob, settle=0)
    roots = [os.path.join(ma.mountpoint, "shared"), os.path.join(mb.mountpoint, "shared")]
    until(lambda: all(os.path.isdir(r) for r in roots), what="the shared folder")

    done = interleave(roots, SEED + 1)
    print(f"the script did {done}")

    tree = until_quiet(alice, ns, roots)
    print(f"converged on {len(tree)} entries")
    assert tree_of(roots[0], dir_mtimes=False) == tree_of(roots[1], dir_mtimes=False)
    fresh = mount(bob)
    assert tree_of(os.path.join(fresh.mountpoint, "shared"), dir_mtimes=False) == \
        tree_of(roots[0], dir_mtimes=False)


@pytest.mark.parametrize("change", ["rename", "delete", "chmod"])
def test_a_change_here_and_an_edit_elsewhere_of_one_file_converge(alice, mount, proxy, change):
    # The local change is held in the proxy until the edit elsewhere is
    # committed: whoever wins, the mount must end up showing the server.
    alice.write_file(alice.root_ns, "x.txt", b"the original\n")
    m = mount(alice.clone(proxy.url), settle=0)
    proxy.hold(r"POST /meta/ns/\d+/commit")

    {"rename": lambda p: os.rename(p, os.path.join(m.mountpoint, "y.txt")),
     "delete": os.unlink, "chmod": lambda p: os.chmod(p, 0o600)}[change](
        os.path.join(m.mountpoint, "x.txt"))
    proxy.wait_held(1)
    rewrite(alice, alice.root_ns, "x.txt", b"changed elsewhere\n")
    proxy.release()

    until_quiet(alice, alice.root_ns, [m.mountpoint], within=10)


@pytest.mark.parametrize("change", ["rename", "delete"])
def test_an_edit_here_and_a_rename_or_delete_elsewhere_converge(alice, mount, proxy, change):
    # The local edit is held in the proxy (before its commit, which would
    # keep listings out until its answer) until the mount has listed the
    # change elsewhere: the file's node is then not where the edit's
    # commit says.  The edit is kept, and the mount ends up showing the
    # server.
    alice.write_file(alice.root_ns, "x.txt", b"the original\n")
    m = mount(alice.clone(proxy.url), settle=0)
    proxy.hold(r"POST /block/need")

    with open(os.path.join(m.mountpoint, "x.txt"), "wb") as f:
        f.write(b"edited here\n")
    proxy.wait_held(1)
    if change == "rename":
        alice.commit_ok(alice.root_ns, {"op": "move", "path": "x.txt", "to": "y.txt"})
    else:
        alice.commit_ok(alice.root_ns, {"op": "delete", "path": "x.txt"})
    time.sleep(1)  # the mount's long poll lists the change meanwhile
    proxy.release()

    tree = until_quiet(alice, alice.root_ns, [m.mountpoint], within=10)
    kept = [p for p, v in tree.items() if v.get("size") == len(b"edited here\n")]
    assert kept, f"the local edit is lost: {tree}"
    if change == "rename":
        assert tree.get("y.txt", {}).get("size") == len(b"the original\n"), tree
