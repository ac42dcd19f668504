"""Real tools save files the way they do on a local disk, and cloudfs keeps
exactly what they made: git (commits, branches, a merge, gc), sed -i,
rsync (twice, and --inplace), vim's saves, os.replace from four processes
on one name, tar x over an existing tree, cp --backup=numbered and an
office suite's lock file next to a document saved by rename.

Each scenario runs in one mount, started the way users start it (a daemon,
default options), in its folder "work", with what the tool edits already on
the server where that matters (most tools save by renaming a new file over
the old one, and that is where a mount may mistake its own save for
someone else's edit). After `cloudfs status --wait` on that mount, a second
mount of the same user with an empty cache must show the same tree, the
server must list it, and it must equal the tree the same scenario makes in
a local directory (the reference), as far as the tool makes the same bytes
twice. Nowhere may a "conflicted copy" appear: only one mount wrote.

Every test runs twice: [local], where the "mount" is a local directory
(its second view a `cp -a` of it, its server listing its own listing), so
that the scenario and its checks are shown right on a plain disk; and
[cloudfs], the promise itself."""

import os
import random
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from cfs_fs import listing_of, payload, read, server_listing, shape, tree_of
from cfs_server import CLOUDFS

T = 1_600_000_000_000_000_000
CONFLICT = "conflicted copy"


def run(*cmd, cwd=None, env=None, check=True):
    """Runs CMD; it must exit 0 (unless not CHECK). Returns the
    CompletedProcess (text)."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, \
            f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p


def write(path, data, mode=None, mtime_ns=None):
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def names_under(root):
    """Every path under ROOT (relative), symlinks not followed."""
    return [os.path.relpath(os.path.join(d, n), root)
            for d, dirs, files in os.walk(root) for n in dirs + files]


# Where a scenario runs: a local directory, or a cloudfs mount.

class Local:
    """The scenario on a plain local directory: its "second mount" is a
    copy (cp -a) and its "server" its own listing. Checks that pass here
    are right about the tools."""

    name = "local"

    def __init__(self, tmp):
        self.tmp = tmp
        self.root = str(tmp / "local" / "work")
        os.makedirs(self.root)

    def synced(self):
        pass

    def second(self):
        copy = self.tmp / "local-second"
        run("cp", "-a", os.path.dirname(self.root), copy)
        return str(copy / "work")

    def server(self, dir_mtimes=True):
        return listing_of(self.root, dir_mtimes)

    def server_paths(self):
        return names_under(os.path.dirname(self.root))

    def log_tail(self):
        return ""


class Cloud:
    """The scenario in a daemonized mount with default options; the second
    view is a new mount with an empty cache."""

    name = "cloudfs"

    def __init__(self, request):
        self.alice = request.getfixturevalue("alice")
        self.mount = request.getfixturevalue("mount")
        self.first = self.mount(self.alice, start="daemon")
        self.root = os.path.join(self.first.mountpoint, "work")
        os.mkdir(self.root)

    def synced(self):
        """cloudfs status --wait: every change of the first mount is on
        the server."""
        p = run(CLOUDFS, "status", "--wait", "--timeout", "120", self.first.mountpoint,
                check=False)
        assert p.returncode == 0, (f"cloudfs status --wait exited {p.returncode}: "
                                   f"{p.stdout}{p.stderr[-2000:]}\n{self.log_tail()}")

    def second(self):
        return os.path.join(self.mount(self.alice, start="daemon").mountpoint, "work")

    def server(self, dir_mtimes=True):
        return server_listing(self.alice, self.alice.root_ns, "work", dir_mtimes)

    def server_paths(self):
        return list(server_listing(self.alice, self.alice.root_ns))

    def log_tail(self, lines=12):
        """The first mount's warnings and errors: its first and last LINES."""
        text = [line for line in self.first.log_text().splitlines() if " info: " not in line]
        if len(text) > 2 * lines:
            text = text[:lines] + [f"[... {len(text) - 2 * lines} more ...]"] + text[-lines:]
        return "the first mount's log (warnings and errors):\n" + "\n".join(text)


@pytest.fixture(params=["local", "cloudfs"])
def place(request, tmp_path):
    return Local(tmp_path) if request.param == "local" else Cloud(request)


@pytest.fixture
def reference(tmp_path):
    """A local directory where the scenario runs first: the reference."""
    root = tmp_path / "reference" / "work"
    os.makedirs(root)
    return str(root)


