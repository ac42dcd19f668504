"""Helpers of the mount.cloudfs tests: trees put on the server and read
back through a mount, polling with a deadline, reads that must not hang."""

import hashlib
import os
import random
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from cfs_server import Mount, file_op, write_token_file

MiB = 1024 * 1024


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


def describe(path):
    """What a tree comparison looks at of PATH: its type, permission bits
    and mtime; for a file its size and content hash, for a symlink its
    size and target. (A directory's size is the filesystem's business.)"""
    st = os.lstat(path)
    d = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
         "mtime_ns": st.st_mtime_ns}
    if stat.S_ISREG(st.st_mode):
        d.update(size=st.st_size, sha256=sha(read(path)))
    elif stat.S_ISLNK(st.st_mode):
        d.update(size=st.st_size, target=os.readlink(path))
    return d


def tree_of(root):
    """Everything under ROOT (os.walk, symlinks not followed) described:
    {relative path: describe(path)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = describe(full)
    return out


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
    """Yields make(client, cache=None, start="foreground"|"daemon"|None,
    **options) -> a Mount of CLIENT's user on a new mountpoint under TMP
    (started with -f, or without, or not at all), with a 0600 token file
    and, unless CACHE is given (the same one remounts), a new cache
    directory. On the way out every mount made is cleaned up: one still
    up is unmounted and must end cleanly, and nothing is left mounted."""
    made = []

    def make(client, cache=None, start="foreground", **options):
        i = len(made)
        token = write_token_file(os.path.join(tmp, f"{client.name}.token"), client.token)
        m = Mount(f"http://{client.host}:{client.port}", os.path.join(tmp, f"mnt{i}"),
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
