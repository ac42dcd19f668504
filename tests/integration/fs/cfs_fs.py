"""Helpers of the mount.cloudfs tests: trees put on the server and read
back through a mount, polling with a deadline, reads that must not hang."""

import concurrent.futures
import hashlib
import json
import os
import random
import re
import stat
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from cfs_server import BLOCK_SIZE, CLOUDFS, Mount, file_op, write_token_file

MiB = 1024 * 1024


def cloudfs(*args, expect=0, cwd=None):
    """Runs cloudfs ARGS (in CWD); checks its exit status (EXPECT: one, or
    a tuple of those allowed); returns its stdout (parsed when --json was
    given)."""
    p = subprocess.run([CLOUDFS, *args], capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    assert p.returncode in (expect if isinstance(expect, tuple) else (expect,)), \
        f"cloudfs {' '.join(args)} exited {p.returncode}, not {expect}: {p.stderr}"
    return json.loads(p.stdout) if "--json" in args else p.stdout


def at(m, *parts):
    """The path of PARTS in mount M."""
    return os.path.join(m.mountpoint, *parts)


def payload(size, seed):
    """SIZE random bytes, the same for the same SEED."""
    return random.Random(seed).randbytes(size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


# A tree: {path: Dir | File | Link}, parents before children.

@dataclass
class Dir:
    mode: int = 0o755
    mtime_ns: int = 1_600_000_000_000_000_000


@dataclass
class File:
    data: bytes = b""
    mode: int = 0o644
    mtime_ns: int = 1_600_000_000_000_000_000


@dataclass
class Link:
    target: str
    mtime_ns: int = 1_600_000_000_000_000_000


def put_tree(client, ns, tree):
    """Commits TREE to namespace NS in batches (directories first, then
    files with their blocks, then symlinks), each node with its mode and
    mtime."""
    dirs = [{"op": "dir", "path": p, "mode": n.mode, "mtime_ns": n.mtime_ns}
            for p, n in tree.items() if isinstance(n, Dir)]
    files = [(file_op(p, n.data, mode=n.mode, mtime_ns=n.mtime_ns), n.data)
             for p, n in tree.items() if isinstance(n, File)]
    links = [{"op": "symlink", "path": p, "target": n.target, "mtime_ns": n.mtime_ns}
             for p, n in tree.items() if isinstance(n, Link)]
    for i in range(0, len(dirs), 1000):
        client.commit_ok(ns, *dirs[i:i + 1000])
    for i in range(0, len(files), 1000):
        batch = files[i:i + 1000]
        client.commit_files(ns, [op for op, _ in batch], [d for _, d in batch])
    for i in range(0, len(links), 1000):
        client.commit_ok(ns, *links[i:i + 1000])


def rewrite(client, ns, path, data, **fields):
    """A new version of the file at PATH: DATA (and FIELDS), based on
    the current version."""
    jid = client.snapshot(ns)[0][path]["jid"]
    return client.write_file(ns, path, data, base_jid=jid, **fields)


def make_local(root, tree):
    """TREE as a local directory at ROOT: the reference a mount of it is
    compared with. Times are set last, deepest first."""
    os.makedirs(root, exist_ok=True)
    for p, n in tree.items():
        full = os.path.join(root, p)
        if isinstance(n, Dir):
            os.makedirs(full, exist_ok=True)
        elif isinstance(n, File):
            with open(full, "wb") as f:
                f.write(n.data)
            os.chmod(full, n.mode)
        else:
            os.symlink(n.target, full)
    for p in sorted(tree, key=lambda p: -p.count("/")):
        n = tree[p]
        full = os.path.join(root, p)
        if isinstance(n, Dir):
            os.chmod(full, n.mode)
        os.utime(full, ns=(n.mtime_ns, n.mtime_ns), follow_symlinks=False)


def describe(path, dir_mtimes=True):
    """What a tree comparison looks at of PATH: its type, permission bits
    and mtime (for a directory, only with DIR_MTIMES); for a file its size
    and content hash, for a symlink its size and target, for a device its
    number. (A directory's size is the filesystem's business.)"""
    st = os.lstat(path)
    d = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
         "mtime_ns": st.st_mtime_ns}
    if stat.S_ISDIR(st.st_mode) and not dir_mtimes:
        del d["mtime_ns"]
    if stat.S_ISREG(st.st_mode):
        d.update(size=st.st_size, sha256=sha(read(path)))
    elif stat.S_ISLNK(st.st_mode):
        d.update(size=st.st_size, target=os.readlink(path))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d.update(rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
    return d


# The server's kinds of the special files, by file type.
SPECIAL_KINDS = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
                 stat.S_IFBLK: "blockdev"}


def tree_of(root, workers=1, dir_mtimes=True):
    """Everything under ROOT (os.walk, symlinks not followed) described:
    {relative path: describe(path, DIR_MTIMES)}. WORKERS threads read the
    files (a fresh mount then fetches several at once)."""
    paths = [os.path.join(dirpath, name) for dirpath, dirnames, filenames in os.walk(root)
             for name in dirnames + filenames]
    one = lambda p: describe(p, dir_mtimes)  # noqa: E731
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            described = list(pool.map(one, paths))
    else:
        described = [one(p) for p in paths]
    return {os.path.relpath(p, root): d for p, d in zip(paths, described)}


def until(check, within=1.0, what="the change"):
    """Polls CHECK (a function returning true once the mount shows what
    is expected) until it does; fails after WITHIN seconds. A check may
    find a name missing (ENOENT, a state between two journal entries);
    any other error fails at once: the mount answers from its mirror, so
    it has no reason for EIO. Returns and prints the delay, counted from
    the call."""
    t0 = time.monotonic()
    while True:
        try:
            last = check()
        except FileNotFoundError as e:
            last = e
        elapsed = time.monotonic() - t0
        if last and not isinstance(last, OSError):
            print(f"{what} showed after {elapsed * 1000:.0f} ms")
            return elapsed
        if elapsed > within:
            raise AssertionError(f"{what} did not show within {within} s "
                                 f"(last check: {last!r})")
        time.sleep(0.005)


def exists(path):
    """Whether PATH names an entry (ENOENT is no; any other error is raised)."""
    try:
        os.lstat(path)
        return True
    except FileNotFoundError:
        return False


def timed(fn, limit):
    """Runs FN in a thread of its own (so that a read the driver never
    answers cannot hang the suite) and waits at most LIMIT seconds.
    Returns (its result or the OSError it raised, seconds taken)."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except OSError as e:
            box["result"] = e
        box["elapsed"] = time.monotonic() - t0

    t0 = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} did not return within {limit} s")
    return box["result"], box["elapsed"]


@contextmanager
def mounts(tmp):
    """Yields make(client, cache=None, start="daemon"|"foreground"|None,
    **options) -> a Mount of CLIENT's user on a new mountpoint under TMP
    (started as users start it, daemonized; or with -f; or not at all:
    a daemonized mount is where the bugs of a forked process show, so it
    is the default), with a 0600 token file
    and, unless CACHE is given (the same one remounts), a new cache
    directory. On the way out every mount made is cleaned up: one still
    up is unmounted and must end cleanly, and nothing is left mounted."""
    made = []

    def make(client, cache=None, start="daemon", **options):
        i = len(made)
        token = write_token_file(os.path.join(tmp, f"{client.name}.token"), client.token)
        m = Mount(client.url, os.path.join(tmp, f"mnt{i}"),
                  token, cache or os.path.join(tmp, f"cache{i}"),
                  os.path.join(tmp, f"mount{i}.log"), options)
        made.append(m)
        if start == "foreground":
            m.start()
        elif start == "daemon":
            m.start_daemon()
        return m

    try:
        yield make
    finally:
        errors = []
        for m in made:
            try:
                m.cleanup()
            except AssertionError as e:
                errors.append(str(e))
        assert not errors, "\n".join(errors)


# The server's side of what a mount wrote: listings in one form for a
# local directory, a mount and the server, so that they compare.

def block_ids(data):
    """A file's block list: the ids of its 4 MiB blocks, in order."""
    return [sha(data[i:i + BLOCK_SIZE]) for i in range(0, len(data), BLOCK_SIZE)]


def listing_of(root, dir_mtimes=True):
    """Everything under ROOT (symlinks not followed) as the server lists
    it: {relative path: {kind, mode, mtime_ns}, with size and blocks for
    a file, size and target for a symlink, the target MAJOR:MINOR for a
    device}. Without DIR_MTIMES, a directory's mtime is left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            d = {"mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
            if stat.S_ISDIR(st.st_mode):
                d["kind"] = "dir"
                if not dir_mtimes:
                    del d["mtime_ns"]
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                d.update(kind="symlink", size=len(os.fsencode(target)), target=target)
            elif stat.S_IFMT(st.st_mode) in SPECIAL_KINDS:
                d["kind"] = SPECIAL_KINDS[stat.S_IFMT(st.st_mode)]
                if d["kind"] in ("chardev", "blockdev"):
                    d["target"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                d.update(kind="file", size=st.st_size, blocks=block_ids(read(full)))
            out[os.path.relpath(full, root)] = d
    return out


def server_listing(client, ns, under="", dir_mtimes=True):
    """Namespace NS from cursor 0 (only what is under the folder UNDER,
    relative to it) in the form listing_of gives; a hard link's name as
    its node."""
    out = {}
    prefix = under + "/" if under else ""
    snap = client.snapshot(ns)[0]
    nodes = {e["node"]: e for e in snap.values()}
    for path, e in snap.items():
        if not path.startswith(prefix):
            continue
        if e["kind"] == "link":  # a hard link: the name of its node's file
            e = nodes[e["of"]]
        d = {"kind": "dir" if e["kind"] == "mount" else e["kind"], "mode": e["mode"],
             "mtime_ns": e["mtime_ns"]}
        if e["kind"] == "file":
            d.update(size=e["size"], blocks=e["blocks"])
        elif e["kind"] == "symlink":
            d.update(size=e["size"], target=e["target"])
        elif e["kind"] in ("chardev", "blockdev"):
            d["target"] = e["target"]
        elif e["kind"] in SPECIAL_KINDS.values():
            pass
        elif not dir_mtimes:
            del d["mtime_ns"]
        out[path[len(prefix):]] = d
    return out


def until_on_server(client, ns, expected, under="", within=30, what="the tree",
                    dir_mtimes=True):
    """Polls the server until namespace NS (or its folder UNDER) lists
    exactly EXPECTED (a listing_of, or a function returning one, called
    at each poll); fails after WITHIN seconds, showing what differs.
    Returns the delay."""
    t0 = time.monotonic()
    while True:
        got = server_listing(client, ns, under, dir_mtimes)
        want = expected() if callable(expected) else expected
        if got == want:
            elapsed = time.monotonic() - t0
            print(f"{what} was on the server after {elapsed:.2f} s")
            return elapsed
        if time.monotonic() - t0 > within:
            diff = {p: (got.get(p), want.get(p)) for p in set(got) | set(want)
                    if got.get(p) != want.get(p)}
            raise AssertionError(f"{what} was not on the server within {within} s; "
                                 f"(server, expected) where they differ: {diff}")
        time.sleep(0.05)


def until_server_holds(client, files, what="the files", within=30, ns=None):
    """Polls the server until each path of FILES (in namespace NS, CLIENT's
    root by default) is a file holding its bytes; fails after WITHIN s."""
    ns = ns or client.root_ns

    def holds():
        listing = server_listing(client, ns)
        return all(listing.get(path, {}).get("blocks") == block_ids(data) and
                   listing[path]["size"] == len(data) for path, data in files.items())
    return until(holds, within=within, what=what)


def shape(tree):
    """A tree_of without its mtimes: what a comparison of two trees
    written at different times looks at."""
    return {p: {k: v for k, v in d.items() if k != "mtime_ns"} for p, d in tree.items()}


NOT_SENT = "changes are not on the server yet"


def unmount_drained(m):
    """Unmounts M, which must end cleanly with its whole queue sent: its
    log does not say that changes wait for the next mount."""
    m.unmount()
    assert NOT_SENT not in m.log_text(), m.log_text()


# The server's access log: one line per request, after it was answered.

def log_size(server):
    """Where the server's log ends now: the SINCE of the helpers below."""
    return os.path.getsize(server.log_path)


def requests_since(server, since, pattern):
    """The lines of the server's log after byte SINCE whose request
    (method and path) matches the regular expression PATTERN."""
    rx = re.compile(pattern)
    with open(server.log_path, errors="replace") as f:
        f.seek(since)
        return [line for line in f
                if (m := re.search(r"\binfo: (\S+ \S+) \d+ ", line)) and rx.match(m.group(1))]


def uploaded_blocks(server, since):
    """The ids of the blocks uploaded (PUT /block/ID answered 200) after
    byte SINCE of the server's log, in order."""
    return [re.search(r"PUT /block/([0-9a-f]{64}) ", line).group(1)
            for line in requests_since(server, since, r"PUT /block/")
            if re.search(r"PUT /block/\S+ 200 ", line)]


def uploaded_bytes(server, since, sizes):
    """The bytes uploaded after byte SINCE of the server's log: the sizes
    of the blocks PUT (SIZES maps every id that may be PUT to its size; an
    unknown id fails)."""
    ids = uploaded_blocks(server, since)
    unknown = [b for b in ids if b not in sizes]
    assert not unknown, f"blocks uploaded that the test did not write: {unknown}"
    return sum(sizes[b] for b in ids)