def without(tree, paths=(), keys=()):
    """TREE (a tree_of or listing_of) without PATHS and without KEYS in
    each entry."""
    return {p: {k: v for k, v in d.items() if k not in keys}
            for p, d in tree.items() if p not in paths}


def contents(root, names):
    """{name: the bytes of ROOT/name, or None where it is missing}."""
    out = {}
    for name in names:
        try:
            out[name] = read(os.path.join(root, name))
        except FileNotFoundError:
            out[name] = None
    return out


def expect_files(place, root, expected):
    """The files of EXPECTED ({name: bytes or str}) hold those bytes under
    ROOT (a place's or the reference's)."""
    want = {n: d.encode() if isinstance(d, str) else d for n, d in expected.items()}
    got = contents(root, want)
    wrong = {n: (got[n], want[n]) for n in want if got[n] != want[n]}
    assert not wrong, f"files in {root} with other bytes than expected (got, expected): " \
        f"{dict(list(wrong.items())[:5])} ({len(wrong)} of {len(want)})\n{place.log_tail()}"


def verify(place, reference, compare="tree", ignore=(), dir_mtimes=False):
    """The end of every test: once the first mount has sent everything,
    its tree, a second mount's and the server's listing are one and the
    same, no conflicted copy is anywhere, the first mount still shows
    that tree at the end, and the tree equals the
    reference's: in full (COMPARE "tree"), without mtimes ("shape"), or
    only names, types and sizes ("names"), leaving out the paths IGNORE
    (what the tool writes differently each run, such as git's index).
    Folders' mtimes are compared only with DIR_MTIMES, for the tools that
    set them (tar, rsync): a create or delete in a folder sets its mtime
    only in the mount that made it (mount.cloudfs(8)).
    Returns the root of the second view, for the tool's own checks."""
    place.synced()
    first = tree_of(place.root, dir_mtimes=dir_mtimes)
    first_listing = listing_of(place.root, dir_mtimes=dir_mtimes)
    on_server = place.server(dir_mtimes)
    second_root = place.second()
    second = tree_of(second_root, workers=4, dir_mtimes=dir_mtimes)

    conflicted = [p for p in (list(first) + list(second) + place.server_paths())
                  if CONFLICT in p]
    assert not conflicted, f"conflicted copies where only one mount wrote: {conflicted}\n" \
        + place.log_tail()
    differ = lambda a, b: {p: (a.get(p), b.get(p)) for p in sorted(set(a) | set(b))  # noqa: E731
                           if a.get(p) != b.get(p)}
    assert first_listing == on_server, \
        "the server lists another tree than the first mount shows; (mount, server): " \
        f"{differ(first_listing, on_server)}\n{place.log_tail()}"
    assert first == second, \
        f"the second mount shows another tree; (first, second): {differ(first, second)}"
    ref = tree_of(reference, dir_mtimes=dir_mtimes)
    keys = {"tree": (), "shape": ("mtime_ns",), "names": ("mtime_ns", "sha256", "mode")}[compare]
    got, want = without(first, ignore, keys), without(ref, ignore, keys)
    assert got == want, f"the tree differs from the tool's on a local disk; (mount, local): " \
        f"{differ(got, want)}"
    # What the server sends back of the first mount's own changes undoes none of them.
    again = tree_of(place.root, dir_mtimes=dir_mtimes)
    assert again == first, "the first mount's tree changed after everything was sent; " \
        f"(then, now): {differ(first, again)}\n{place.log_tail()}"
    return second_root


def both(place, reference, scenario, *args):
    """Runs SCENARIO(root, synced, scratch, *ARGS) in the reference
    directory, then in PLACE; returns what each returned."""
    ref = scenario(reference, lambda: None, os.path.join(os.path.dirname(reference), "scratch"),
                   *args)
    try:
        got = scenario(place.root, place.synced,
                       os.path.join(os.path.dirname(os.path.dirname(place.root)), "scratch-"
                                    + place.name), *args)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{place.log_tail()}") from e
    return ref, got


# git: 50 commits on two branches, a merge, gc.

def git_env(home):
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "gitconfig")
    write(config, textwrap.dedent("""\
        [user]
            name = A
            email = a@example.org
        [init]
            defaultBranch = main
        [gc]
            auto = 0
        [pack]
            threads = 1
        [advice]
            detachedHead = false
    """))
    return {**os.environ, "HOME": home, "GIT_CONFIG_GLOBAL": config, "GIT_CONFIG_NOSYSTEM": "1",
            "TZ": "UTC", "LC_ALL": "C"}


