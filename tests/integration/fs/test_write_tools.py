"""The tools people copy trees with work on the mount, and the server ends
up holding exactly the tree they wrote: cp -a, rsync -a, tar x, and git
(init, add, commit) over a source tree of thousands of files in a few
dozen folders (mixed sizes, a few of several MiB, symlinks, exec bits,
odd names). Each result is read back through a fresh mount with an empty
cache, so every byte compared comes from the server."""

import os
import random
import subprocess
import time

import pytest

from cfs_fs import (MiB, listing_of, log_size, payload, requests_since, server_listing, tree_of,
                    unmount_drained, until, until_on_server)

T = 1_600_000_000_000_000_000


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The source tree (about 2100 entries), made once for the module."""
    root = tmp_path_factory.mktemp("tools") / "src"
    rnd = random.Random(2024)
    dirs = [""]
    for i in range(36):
        parent = rnd.choice(dirs) if i > 6 else ""
        name = rnd.choice(["src", "docs", "lib", "data", "Fotos 2024", "caf\u00e9", "x"])
        dirs.append(os.path.join(parent, f"{name}-{i}"))
    for d in dirs[1:]:
        os.makedirs(root / d)
    files = []
    for i in range(2000):
        d = rnd.choice(dirs)
        size = rnd.choice([0, 1, 17, 100, 511, 1000, 2000, 4096, 8000, 30000, 150000])
        files.append((os.path.join(d, f"file {i}.txt" if i % 7 == 0 else f"f{i}"), size))
    files += [("big/exact-block.bin", 4 * MiB), ("big/nine.bin", 9 * MiB + 1),
              ("big/six.bin", 6 * MiB + 12345)]
    os.makedirs(root / "big")
    for i, (p, size) in enumerate(files):
        with open(root / p, "wb") as f:
            f.write(payload(size, i))
        os.chmod(root / p, rnd.choice([0o644] * 6 + [0o755, 0o600, 0o640, 0o700]))
    for i in range(40):
        target = rnd.choice([p for p, _ in files[:50]] + dirs[1:5] + ["no/such/file"])
        os.symlink(os.path.relpath(target, rnd.choice(dirs)), root / rnd.choice(dirs) / f"link{i}")
    for i, d in enumerate(sorted(dirs[1:] + ["big"], key=lambda d: -d.count("/"))):
        os.chmod(root / d, rnd.choice([0o755, 0o755, 0o750, 0o700]))
    for i, p in enumerate(sorted(tree_of(root))):  # times last: mtimes with nanoseconds
        os.utime(root / p, ns=(T, T + i * 1_000_003), follow_symlinks=False)
    os.utime(root, ns=(T, T))
    tree = tree_of(root)
    print(f"source: {len(tree)} entries, {sum(d.get('size', 0) for d in tree.values())} bytes")
    return root


def run(*cmd, cwd=None, env=None):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}: {p.stderr}"
    return p.stdout


def through_the_server(alice, m, mount, what, t0, under, reference):
    """Waits until the server holds the tree REFERENCE (a local directory)
    in the folder UNDER, and M shows it; then M unmounted with everything
    sent, and a fresh mount (empty cache) of the same user: returns it."""
    wrote = time.monotonic() - t0
    until_on_server(alice, alice.root_ns, listing_of(reference), under=under, within=45,
                    what=what)
    on_server = time.monotonic() - t0
    assert tree_of(os.path.join(m.mountpoint, under)) == tree_of(reference)
    unmount_drained(m)
    fresh = mount(alice)
    print(f"{what}: written in {wrote:.1f} s, on the server after {on_server:.1f} s")
    return fresh


@pytest.mark.parametrize("tool", ["cp -a", "rsync -a", "tar x"])
def test_a_tree_copied_with_the_tool_is_on_the_server_exactly(
        server, alice, mount, source, tmp_path, tool):
    m = mount(alice, timeout=10)  # the unmount's last sending takes at most 10 s
    reference = tmp_path / "reference"
    tarball = tmp_path / "src.tar"
    if tool == "tar x":  # pax: mtimes with nanoseconds
        run("tar", "--format=posix", "-cf", tarball, "-C", source, ".")
    copy = {
        "cp -a": lambda dst: run("cp", "-a", source, dst),
        "rsync -a": lambda dst: run("rsync", "-a", f"{source}/", f"{dst}/"),
        "tar x": lambda dst: (os.mkdir(dst), run("tar", "-xf", tarball, "-C", dst)),
    }[tool]
    copy(reference)  # what the tool makes of the source on a local disk
    assert tree_of(reference) == tree_of(source)
    since = log_size(server)
    t0 = time.monotonic()

    copy(os.path.join(m.mountpoint, "dst"))

    fresh = through_the_server(alice, m, mount, tool, t0, "dst", reference)
    # Small files go many to a commit request, not one each.
    commits = len(requests_since(server, since, r"POST /meta/ns/\d+/commit"))
    print(f"{tool}: {len(tree_of(reference))} entries in {commits} commit requests")
    assert commits < len(tree_of(reference)) / 3
    # And their blocks go many to an upload request (POST /block/batch),
    # not one PUT each.
    files = [d for d in listing_of(reference).values() if d["kind"] == "file" and d["size"]]
    uploads = len(requests_since(server, since, r"(PUT /block/|POST /block/batch)"))
    print(f"{tool}: {len(files)} files with content in {uploads} upload requests")
    assert uploads < len(files) / 3
    t1 = time.monotonic()
    assert tree_of(os.path.join(fresh.mountpoint, "dst"), workers=8) == tree_of(reference)
    print(f"{tool}: read back through a fresh mount in {time.monotonic() - t1:.1f} s")


def committed_part(listing):
    """Of a listing_of a git directory, what its commit decides: the
    objects and the branch (not the index's stat data, nor the times git
    wrote at), without mtimes."""
    return {p: {k: v for k, v in d.items() if k != "mtime_ns"} for p, d in listing.items()
            if p.startswith("objects") or p == "refs/heads/master"}


def test_a_git_repository_committed_in_the_mount_is_on_the_server_and_fscks(
        alice, mount, source, tmp_path):
    # The repository (the git directory, where git writes) is in the mount;
    # the work tree is the source itself, so that the time goes to git's
    # own writes, not to one more copy of the tree.
    m = mount(alice, timeout=10)
    env = {**os.environ, "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.org",
           "GIT_AUTHOR_DATE": "2020-09-13T12:26:40Z", "GIT_COMMITTER_DATE": "2020-09-13T12:26:40Z",
           "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GIT_WORK_TREE": str(source)}

    def git(git_dir, *args):
        return run("git", *args, cwd=source, env={**env, "GIT_DIR": str(git_dir)})

    def commit(git_dir):
        git(git_dir, "init", "-q", "-b", "master")
        git(git_dir, "add", "-A")
        git(git_dir, "commit", "-qm", "tree")
        return git(git_dir, "rev-parse", "HEAD")

    # The same commit made on a local disk: the reference.
    local = tmp_path / "local.git"
    head = commit(local)
    expected = committed_part(listing_of(local))
    print(f"git: {len(expected)} objects and directories")
    t0 = time.monotonic()

    assert commit(os.path.join(m.mountpoint, "repo.git")) == head

    wrote = time.monotonic() - t0
    until(lambda: committed_part(server_listing(alice, alice.root_ns, "repo.git")) == expected,
          within=45, what="the repository on the server")
    print(f"git: written in {wrote:.1f} s, on the server after {time.monotonic() - t0:.1f} s")
    unmount_drained(m)
    fresh = os.path.join(mount(alice).mountpoint, "repo.git")
    git(fresh, "fsck", "--full", "--strict")
    assert git(fresh, "log", "--format=%H %s") == head.strip() + " tree\n"
    assert git(fresh, "status", "--porcelain") == ""  # every file of the source, unchanged