def git_history(root, synced, scratch):
    """git init, 50 commits (a branch of 15 and the main line), a merge,
    a tag, a second branch, gc. Returns the environment git ran in."""
    env = git_env(scratch)
    repo = os.path.join(root, "repo")

    def git(*args, when=100):  # the time in reflogs too, so that they are the same
        e = dict(env)
        e["GIT_AUTHOR_DATE"] = e["GIT_COMMITTER_DATE"] = f"@{1_700_000_000 + when} +0000"
        return run("git", *args, cwd=repo, env=e).stdout

    os.mkdir(repo)
    git("init", "-q")
    os.mkdir(os.path.join(repo, "src"))

    def edit(i, folder="src"):
        os.makedirs(os.path.join(repo, folder), exist_ok=True)
        with open(os.path.join(repo, folder, f"f{i % 7}.c"), "a") as f:
            f.write(f"/* change {i} */\nint v{i} = {i};\n")
        if i % 5 == 0:
            write(os.path.join(repo, folder, f"new{i}.txt"), payload(3000 + i, i))
        git("add", "-A")
        git("commit", "-qm", f"commit {i}", when=i)

    for i in range(15):
        edit(i)
    synced()  # the history so far is on the server: git now renames over synced files
    git("checkout", "-qb", "feature")
    for i in range(15, 30):
        edit(i, "feature")
        if i == 20:
            git("mv", "src/new10.txt", "feature/moved10.txt")
            git("commit", "-qm", "move", when=i)
    git("checkout", "-q", "main")
    for i in range(30, 45):
        edit(i)
    git("merge", "-q", "--no-ff", "-m", "merge feature", "feature", when=45)
    git("tag", "-a", "v1", "-m", "v1", when=45)
    git("checkout", "-qb", "topic", "HEAD~3")
    for i in range(45, 48):
        edit(i, "topic")
    git("checkout", "-q", "main")
    for i in range(48, 50):
        edit(i)
        if i == 49:
            git("rm", "-q", "src/new0.txt")
            git("commit", "-qm", "remove", when=i)
    git("gc", "-q")
    return env


def git_checks(repo, env):
    """What git says of the repository at REPO: fsck clean, status clean;
    returns (HEAD, the log of every ref, the refs)."""
    def git(*args):
        return run("git", *args, cwd=repo, env=env).stdout

    fsck = run("git", "fsck", "--full", "--strict", "--no-dangling", cwd=repo, env=env)
    assert fsck.stdout == "" and fsck.stderr == "", fsck
    assert git("status", "--porcelain", "--untracked-files=all") == ""
    head = git("rev-parse", "HEAD")
    log = git("log", "--all", "--format=%H %P %s")
    assert len(log.splitlines()) == 50 + 2 + 1  # commits, move and remove, the merge
    return head, log, git("show-ref")


def test_git_history_with_branches_merge_and_gc_is_whole_in_a_fresh_mount(place, reference):
    ref_env, env = both(place, reference, git_history)
    expected = git_checks(os.path.join(reference, "repo"), ref_env)
    assert git_checks(os.path.join(place.root, "repo"), env) == expected
    # The index holds inode numbers, ctimes and device ids: its bytes are
    # the machine's, not the history's.
    second = verify(place, reference, "shape", ignore={"repo/.git/index"})
    assert git_checks(os.path.join(second, "repo"), env) == expected


# sed -i on 100 files that are on the server.

def sed_files(root, synced, scratch):
    for i in range(100):
        lines = [f"line {j} of file {i}: the colour of {'grey' if j % 3 else 'gray'}\n"
                 for j in range(i % 9 + 1)]
        write(os.path.join(root, f"doc{i:03}.txt"), "".join(lines),
              mode=[0o644, 0o600, 0o755][i % 3])
    synced()
    run("sh", "-c", "sed -i -e 's/colour/color/g' -e 's/grey/gray/' doc*.txt", cwd=root)
    run("sh", "-c", "sed -i '$a the end' doc0[0-4]*.txt", cwd=root)


def sed_expected(i):
    out = "".join(f"line {j} of file {i}: the color of gray\n" for j in range(i % 9 + 1))
    return out + ("the end\n" if i < 50 else "")


def test_sed_in_place_on_100_files_keeps_each_file_once_with_its_new_content(place, reference):
    both(place, reference, sed_files)
    expected = {f"doc{i:03}.txt": sed_expected(i) for i in range(100)}
    for root in (reference, place.root):
        expect_files(place, root, expected)
    second = verify(place, reference, "shape")
    expect_files(place, second, expected)
    for i in range(100):
        assert os.stat(os.path.join(second, f"doc{i:03}.txt")).st_mode & 0o777 == \
            [0o644, 0o600, 0o755][i % 3]


# rsync -a twice, with --inplace, and a run that replaces synced files.

def rsync_source(src):
    rnd = random.Random(7)
    for d in ("", "a", "a/b", "c", "d e"):
        os.makedirs(os.path.join(src, d), exist_ok=True)
    for i in range(60):
        d = rnd.choice(("", "a", "a/b", "c", "d e"))
        write(os.path.join(src, d, f"file{i}"), payload(rnd.choice([0, 10, 5000, 70000]), i),
              mode=rnd.choice([0o644, 0o600, 0o755]), mtime_ns=T + i * 1_000_003)
    os.symlink("../file1", os.path.join(src, "a", "link"))
    os.utime(os.path.join(src, "a", "link"), ns=(T, T), follow_symlinks=False)
    for i, d in enumerate(("a/b", "a", "c", "d e", "")):
        os.utime(os.path.join(src, d), ns=(T, T + i))


def itemized(out):
    """The itemized changes of rsync's output (the lines before its stats)."""
    return [line for line in out.splitlines()
            if re.match(r"(\*deleting|[<>ch.][fdLDS]\S{9,}) ", line)]


def rsync_twice(root, synced, scratch):
    """rsync -a of a tree, again (nothing to send), new bytes --inplace,
    new bytes by rsync's default (a temporary file renamed over the old
    one), and again. Checks rsync's account of each run."""
    src = os.path.join(scratch, "src")
    rsync_source(src)
    dst = os.path.join(root, "dst")
    files = {os.path.basename(p): p for p in names_under(src)}

    def sync(*options):
        out = run("rsync", "-a", "--itemize-changes", "--stats", *options,
                  f"{src}/", f"{dst}/").stdout
        sent = sorted(line.split(" ", 1)[1] for line in itemized(out) if line.startswith(">f"))
        return out, sent

    def change(numbers, seed, size=None):
        for i in numbers:
            p = os.path.join(src, files[f"file{i}"])
            write(p, payload(size or os.path.getsize(p), f"{seed} {i}"),
                  mtime_ns=T + seed * 10**9 + i)
        return sorted(files[f"file{i}"] for i in numbers)

    out, sent = sync()
    assert len(itemized(out)) == len(files) + 1, out  # and "./"
    synced()
    for again in range(2):
        out, sent = sync()
        assert itemized(out) == [] and "Number of regular files transferred: 0" in out, out
    changed = change((3, 9, 27), 5)  # same sizes, new bytes
    assert sync("--inplace")[1] == changed
    synced()
    changed = change((3, 4, 5, 40), 7, size=1234)
    assert sync()[1] == changed
    synced()
    out, sent = sync()
    assert itemized(out) == [] and "Number of regular files transferred: 0" in out, out
    return src


def test_rsync_twice_sends_nothing_the_second_time_and_updates_in_place(place, reference):
    src, _ = both(place, reference, rsync_twice)
    # Every file, mode and mtime as in the source, as rsync -a makes it.
    second = verify(place, reference, "tree", dir_mtimes=True)
    assert tree_of(os.path.join(second, "dst")) == tree_of(src)


# vim: the swap file, and a save by rename; then vim itself.

def vim_style_saves(root, synced, scratch):
    """Ten files on the server, each edited as vim does it: the swap
    file .NAME.swp created and written while editing, the new content
    written under a new name and renamed over the file, the swap file
    unlinked; three saves each, the first over the synced file."""
    for i in range(10):
        write(os.path.join(root, f"notes{i}.txt"), f"notes {i}\n" * (i + 1))
    synced()
    for i in range(10):
        name = os.path.join(root, f"notes{i}.txt")
        swap = os.path.join(root, f".notes{i}.txt.swp")
        fd = os.open(swap, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"b0VIM 9.0\0" + bytes(4086))
            os.fsync(fd)
            for save in range(3):
                os.pwrite(fd, payload(4096, f"swap {i} {save}"), 4096 * (save + 1))
                os.fsync(fd)
                new = os.path.join(root, f"notes{i}.txt~new")
                write(new, read(name) + f"save {save}\n".encode(), mode=0o644)
                os.rename(new, name)
        finally:
            os.close(fd)
        os.unlink(swap)


def test_vim_style_saves_leave_the_file_and_no_swap_file(place, reference):
    both(place, reference, vim_style_saves)
    second = verify(place, reference, "shape")
    assert sorted(os.listdir(second)) == [f"notes{i}.txt" for i in range(10)]
    for i in range(10):
        assert read(os.path.join(second, f"notes{i}.txt")).decode() == \
            f"notes {i}\n" * (i + 1) + "save 0\nsave 1\nsave 2\n"


VIM = shutil.which("vim.tiny") or shutil.which("vim")


def real_vim(root, synced, scratch):
    """vim -u NONE edits three files on the server and saves each with :w
    as it does by default: by rename (f to f~, a new f, f~ unlinked;
    nocompatible), in place after a copy (compatible), and to a new name.
    (backupskip is emptied: its default skips backups under /tmp.)"""
    for name in ("byrename.txt", "inplace.txt", "source.txt"):
        write(os.path.join(root, name), "one\ntwo\nthree\n")
    synced()

    def vim(*args):
        run(VIM, "-u", "NONE", "-i", "NONE", "--cmd", "set backupskip=", *args, "-es",
            cwd=root, env={**os.environ, "HOME": scratch})

    os.makedirs(scratch, exist_ok=True)
    vim("-N", "-c", "%s/two/2/", "-c", "wq", "byrename.txt")
    vim("-c", "%s/one/1/", "-c", "wq", "inplace.txt")
    vim("-N", "-c", "%s/three/3/", "-c", "w copy.txt", "-c", "q!", "source.txt")
    vim("-N", "-c", "%s/three/three\\rfour/", "-c", "wq", "byrename.txt")


@pytest.mark.skipif(VIM is None, reason="no vim (tools/debian-packages lists vim-tiny)")
def test_real_vim_saves_by_rename_in_place_and_to_a_new_name(place, reference):
    both(place, reference, real_vim)
    second = verify(place, reference, "shape")
    assert {n: read(os.path.join(second, n)).decode() for n in os.listdir(second)} == {
        "byrename.txt": "one\n2\nthree\nfour\n", "inplace.txt": "1\ntwo\nthree\n",
        "source.txt": "one\ntwo\nthree\n", "copy.txt": "one\ntwo\n3\n"}


# os.replace from four processes on one name.

REPLACER = """
import os, sys
root, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    tmp = os.path.join(root, f".target.{me}.{i}.tmp")
    with open(tmp, "wb") as f:
        f.write(f"writer {me} round {i:04}\\n".encode().ljust(64, b"."))
        if i % 2:  # some save with fsync, some without
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, os.path.join(root, "target"))
"""

ROUNDS = 50


def replace_race(root, synced, scratch):
    write(os.path.join(root, "target"), b"the first version\n".ljust(64, b"."))
    synced()
    procs = [subprocess.Popen([sys.executable, "-c", REPLACER, root, str(me), str(ROUNDS)])
             for me in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4


def test_os_replace_from_four_processes_leaves_the_last_version_everywhere(place, reference):
    both(place, reference, replace_race)
    last = read(os.path.join(place.root, "target"))
    finals = {f"writer {me} round {ROUNDS - 1:04}\n".encode().ljust(64, b".") for me in range(4)}
    assert last in finals, last
    # Which writer is last is the scheduler's choice: compare names and sizes.
    second = verify(place, reference, "names")
    assert os.listdir(second) == ["target"]
    assert read(os.path.join(second, "target")) == last


# tar x over a tree that is on the server.

def tar_tree(root, version):
    """The tree of an archive: VERSION 1 the old one, 2 the new one (the
    same names with new bytes, new files, a file become a symlink and a
    symlink become a file)."""
    rnd = random.Random(version)
    for d in ("", "lib", "lib/sub", "doc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for i in range(40 + 10 * (version - 1)):
        d = ("", "lib", "lib/sub", "doc")[i % 4]
        write(os.path.join(root, d, f"f{i}.dat"), payload(rnd.choice([0, 100, 9000, 200000]),
                                                             f"{version} {i}"),
              mode=rnd.choice([0o644, 0o755, 0o600]), mtime_ns=T + version * 10**9 + i)
    if version == 1:
        write(os.path.join(root, "was-a-file"), "a file\n", mtime_ns=T)
        os.symlink("f1.dat", os.path.join(root, "was-a-link"))
        os.utime(os.path.join(root, "was-a-link"), ns=(T, T), follow_symlinks=False)
    else:
        os.symlink("lib/f1.dat", os.path.join(root, "was-a-file"))
        os.utime(os.path.join(root, "was-a-file"), ns=(T, T), follow_symlinks=False)
        write(os.path.join(root, "was-a-link"), "now a file\n", mtime_ns=T)
    for i, d in enumerate(("lib/sub", "lib", "doc", "")):
        os.utime(os.path.join(root, d), ns=(T, T + version * 10**9 + i))


def tar_over(root, synced, scratch):
    for version in (1, 2):
        tree = os.path.join(scratch, f"v{version}")
        tar_tree(tree, version)
        run("tar", "--format=posix", "-cf", os.path.join(scratch, f"v{version}.tar"),
            "-C", tree, ".")
    run("tar", "-xf", os.path.join(scratch, "v1.tar"), "-C", root)
    synced()
    run("tar", "-xf", os.path.join(scratch, "v2.tar"), "-C", root)
    return tree


def test_tar_x_over_an_existing_tree_leaves_the_archive_s_tree(place, reference):
    v2, _ = both(place, reference, tar_over)
    second = verify(place, reference, "tree", dir_mtimes=True)
    assert tree_of(second) == tree_of(v2)


# cp --backup=numbered over files on the server.

def cp_backups(root, synced, scratch):
    """Files on the server, then cp -p --backup=numbered of new versions
    over them twice: each old version renamed to NAME.~N~."""
    dst = os.path.join(root, "dst")
    os.mkdir(dst)
    for i in range(12):
        write(os.path.join(dst, f"f{i}.txt"), f"version 0 of {i}\n", mtime_ns=T + i)
    synced()
    for version in (1, 2):
        src = os.path.join(scratch, f"v{version}")
        os.makedirs(src)
        for i in range(12 + version):
            write(os.path.join(src, f"f{i}.txt"), f"version {version} of {i}\n" * version,
                  mtime_ns=T + version * 10**9 + i)
        run("sh", "-c", f"cp -p --backup=numbered '{src}'/* '{dst}'/")


def test_cp_backup_numbered_keeps_every_version_under_its_number(place, reference):
    both(place, reference, cp_backups)
    second = verify(place, reference, "tree")
    dst = os.path.join(second, "dst")
    assert read(os.path.join(dst, "f3.txt")) == b"version 2 of 3\n" * 2
    assert read(os.path.join(dst, "f3.txt.~1~")) == b"version 0 of 3\n"
    assert read(os.path.join(dst, "f3.txt.~2~")) == b"version 1 of 3\n"
    assert read(os.path.join(dst, "f12.txt.~1~")) == b"version 1 of 12\n"
    assert len(os.listdir(dst)) == 12 * 3 + 2 + 1  # f12 has one backup, f13 none


# An office suite: the lock file .~lock.NAME# while the document is open,
# the document saved by writing a temporary file and renaming it over.

def office_saves(root, synced, scratch):
    docs = ("report.odt", "budget 2026.ods")
    for n, doc in enumerate(docs):
        write(os.path.join(root, doc), payload(150_000 + n, f"{doc} 0"))
    synced()
    for n, doc in enumerate(docs):  # both open at once
        write(os.path.join(root, f".~lock.{doc}#"),
              f",alice,host,04.12.2026 15:00,file:///home/alice/.config/libreoffice/4;\n")
    for save in range(1, 4):
        for n, doc in enumerate(docs):
            tmp = os.path.join(root, f"lu{n}{save}abc.tmp")
            write(tmp, payload(150_000 + n + save, f"{doc} {save}"))
            os.rename(tmp, os.path.join(root, doc))
        if save == 1:
            synced()  # a save over a synced document, with its lock file synced too
    for doc in docs:
        os.unlink(os.path.join(root, f".~lock.{doc}#"))


def test_office_lock_files_come_and_go_while_the_document_is_saved_by_rename(place, reference):
    both(place, reference, office_saves)
    second = verify(place, reference, "shape")
    assert sorted(os.listdir(second)) == ["budget 2026.ods", "report.odt"]
    for n, doc in enumerate(("report.odt", "budget 2026.ods")):
        assert read(os.path.join(second, doc)) == payload(150_000 + n + 3, f"{doc} 3")
