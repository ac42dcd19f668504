"""cfsrand: a seeded differential harness for cloudfs, in the manner of
JuiceFS's fsrand and Dropbox's CanopyCheck.

A seed becomes a *program*: a list of items, each either an operation of
one worker (create, write across 4 MiB block boundaries, truncate, append,
rename of files and folders, mkdir/rmdir, rm -rf, symlink, mkfifo, copy_file_range,
hard links, chmod, utimens, unlink
of an open file, fsync, atomic save, and reads, stats and listings that
look) or an *event* that happens to the mount as a whole (remount, kill -9
of the driver, a restart of cloudfsd, a spell with cloudfsd stopped,
`cloudfs cache evict`, `cloudfs share`/`unshare` of a folder).  Every
operation is run twice: on the cloudfs mount, and on a local directory,
the model.  Their outcomes (return values, errno names, bytes read,
attributes) must be equal.

Why the expected result is well-defined despite concurrency
------------------------------------------------------------
The events cut the program into *phases*.  In a phase, W worker processes
run at once, each its own operations in order, and each only under its own
folder `wK/` (of the mount and of the model): no operation names a path
outside its worker's folder, and symlink targets never contain `..` (nor
start with `/`), so following one never leaves that folder either.  Hence
the state of `wK/` after a phase depends only on worker K's operations in
that phase and not on how the workers interleave, and so does the outcome
of each operation: the model is order-independent by construction.  The
workers' folders themselves are never renamed or removed, so sharing one
(which makes it a namespace of its own, across whose boundary a rename
would be EXDEV) changes nothing the workers can observe.  Events happen
only between phases, with every worker stopped and every file closed, so
the state an event sees is the model's state.

What an event may change is pinned down by the man pages: a remount, a
kill -9 (after `cloudfs status` shows no file being written, that is,
every change is in the durable queue), a restart of the server, an
eviction and a share must change nothing the user sees.  After each of
them the whole tree of the mount is compared with the model.  With the
server stopped, the mount must go on serving what is cached (the harness
warms the cache first with `cloudfs cache warm`) and queue its writes.

At the end, `cloudfs status --wait` must return, the mount must report no
queued, retrying or conflicted change, and three views must equal the
model: the live mount, the server's listing (every namespace, shared
folders included), and a fresh mount with an empty cache.  Compared are
names, kinds, sizes, bytes, permission bits and symlink targets, the link
count of what is not a folder and which names are one file; file
mtimes exactly where the program set them (utimens sets times before
RECENT; a file written since shows a time of this run on both sides), and
directory mtimes never (the server keeps the last one set, by design).

Two-mount mode (--mounts 2) runs half of the workers on a second mount of
the same user, each still in its own folder (exact model), and adds
*contested* writers: one per mount, rewriting whole files of the folder
`contested/` at the same time.  There the rule is weaker: after both
mounts are synced, every file name's main file and conflicted copies
("NAME (HOST's conflicted copy YYYY-MM-DD).EXT") hold only versions that were
written, and the last version each mount wrote of a file survives (as the
file or as a conflicted copy) unless the other mount wrote that file after
it (then the other's write may legitimately have replaced it).  Nothing
written vanishes.

Replaying, shrinking
--------------------
Every run prints its seed and the command that replays it.  A failure is
shrunk by delta debugging over the program's items (each candidate is
replayed from scratch on a new server), keeping only candidates that fail
the same way; the shrunk program is saved as JSON (`--replay FILE` runs
it) and printed with plain shell commands that do the same.

Self-test (--self-test): the "mount" is a second local directory and the
events do nothing; it must always pass, and shows that a failure is
cloudfs's and not the harness's.
"""

import argparse
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import pickle
import random
import re
import select
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "fs"))

import cfs_server  # noqa: E402
from cfs_server import (SANITIZER_MARKS, Mount, Server, become_subreaper, mounted,  # noqa: E402
                        write_token_file)

B = 4 * 1024 * 1024  # the block size
EVENTS = ("remount", "kill9", "server", "evict", "share", "inspect")
# Times the program sets with utimens are before this; a file written in
# the run has a later one.
RECENT = 1_700_000_000 * 10**9
MODES = (0o644, 0o600, 0o755, 0o700, 0o444, 0o640, 0o750, 0o555, 0o777, 0o000)
FILE_NAMES = ("a.txt", "b.txt", "c", "d.bin", "e", "f.tar.gz")
DIR_NAMES = ("D0", "D1", "D2")
CONTESTED = ("x.txt", "y", "z.md")
CONFLICT_RX = re.compile(r"^(.*) \((?:.+'s )?conflicted copy \d{4}-\d{2}-\d{2}(?: \d+)?\)(.*)$")


def data(dseed, n):
    """N bytes, the same for the same DSEED (cheap for large N)."""
    unit = random.Random(dseed).randbytes(min(n, 65536) or 1)
    return (unit * (n // len(unit) + 1))[:n]


# ---------------------------------------------------------------------------
# Operations: [name, *args]; paths are relative to the worker's folder.

def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def mtime_class(st_mtime_ns):
    return st_mtime_ns if st_mtime_ns < RECENT else "recent"


def st_view(st):
    """What is compared of a stat: kind, permission bits, the size of what
    is not a folder, the mtime of a file (exact when set by the program),
    the link count of what is not a folder (hard links)."""
    kind = stat.S_IFMT(st.st_mode)
    v = [kind, oct(stat.S_IMODE(st.st_mode))]
    if not stat.S_ISDIR(kind):
        v.append(st.st_size)
    if stat.S_ISREG(kind):
        v.append(mtime_class(st.st_mtime_ns))
    if not stat.S_ISDIR(kind):
        v.append(("nlink", st.st_nlink))
    return tuple(v)


def digest(b):
    return (len(b), hashlib.sha256(b).hexdigest()[:16])


_libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1


def renameat2(src, dst, flags):
    if _libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), src)


def pwrite_all(fd, b, off):
    n = 0
    while n < len(b):
        n += os.pwrite(fd, b[n:], off + n)
    return n


def read_all(fd):
    chunks = []
    off = 0
    while True:
        c = os.pread(fd, 1 << 20, off)
        if not c:
            return b"".join(chunks)
        chunks.append(c)
        off += len(c)


def do_op(root, op):
    """Runs OP under the folder ROOT; returns its outcome (a tuple that
    must be equal on the mount and on the model). Every open is
    O_NONBLOCK: the path may be a FIFO, whose blocking open would wait
    forever for the other end; on a file it changes nothing."""
    name, *a = op
    P = lambda p: os.path.join(root, p) if p else root  # noqa: E731
    try:
        if name == "create":
            p, mode, how = a
            flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | {
                "excl": os.O_EXCL, "trunc": os.O_TRUNC, "plain": 0}[how]
            os.close(os.open(P(p), flags, mode))
            return ("ok",)
        if name == "write" or name == "fsync":
            p, off, n, dseed = a
            flags = os.O_WRONLY | os.O_NONBLOCK | (os.O_CREAT if name == "fsync" else 0)
            fd = os.open(P(p), flags, 0o644)
            try:
                w = pwrite_all(fd, data(dseed, n), off)
                if name == "fsync":
                    os.fsync(fd)
            finally:
                os.close(fd)
            return ("ok", w)
        if name == "append":
            p, n, dseed = a
            fd = os.open(P(p), os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            try:
                b = data(dseed, n)
                w = 0
                while w < n:
                    w += os.write(fd, b[w:])
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            return ("ok", w, size)
        if name == "truncate":
            p, size = a
            os.truncate(P(p), size)
            return ("ok",)
        if name == "read":
            p, off, n = a
            fd = os.open(P(p), os.O_RDONLY | os.O_NONBLOCK)
            try:
                if n < 0:
                    b = read_all(fd)
                else:
                    b = os.pread(fd, n, off)
            finally:
                os.close(fd)
            return ("ok", digest(b))
        if name == "stat":
            p, follow = a
            st = os.stat(P(p)) if follow else os.lstat(P(p))
            return ("ok",) + st_view(st)
        if name == "listdir":
            (p,) = a
            return ("ok", tuple(sorted(os.listdir(P(p)))))
        if name == "readlink":
            (p,) = a
            return ("ok", os.readlink(P(p)))
        if name == "mkdir":
            p, mode = a
            os.mkdir(P(p), mode)
            return ("ok",)
        if name == "rmdir":
            os.rmdir(P(a[0]))
            return ("ok",)
        if name == "rmtree":  # rm -rf: its deletes may go as one
            if not a[0]:
                return ("err", "EBUSY")  # never the worker's own folder
            # rmtree opens its argument before it checks it is a folder:
            # a FIFO would block it for a writer.
            if not stat.S_ISDIR(os.lstat(P(a[0])).st_mode):
                return ("err", "ENOTDIR")
            shutil.rmtree(P(a[0]))
            return ("ok",)
        if name == "unlink":
            os.unlink(P(a[0]))
            return ("ok",)
        if name == "symlink":
            target, p = a
            os.symlink(target, P(p))
            return ("ok",)
        if name == "link":  # a hard link; of a symlink, the symlink itself
            src, dst = a
            os.link(P(src), P(dst), follow_symlinks=False)
            return ("ok", os.lstat(P(dst)).st_nlink)
        if name == "mkfifo":
            p, mode = a
            os.mkfifo(P(p), mode)
            return ("ok",)
        if name == "copy":  # copy_file_range, whole or from an offset
            src, dst, off = a
            fi = os.open(P(src), os.O_RDONLY | os.O_NONBLOCK)
            try:
                fo = os.open(P(dst), os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
                try:
                    n = 0
                    while k := os.copy_file_range(fi, fo, 1 << 30, off + n, off + n):
                        n += k
                finally:
                    os.close(fo)
            finally:
                os.close(fi)
            return ("ok", n)
        if name == "rename":
            src, dst, noreplace = a
            if noreplace:
                renameat2(P(src), P(dst), RENAME_NOREPLACE)
            else:
                os.rename(P(src), P(dst))
            return ("ok",)
        if name == "chmod":
            p, mode = a
            os.chmod(P(p), mode)
            return ("ok",)
        if name == "utime":
            p, t = a
            os.utime(P(p), ns=(t, t))
            return ("ok",)
        if name == "unlink_open":
            p, off, n, dseed = a
            fd = os.open(P(p), os.O_RDWR | os.O_NONBLOCK)
            try:
                os.unlink(P(p))
                w = pwrite_all(fd, data(dseed, n), off)
                b = read_all(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            return ("ok", w, size, digest(b), os.path.lexists(P(p)))
        if name == "save":
            p, n, dseed, mode, sync = a
            d, base = os.path.split(p)
            tmp = os.path.join(d, "." + base + ".tmp")
            fd = os.open(P(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, mode)
            try:
                pwrite_all(fd, data(dseed, n), 0)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(P(tmp), P(p))
            return ("ok",)
        raise ValueError(f"unknown operation {name}")
    except OSError as e:
        return ("err", errname(e))


# ---------------------------------------------------------------------------
# Generation: a rough simulation of each worker's tree, so that most
# operations name something that exists; it need not be exact (outcomes
# are compared between two real filesystems, not with the simulation).

class Sim:
    def __init__(self):
        self.kind = {"": "d"}  # path -> "f" | "d" | "l" | "p" (a FIFO)

    def exists(self, p):
        return p in self.kind

    def parent_ok(self, p):
        return self.kind.get(os.path.dirname(p)) == "d"

    def children(self, p):
        pre = p + "/" if p else ""
        return [q for q in self.kind if q != p and q.startswith(pre)]

    def add(self, p, k):
        if self.parent_ok(p) and p not in self.kind:
            self.kind[p] = k

    def remove(self, p):
        for q in self.children(p) + [p]:
            self.kind.pop(q, None)

    def apply(self, op):
        name, *a = op
        if name == "create" or name == "fsync":
            self.add(a[0], "f")
        elif name == "save":
            if self.kind.get(a[0]) in (None, "f", "l"):
                self.kind.pop(a[0], None)
                self.add(a[0], "f")
        elif name == "mkdir":
            self.add(a[0], "d")
        elif name == "symlink":
            self.add(a[1], "l")
        elif name == "mkfifo":
            self.add(a[0], "p")
        elif name == "link":
            if self.kind.get(a[0]) in ("f", "l", "p"):
                self.add(a[1], self.kind[a[0]])
        elif name == "copy":
            if self.kind.get(a[0]) == "f":
                self.add(a[1], "f")
        elif name in ("unlink", "unlink_open"):
            if self.kind.get(a[0]) in ("f", "l", "p"):
                self.remove(a[0])
        elif name == "rmdir":
            if self.kind.get(a[0]) == "d" and a[0] and not self.children(a[0]):
                self.remove(a[0])
        elif name == "rmtree":
            if self.kind.get(a[0]) == "d" and a[0]:
                self.remove(a[0])
        elif name == "rename":
            src, dst, noreplace = a
            if src not in self.kind or not src or not self.parent_ok(dst):
                return
            if dst == src or dst.startswith(src + "/"):
                return
            if dst in self.kind:
                if noreplace or self.kind[dst] == "d" and (
                        self.kind[src] != "d" or self.children(dst)):
                    return
                if self.kind[dst] != "d" and self.kind[src] == "d":
                    return
                self.remove(dst)
            moved = {q: self.kind[q] for q in self.children(src) + [src]}
            for q in moved:
                del self.kind[q]
            for q, k in moved.items():
                self.kind[dst + q[len(src):]] = k

    def pick(self, rng, kinds, fresh=0.2, names=None):
        have = [p for p, k in self.kind.items() if k in kinds and p]
        if have and rng.random() > fresh:
            return rng.choice(sorted(have))
        dirs = sorted(p for p, k in self.kind.items() if k == "d")
        parent = rng.choice(dirs)
        if names is None:
            names = FILE_NAMES + DIR_NAMES
        return os.path.join(parent, rng.choice(names)) if parent else rng.choice(names)


def pick_off(rng):
    r = rng.random()
    if r < 0.03:
        return B + rng.choice([-1, 0, 1, -4096, -rng.randrange(1, 70000)])
    if r < 0.035:
        return 2 * B + rng.choice([-1, 0, 1])
    return rng.choice([0, 0, rng.randrange(4096), rng.randrange(70000)])


def pick_len(rng):
    if rng.random() < 0.004:
        return B + rng.choice([-1, 0, 1])
    return rng.choice([1, rng.randrange(1, 512), rng.randrange(1, 9000),
                       rng.randrange(1, 70000)])


def pick_size(rng):
    r = rng.random()
    if r < 0.03:
        return B + rng.choice([-1, 0, 1])
    return rng.choice([0, rng.randrange(100), rng.randrange(9000), rng.randrange(100000)])


def pick_target(rng, sim):
    """A symlink target: a relative path without .. (or a dangling name)."""
    r = rng.random()
    if r < 0.6:
        return rng.choice(FILE_NAMES + DIR_NAMES)
    if r < 0.9:
        return rng.choice(DIR_NAMES) + "/" + rng.choice(FILE_NAMES)
    return "nowhere-" + str(rng.randrange(10))


OP_WEIGHTS = {
    "create": 8, "write": 14, "append": 6, "truncate": 6, "read": 10, "stat": 6,
    "listdir": 4, "readlink": 2, "mkdir": 6, "rmdir": 3, "unlink": 5, "symlink": 3,
    "rename": 9, "chmod": 3, "utime": 3, "fsync": 4, "unlink_open": 2, "save": 5,
    "mkfifo": 2, "copy": 3, "link": 4, "rmtree": 1,
}


def gen_op(rng, sim, without=()):
    """One operation for the worker whose tree SIM simulates. WITHOUT names
    operations never to generate, and "replace": then no rename replaces
    an entry (every rename is RENAME_NOREPLACE) and there are no atomic
    saves, to get past the open bug of rename over a synced file."""
    weights = {k: v for k, v in OP_WEIGHTS.items()
               if k not in without and not (k == "save" and "replace" in without)}
    name = rng.choices(list(weights), weights=list(weights.values()))[0]
    F, D, L, FIFO = "f", "d", "l", "p"
    if name == "create":
        op = [name, sim.pick(rng, (F,), 0.5, FILE_NAMES), rng.choice(MODES[:4]),
              rng.choice(["excl", "trunc", "plain"])]
    elif name in ("write", "fsync", "unlink_open"):
        op = [name, sim.pick(rng, (F,), 0.15, FILE_NAMES), pick_off(rng), pick_len(rng),
              rng.randrange(1 << 30)]
    elif name == "append":
        op = [name, sim.pick(rng, (F,), 0.1, FILE_NAMES), pick_len(rng) % 100000,
              rng.randrange(1 << 30)]
    elif name == "truncate":
        op = [name, sim.pick(rng, (F,), 0.1), pick_size(rng)]
    elif name == "read":
        whole = rng.random() < 0.6
        op = [name, sim.pick(rng, (F, L), 0.1), 0 if whole else pick_off(rng),
              -1 if whole else pick_len(rng)]
    elif name == "stat":
        op = [name, sim.pick(rng, (F, D, L, FIFO), 0.1), rng.random() < 0.5]
    elif name == "listdir":
        op = [name, sim.pick(rng, (D,), 0.1, DIR_NAMES)]
    elif name == "readlink":
        op = [name, sim.pick(rng, (L,), 0.1)]
    elif name == "mkdir":
        op = [name, sim.pick(rng, (D,), 0.6, DIR_NAMES), rng.choice(MODES[:4] + (0o555,))]
    elif name == "rmdir":
        op = [name, sim.pick(rng, (D,), 0.1, DIR_NAMES)]
    elif name == "rmtree":
        op = [name, sim.pick(rng, (D,), 0.1, DIR_NAMES)]
    elif name == "unlink":
        op = [name, sim.pick(rng, (F, L, FIFO), 0.1)]
    elif name == "symlink":
        op = [name, pick_target(rng, sim), sim.pick(rng, (L,), 0.7)]
    elif name == "mkfifo":
        op = [name, sim.pick(rng, (FIFO,), 0.7), rng.choice(MODES[:4])]
    elif name == "link":
        op = [name, sim.pick(rng, (F, F, F, L, FIFO), 0.1),
              sim.pick(rng, (F, L, FIFO), 0.8, FILE_NAMES)]
    elif name == "copy":  # from 0 (whole blocks) or from within the file
        op = [name, sim.pick(rng, (F,), 0.1), sim.pick(rng, (F,), 0.6, FILE_NAMES),
              rng.choice([0, 0, 0, B, pick_off(rng)])]
    elif name == "rename":
        src = sim.pick(rng, (F, D, L, FIFO) if rng.random() < 0.7 else (D,), 0.1)
        dst = sim.pick(rng, (F, D, L, FIFO), 0.5)
        if rng.random() < 0.25:  # into another folder, under its own name
            dirs = sorted(p for p, k in sim.kind.items() if k == "d")
            dst = os.path.join(rng.choice(dirs), os.path.basename(src)).lstrip("/")
        op = [name, src, dst, "replace" in without or rng.random() < 0.15]
    elif name == "chmod":
        op = [name, sim.pick(rng, (F, D, FIFO), 0.1), rng.choice(MODES)]
    elif name == "utime":
        op = [name, sim.pick(rng, (F, D), 0.1),
              rng.randrange(978_307_200, RECENT // 10**9) * 10**9 + rng.randrange(10**9)]
    elif name == "save":
        op = [name, sim.pick(rng, (F,), 0.2, FILE_NAMES), pick_len(rng) % 200000,
              rng.randrange(1 << 30), rng.choice(MODES[:4]), rng.random() < 0.3]
    sim.apply(op)
    return op


def generate(seed, n_ops, workers, events, event_rate=0.3, mounts=1, contested=False,
             without=()):
    """The program of SEED: about N_OPS operations of WORKERS workers, in
    phases separated by events drawn from EVENTS (the enabled names)."""
    rng = random.Random(seed)
    sims = [Sim() for _ in range(workers)]
    prog = []
    done = 0
    choices = []
    for ev in events:
        choices += {"server": ["server_restart", "server_offline"],
                    "share": ["share", "share"]}.get(ev, [ev])
    while done < n_ops:
        for w in range(workers):
            k = min(rng.randrange(15, 80), n_ops - done)
            for _ in range(k):
                prog.append({"w": w, "op": gen_op(rng, sims[w], without)})
            done += k
            if done >= n_ops:
                break
        if contested:
            for m in range(mounts):
                for _ in range(rng.randrange(3, 12)):
                    prog.append({"c": m, "op": ["rewrite", rng.choice(CONTESTED),
                                                rng.randrange(1, 20000),
                                                rng.randrange(1 << 30)]})
        if choices and done < n_ops and rng.random() < event_rate:
            ev = rng.choice(choices)
            item = {"ev": ev}
            if ev in ("share", "inspect"):
                item["w"] = rng.randrange(workers)
            if mounts > 1 and ev in ("remount", "kill9", "evict", "inspect"):
                item["m"] = rng.randrange(mounts)
            prog.append(item)
        prog.append({"ev": "barrier"})
    return prog


def phases(prog):
    """PROG cut into [("ops", items) | ("ev", item)], in order."""
    out = []
    cur = []
    for i, item in enumerate(prog):
        if "ev" in item:
            if cur:
                out.append(("ops", cur))
                cur = []
            if item["ev"] != "barrier":
                out.append(("ev", (i, item)))
        else:
            cur.append((i, item))
    if cur:
        out.append(("ops", cur))
    return out


# ---------------------------------------------------------------------------
# Failures

def stall_report(mt, lines=30):
    """What a queue that does not drain needs to be understood from a CI
    log alone: the head of MT's queue, the last LINES of its log at every
    level, and where each of its threads waits."""
    out = []
    try:
        db = sqlite3.connect(f"file:{mt.cache}/cache.db?mode=ro", uri=True, timeout=5)
        head = db.execute("SELECT seq, type, ns, ino, path, to_path, tries, error"
                          " FROM ops ORDER BY ord LIMIT 5").fetchall()
        db.close()
        out.append("the queue's head (seq, type, ns, ino, path, to, tries, error):\n  "
                   + "\n  ".join(map(repr, head)))
    except sqlite3.Error as e:
        out.append(f"the queue's head: cannot read {mt.cache}/cache.db: {e}")
    tail = mt.log_text().splitlines()[-lines:]
    out.append("the end of the mount's log:\n  " + "\n  ".join(tail))
    if mt.pid and shutil.which("gdb"):
        p = subprocess.run(["gdb", "-p", str(mt.pid), "-batch", "-nx",
                            "-ex", "thread apply all bt 12"],
                           capture_output=True, text=True, timeout=120)
        threads = []
        for ln in p.stdout.splitlines():
            if ln.startswith("Thread "):
                threads.append([])
            m = re.match(r"#\d+\s+(?:0x\w+ in )?(\S+) \(.*\)(?: at (\S+))?", ln)
            if threads and m and "libsanitizer" not in (m.group(2) or ""):
                threads[-1].append(m.group(1) + (f"@{os.path.basename(m.group(2))}"
                                                 if m.group(2) else ""))
        out.append("the mount's threads:\n  " + "\n  ".join(" < ".join(t) for t in threads))
    return "\n".join(out)


class Failure(Exception):
    """A difference from the model. KIND is what shrinking keeps (a
    candidate counts only if it fails with the same kind); ITEM is the
    index of the program item at fault, when one is."""

    def __init__(self, kind, detail, item=None, worker=None):
        # However it shows (an extra name in a listing, a tree that differs),
        # a conflicted copy in a single mount is one fault.
        if "conflicted copy " in str(detail) and kind.startswith(("op-", "tree-")):
            kind = "conflicted-copy"
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.item = item
        self.worker = worker  # the worker whose folder differs, when known


# ---------------------------------------------------------------------------
# Trees

def with_names(views, inode_of):
    """VIEWS with, for each path in INODE_OF (what is not a folder: path
    -> the identity of its file), every name of that file: which names
    are hard links of one another, whatever the inode numbers are."""
    names = {}
    for p, i in inode_of.items():
        names.setdefault(i, []).append(p)
    return {p: v + (tuple(sorted(names[inode_of[p]])),) if p in inode_of else v
            for p, v in views.items()}


def describe_tree(root):
    """{relative path: view} of everything under ROOT, symlinks not
    followed; a file's view has its size and digest, a symlink's its target;
    what is not a folder, its names."""
    out, inode_of = {}, {}

    def unlisted(e):
        # os.walk skips a folder it cannot list: say so, or the folder's
        # contents look missing when the listing failed (ESTALE, EIO).
        out[os.path.relpath(e.filename, root) + "/"] = ("listing", errname(e))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
                v = st_view(st)
                if stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        v += (digest(f.read()),)
                elif stat.S_ISLNK(st.st_mode):
                    v += (os.readlink(full),)
                if not stat.S_ISDIR(st.st_mode):
                    inode_of[rel] = (st.st_dev, st.st_ino)
            except OSError as e:
                v = ("err", errname(e))
            out[rel] = v
    return with_names(out, inode_of)


def tree_diff(want, got, limit=12):
    diffs = []
    for p in sorted(set(want) | set(got)):
        if want.get(p) != got.get(p):
            diffs.append(f"{p}: model {want.get(p)} cloudfs {got.get(p)}")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"... {len(diffs) - limit} more"]
    return diffs


def diff_kind(want, got):
    """One word for how GOT differs from WANT (tree views), which shrinking
    keeps: a conflicted copy where none should be, a name missing or extra,
    or the first field that differs."""
    diffs = [p for p in set(want) | set(got) if want.get(p) != got.get(p)]
    if any(p not in want and CONFLICT_RX.match(os.path.basename(p)) for p in diffs):
        return "conflicted-copy"
    if any(p not in got for p in diffs):
        return "missing"
    if any(p not in want for p in diffs):
        return "extra"
    p = sorted(diffs)[0]
    w, g = want[p], got[p]
    if w[0] != g[0]:
        return "kind"
    if w[1] != g[1]:
        return "mode"
    if stat.S_ISREG(w[0]) and w[2] != g[2]:
        return "size"
    if stat.S_ISREG(w[0]) and w[3] != g[3]:
        return "mtime"
    return "content"


def check_recent(root, since):
    """Every file mtime that the model calls "recent" must be a time of
    this run on the mount too (not 0, not the future)."""
    now = time.time_ns() + 5 * 10**9
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_mtime_ns >= RECENT and not (
                    since <= st.st_mtime_ns <= now):
                bad.append(f"{os.path.relpath(full, root)}: mtime {st.st_mtime_ns}")
    return bad


# ---------------------------------------------------------------------------
# Workers: forked per phase, one per worker's list of operations.

def worker_main(model, target, items, wfd):
    """Runs ITEMS (index, op) on MODEL then TARGET (folders); stops at the
    first difference. Writes (done, mismatch or None) to WFD, pickled."""
    res = (0, None)
    try:
        for n, (i, op) in enumerate(items):
            want = do_op(model, op)
            got = do_op(target, op)
            if want != got:
                res = (n, (i, op, want, got))
                break
        else:
            res = (len(items), None)
    except BaseException:
        res = (0, ("crash", traceback.format_exc()))
    with os.fdopen(wfd, "wb") as f:
        pickle.dump(res, f)


def run_parallel(jobs, timeout):
    """JOBS: [(model_dir, target_dir, items)]; each in a forked process.
    Returns [(done, mismatch)] in order; a process that does not finish
    within TIMEOUT seconds is a hang (Failure)."""
    procs = []
    for model, target, items in jobs:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                worker_main(model, target, items, w)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(w)
        procs.append((pid, r))
    out = []
    deadline = time.monotonic() + timeout
    hung = []
    for pid, r in procs:
        buf = b""
        with os.fdopen(r, "rb") as f:
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([f], [], [], max(left, 0))
                if not ready:
                    hung.append(pid)
                    break
                chunk = os.read(f.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        out.append(pickle.loads(buf) if buf else None)
    for pid, _ in procs:
        if pid in hung:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if hung:
        raise Failure("hang", f"a worker did not finish its phase within {timeout} s")
    return out


# ---------------------------------------------------------------------------
# Targets: where the program runs besides the model.

class LocalTarget:
    """--self-test: a second local folder; every event does nothing."""

    def __init__(self, work, mounts=1):
        # Two "mounts" of one user show one tree: the same folder.
        r = os.path.join(work, "self")
        os.makedirs(r)
        self.roots = [r] * mounts

    def root(self, m=0):
        return self.roots[m]

    def event(self, item, compare):
        pass

    def context(self, m):
        return ""

    def settle_all(self):
        pass

    def final(self, model, compare):
        pass

    def close(self):
        pass


def cli(*args, timeout=300, check=True, cwd=None):
    p = subprocess.run([cfs_server.CLOUDFS, *args], capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise Failure("cli", f"cloudfs {' '.join(args)} exited {p.returncode}: "
                             f"{p.stderr.strip()}")
    return p


class CloudTarget:
    """A real cloudfsd and daemonized mounts of alice (and bob, to share
    folders with), on default options."""

    def __init__(self, work, mounts=1, log=print):
        self.work = work
        self.log = log
        self.server = Server(os.path.join(work, "data"), os.path.join(work, "cloudfsd.log"))
        self.mounts = []
        self.started = []  # every Mount ever started: close() ends each still up
        self.up = False
        try:
            self.server.start()
            self.port = int(self.server.url.rsplit(":", 1)[1])
            self.up = True
            self.alice = self.server.user("alice")
            self.bob = self.server.user("bob")
            self.token = write_token_file(os.path.join(work, "alice.token"), self.alice.token)
            for m in range(mounts):
                self.mounts.append(self._mount(os.path.join(work, f"mnt{m}"),
                                               os.path.join(work, f"cache{m}")))
        except BaseException:
            self.close()
            raise
        self.shared = set()

    def _mount(self, mountpoint, cache):
        mt = Mount(self.server.url, mountpoint, self.token, cache,
                   os.path.join(self.work, "mount-fg.log"))
        self.started.append(mt)
        mt.start_daemon()
        # The daemon writes its pid into CACHE/lock only after fuse_daemonize
        # let the foreground process exit, so start_daemon may have read the
        # foreground's pid (or nothing): wait for the daemon's, our child.
        deadline = time.monotonic() + 10
        while True:
            try:
                with open(os.path.join(cache, "lock")) as f:
                    mt.pid = int(f.read().split()[0])
                with open(f"/proc/{mt.pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        break
            except (OSError, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise Failure("mount-pid", f"{cache}/lock never named the daemon")
            time.sleep(0.005)
        return mt

    def root(self, m=0):
        return self.mounts[m].mountpoint

    def ensure_up(self):
        if not self.up:
            self.server.start(listen=f"127.0.0.1:{self.port}")
            self.up = True

    def _remount(self, m):
        old = self.mounts[m]
        self.mounts[m] = self._mount(old.mountpoint, old.cache)

    def settle_all(self):
        """Until no mount has a file being written (every change is in the
        durable queue): status --json's open_writes is 0."""
        for mt in self.mounts:
            deadline = time.monotonic() + 60
            while True:
                p = cli("--json", "status", mt.mountpoint, check=False)
                if p.returncode not in (0, 3):
                    raise Failure("cli", f"cloudfs status exited {p.returncode}: {p.stderr}")
                st = json.loads(p.stdout)["mounts"][0]
                if st["open_writes"] == 0:
                    break
                if time.monotonic() > deadline:
                    raise Failure("settle", f"files still being written after 60 s: {st}")
                time.sleep(0.02)

    def event(self, item, compare):
        ev = item["ev"]
        m = item.get("m", 0)
        if ev in ("remount", "kill9", "evict", "share", "server_restart", "server_offline"):
            self.ensure_up()
        if ev == "remount":
            self.mounts[m].unmount()
            self._remount(m)
        elif ev == "kill9":
            self.settle_all()
            self.mounts[m].kill9()
            self._remount(m)
        elif ev == "server_restart":
            self.server.stop()
            self.server.start(listen=f"127.0.0.1:{self.port}")
        elif ev == "server_offline":
            for mt in self.mounts:
                cli("cache", "warm", mt.mountpoint)
            self.server.stop()
            self.up = False
            return  # the next phase runs with the server stopped
        elif ev == "evict":
            cli("cache", "evict", self.mounts[m].mountpoint)
        elif ev == "inspect":
            # What a user looks at next to a live mount; it changes nothing.
            mp = self.mounts[m].mountpoint
            cli("cache", "stat", cwd=mp)
            cli("cache", "ls", os.path.join(mp, f"w{item.get('w', 0)}"))
            p = cli("status", mp, check=False)
            if p.returncode not in (0, 3):
                raise Failure("cli", f"cloudfs status exited {p.returncode}: {p.stderr}")
        elif ev == "share":
            folder = os.path.join(self.root(0), f"w{item['w']}")
            if folder in self.shared:
                cli("unshare", folder, "bob")
                self.shared.discard(folder)
            else:
                p = cli("share", folder, "bob", check=False)
                if p.returncode != 0 and "status --wait" in p.stderr:
                    # Documented: a folder with changes not yet sent waits.
                    self.status_wait(self.mounts[0])
                    p = cli("share", folder, "bob", check=False)
                if p.returncode != 0:
                    raise Failure("share", f"cloudfs share {folder} bob exited "
                                           f"{p.returncode}: {p.stderr.strip()}")
                self.shared.add(folder)
        compare(ev)

    def log_problems(self, mt, n=8):
        """The last N warnings and errors of MT's log."""
        lines = [ln for ln in mt.log_text().splitlines()
                 if " warning: " in ln or " error: " in ln
                 or any(m in ln for m in SANITIZER_MARKS)]
        return "\n  ".join(lines[-n:])

    def context(self, m):
        if m >= len(self.mounts):
            return ""
        problems = self.log_problems(self.mounts[m])
        return f"\nthe mount's log says:\n  {problems}" if problems else ""

    def status_wait(self, mt, timeout=90):
        """cloudfs status --wait on MT; a queue that does not drain fails
        (as queue-jam-unique when the log shows the open UNIQUE bug)."""
        p = cli("status", "--wait", "--timeout", str(timeout), mt.mountpoint, check=False)
        if p.returncode != 0:
            problems = self.log_problems(mt)
            kind = "queue-jam-unique" if "UNIQUE constraint failed" in problems else "status-wait"
            raise Failure(kind, f"cloudfs status --wait --timeout {timeout} exited "
                                f"{p.returncode}: {p.stdout.strip()} {p.stderr.strip()}\n"
                                f"the mount's log:\n  {problems}\n{stall_report(mt)}")

    def wait_synced(self, conflicts_ok=False):
        self.ensure_up()
        for mt in self.mounts:
            self.status_wait(mt)
        for mt in self.mounts:
            # A mount that met an error while the other one was sending
            # backs off before it lists again: up to 30 s, 45 with jitter
            # (mount.cloudfs(8)).
            deadline = time.monotonic() + 60
            while True:
                st = json.loads(cli("--json", "status", mt.mountpoint,
                                    check=False).stdout)["mounts"][0]
                left = {k: st[k] for k in ("pending_ops", "retrying", "open_writes")
                        if st[k]}
                behind = [n for n in st["namespaces"] if n["cursor"] != n["head"]]
                if not left and not behind:
                    break
                if time.monotonic() > deadline:
                    raise Failure("queue-left", f"after status --wait, {mt.mountpoint}: {st}\n"
                                                f"the mount's log:\n  {self.log_problems(mt)}")
                time.sleep(0.05)
            self.conflicts = st["conflicts"]

    def server_tree(self):
        """alice's namespaces as one tree, from the server's listings:
        {path: view} in describe_tree's form where it can be."""
        c = self.alice.clone(self.server.url)
        out, inode_of = {}, {}

        def walk(ns, prefix):
            snap, _ = c.snapshot(ns)
            by_node = {e["node"]: e for e in snap.values()}
            for path, e in snap.items():
                full = prefix + path
                if e["kind"] == "link":  # a further name: its node's view
                    inode_of[full] = (ns, e["of"])
                    e = by_node[e["of"]]
                elif e["kind"] not in ("mount", "dir"):
                    inode_of[full] = (ns, e["node"])
                if e["kind"] == "mount":
                    out[full] = ("dir", oct(e["mode"]))
                    walk(e["ns"], full + "/")
                elif e["kind"] == "dir":
                    out[full] = ("dir", oct(e["mode"]))
                elif e["kind"] == "file":
                    out[full] = ("file", oct(e["mode"]), e["size"],
                                 mtime_class(e["mtime_ns"]), e["blocks"])
                elif e["kind"] == "symlink":
                    out[full] = ("symlink", e["target"])
                elif e["kind"] == "fifo":
                    out[full] = ("fifo", oct(e["mode"]))
                else:
                    out[full] = (e["kind"],)
        walk(self.alice.root_ns, "")
        return with_names(out, inode_of)

    def final(self, model, compare, contested=None):
        self.wait_synced(conflicts_ok=contested is not None)
        compare("final-live")
        if self.conflicts and contested is None:
            raise Failure("conflicts", f"a single mount made {self.conflicts} conflicted "
                                       "copies, yet its tree equals the model")
        want = model_server_tree(model)
        got = {p: v for p, v in self.server_tree().items()
               if p.split("/")[0] in want_tops(model)}
        if contested is None and want != got:
            first = min(p for p in set(want) | set(got) if want.get(p) != got.get(p))
            w = int(first.split("/")[0][1:]) if re.fullmatch(r"w\d+", first.split("/")[0]) else None
            raise Failure("final-server", "the server's listing differs:\n  "
                          + "\n  ".join(tree_diff(want, got)), worker=w)
        for mt in self.mounts:
            mt.unmount()
        self.server._check_log()
        fresh = self._mount(os.path.join(self.work, "fresh"), os.path.join(self.work, "fresh-cache"))
        self.mounts = [fresh] * len(self.mounts)  # every worker's folder, in the one
        compare("final-fresh")
        fresh.unmount()
        self.server.stop()
        self.up = False

    def close(self):
        for mt in self.started:
            try:
                mt.cleanup()
            except Exception as e:  # noqa: BLE001
                self.log(f"cleanup: {str(e)[:300]}")
            finally:
                if mounted(mt.mountpoint):
                    subprocess.run(["fusermount3", "-uz", mt.mountpoint], capture_output=True)
        try:
            if self.server.proc is not None:
                self.server.stop()
        except Exception as e:  # noqa: BLE001
            self.log(f"cleanup: {str(e)[:300]}")
            if self.server.proc:
                self.server.kill9()


def want_tops(model):
    return set(os.listdir(model))


def model_server_tree(model):
    out, inode_of = {}, {}
    for dirpath, dirnames, filenames in os.walk(model):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, model)
            mode = oct(stat.S_IMODE(st.st_mode))
            if not stat.S_ISDIR(st.st_mode):
                inode_of[rel] = st.st_ino
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ("fifo", mode)
            else:
                with open(full, "rb") as f:
                    b = f.read()
                out[rel] = ("file", mode, len(b), mtime_class(st.st_mtime_ns),
                            [hashlib.sha256(b[i:i + B]).hexdigest()
                             for i in range(0, len(b), B)])
    return with_names(out, inode_of)


# ---------------------------------------------------------------------------
# Running a program

class Run:
    def __init__(self, prog, workers, self_test=False, mounts=1, work=None, keep=False,
                 log=print, phase_timeout=300):
        self.prog = prog
        self.workers = workers
        self.self_test = self_test
        self.n_mounts = mounts
        self.keep = keep
        self.log = log
        self.phase_timeout = phase_timeout
        self.work = work or tempfile.mkdtemp(prefix="cfsrand-")
        self.ops_done = 0
        self.contested = any("c" in it for it in prog)
        self.written = []  # contested writes: (mount, name, digest, time)

    def worker_mount(self, w):
        return w % self.n_mounts

    def compare(self, when, item=None):
        for w in range(self.workers):
            m = self.worker_mount(w)
            want = describe_tree(os.path.join(self.model, f"w{w}"))
            got = describe_tree(os.path.join(self.target.root(m), f"w{w}"))
            if want != got:
                raise Failure(f"tree-{diff_kind(want, got)}", f"w{w} differs after {when}:\n  "
                              + "\n  ".join(tree_diff(want, got)) + self.target.context(m),
                              item, worker=w)
            if not self.self_test:
                bad = check_recent(os.path.join(self.target.root(m), f"w{w}"), self.t0)
                if bad:
                    raise Failure("mtime-not-recent", f"after {when}: " + "; ".join(bad[:5]),
                                  item)
        if self.contested and when.startswith("final"):
            self.check_contested()

    def check_contested(self):
        """The weak rule of the two-mount mode (see the module's doc)."""
        root = self.target.root(0)
        folder = os.path.join(root, "contested")
        present = {}
        for name in os.listdir(folder):
            # Two mounts may make the same conflicted copy's name at once:
            # the second is a conflicted copy of that copy.
            base = name
            while mt := CONFLICT_RX.match(base):
                base = mt.group(1) + mt.group(2)
            with open(os.path.join(folder, name), "rb") as f:
                present.setdefault(base, set()).add(digest(f.read()))
        versions = {}
        for m, name, dg, t in self.written:
            versions.setdefault(name, []).append((t, m, dg))
        problems = []
        for name, vs in versions.items():
            got = present.get(name, set())
            allowed = {dg for _, _, dg in vs}
            if not got:
                problems.append(f"{name}: written, and gone (no file, no conflicted copy)")
            if got - allowed:
                problems.append(f"{name}: holds bytes never written: {got - allowed}")
            for m in range(self.n_mounts):
                mine = [(t, dg) for t, mm, dg in vs if mm == m]
                if not mine:
                    continue
                t_last, dg_last = max(mine)
                later = [t for t, mm, _ in vs if mm != m and t > t_last]
                if dg_last not in got and not later:
                    problems.append(f"{name}: mount {m}'s last version {dg_last} vanished")
        for name in present:
            if name not in versions:
                problems.append(f"{name}: never written, yet present")
        if problems:
            raise Failure("contested", "; ".join(problems))
        copies = sum(1 for name in os.listdir(folder) if CONFLICT_RX.match(name))
        self.log(f"cfsrand: contested files: {len(self.written)} writes of {len(versions)} "
                 f"names, {copies} conflicted copies, all accounted for")

    def run_contested(self, items):
        """Each mount's contested writer: rewrites of whole files, from a
        thread of this process per mount (their outcomes are not compared
        with the model; what was written is recorded for the weak rule)."""
        import threading
        by_mount = {}
        for i, it in items:
            by_mount.setdefault(it["c"], []).append((i, it["op"]))
        errors = []
        # In the self-test both "mounts" are one local folder: a rewrite
        # is a truncate and a write, and two of them at once leave a mix
        # of both (bytes never written as a whole), which two cloudfs
        # mounts, each with its own copy until the server orders them,
        # never do.  There the writers take turns.
        turns = threading.Lock() if self.self_test else contextlib.nullcontext()

        def writer(m, ops):
            folder = os.path.join(self.target.root(m), "contested")
            for i, (_, name, n, dseed) in ops:
                b = data(dseed, n)
                dg = digest(b)
                try:
                    # The time is taken before the other writer may go:
                    # taken after, it could follow the other's later write
                    # and make this one look the last.
                    with turns:
                        with open(os.path.join(folder, name), "wb") as f:
                            f.write(b)
                        t = time.monotonic()
                    self.written.append((m, name, dg, t))
                except OSError as e:
                    errors.append(Failure("contested-write", f"{name} on mount {m}: {e}", i))
        ts = [threading.Thread(target=writer, args=(m, ops)) for m, ops in by_mount.items()]
        for t in ts:
            t.start()
        return ts, errors

    def execute(self):
        """Runs the program; raises Failure on the first difference."""
        self.model = os.path.join(self.work, "model")
        os.makedirs(self.model)
        self.t0 = time.time_ns() - 2 * 10**9
        if self.self_test:
            self.target = LocalTarget(self.work, self.n_mounts)
        else:
            self.target = CloudTarget(self.work, self.n_mounts, self.log)  # closes itself if it fails
        try:
            for w in range(self.workers):
                os.mkdir(os.path.join(self.model, f"w{w}"))
                os.mkdir(os.path.join(self.target.root(self.worker_mount(w)), f"w{w}"))
            if self.contested:
                os.mkdir(os.path.join(self.target.root(0), "contested"))
            deadline = time.monotonic() + 30
            while not all(os.path.isdir(os.path.join(self.target.root(self.worker_mount(w)),
                                                     f"w{w}"))
                          for w in range(self.workers)) or self.contested and not all(
                    os.path.isdir(os.path.join(self.target.root(m), "contested"))
                    for m in range(self.n_mounts)):
                if time.monotonic() > deadline:
                    raise Failure("not-synced", "a folder made in one mount did not show "
                                                "in the other within 30 s")
                time.sleep(0.02)
            for kind, body in phases(self.prog):
                if kind == "ev":
                    i, item = body
                    try:
                        self.target.event(item, lambda when: self.compare(when, i))
                    except Failure as f:
                        if f.item is None:
                            f.item = i
                        raise
                    except AssertionError as e:
                        raise Failure(f"event-{item['ev']}", str(e)[:3000], i)
                    except subprocess.TimeoutExpired as e:
                        raise Failure(f"event-{item['ev']}-hang", f"{e}{self.target.context(0)}", i)
                    continue
                self.run_phase(body)
            if self.self_test:
                self.compare("final")
            else:
                try:
                    self.target.final(self.model, self.compare,
                                      contested=True if self.contested else None)
                except AssertionError as e:
                    raise Failure("final-unmount", str(e)[:3000])
        finally:
            self.target.close()

    def run_phase(self, items):
        threads, errors = [], []
        contested = [(i, it) for i, it in items if "c" in it]
        if contested:
            threads, errors = self.run_contested(contested)
        jobs = []
        for w in range(self.workers):
            mine = [(i, it["op"]) for i, it in items if it.get("w") == w]
            if mine:
                jobs.append((os.path.join(self.model, f"w{w}"),
                             os.path.join(self.target.root(self.worker_mount(w)), f"w{w}"),
                             mine))
        try:
            results = run_parallel(jobs, self.phase_timeout)
        finally:
            for t in threads:
                t.join()
        for (_, _, mine), res in zip(jobs, results):
            if res is None:
                raise Failure("worker-died", "a worker process died without a result")
            done, mismatch = res
            self.ops_done += done
            if mismatch:
                if mismatch[0] == "crash":
                    raise Failure("harness-crash", mismatch[1])
                i, op, want, got = mismatch
                w = self.prog[i]["w"]
                raise Failure(f"op-{op[0]}", f"item {i} {json.dumps(op)} (worker {w}): "
                                             f"model {want}, cloudfs {got}"
                              + self.target.context(self.worker_mount(w)), i)
        if errors:
            raise errors[0]
        self.ops_done += sum(len(c) for c in contested)

    def cleanup(self):
        if not self.keep:
            # Never through a mount that is still up (rmtree would delete
            # through it): lazily unmount whatever is left under the folder.
            with open("/proc/self/mountinfo") as f:
                left = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                               line.split()[4]) for line in f]
            for mp in left:
                if mp.startswith(self.work + "/"):
                    subprocess.run(["fusermount3", "-uz", mp], capture_output=True)
            shutil.rmtree(self.work, ignore_errors=True)


def run_program(prog, args, log=print, keep=None):
    """Runs PROG once; returns None or the Failure (and the Run)."""
    r = Run(prog, args.workers, self_test=args.self_test, mounts=args.mounts,
            keep=args.keep if keep is None else keep, log=log)
    try:
        r.execute()
        return None, r
    except Failure as f:
        return f, r
    except Exception:  # noqa: BLE001 (a helper's assertion, a lost child...)
        return Failure("harness-error", traceback.format_exc()[-3000:]), r
    finally:
        if (keep is None and not args.keep) or keep is False:
            r.cleanup()


# ---------------------------------------------------------------------------
# Shrinking: ddmin over the program's items.

def shrink(prog, failure, args, budget_s, log=print):
    """The smallest program found (within BUDGET_S seconds) that still
    fails with FAILURE's kind. Operations after the failing item's phase
    go first, then whole workers, then ddmin."""
    deadline = time.monotonic() + budget_s
    tries = [0]
    attempts = 3

    def fails(cand):
        if time.monotonic() > deadline:
            return False
        # Timing (the settle delay, the uploader) makes some failures
        # flaky: a candidate gets a second chance before it counts as passing.
        for _ in range(attempts):
            tries[0] += 1
            f, _ = run_program(cand, args, log=lambda *a: None, keep=False)
            ok = f is not None and f.kind == failure.kind
            log(f"  shrink try {tries[0]}: {len(cand)} items -> "
                f"{'fails (' + f.kind + ')' if ok else 'passes' if f is None else 'other: ' + f.kind}")
            if ok or time.monotonic() > deadline:
                break
        return ok

    attempts = 3
    cur = list(prog)
    if failure.item is not None and "op" in cur[failure.item] and "w" in cur[failure.item]:
        # Only the failing worker's operations up to the failing one (the
        # workers' folders are disjoint), with the events before it.
        w = cur[failure.item]["w"]
        cand = [it for it in cur[:failure.item + 1] if not ("op" in it and it.get("w") != w)]
        if fails(cand):
            cur = cand
    elif failure.worker is not None:
        # The fault shows in one worker's folder: first try that worker alone
        # (with every event), then also cut after the failing event.
        keep = [it for it in cur if not ("op" in it and it.get("w") != failure.worker)]
        if failure.item is not None:
            keep = keep[:sum(1 for it in cur[:failure.item + 1]
                             if not ("op" in it and it.get("w") != failure.worker))]
        if len(keep) < len(cur) and fails(keep):
            cur = keep
    if failure.item is not None and len(cur) == len(prog):
        cut = failure.item + 1
        while "op" in cur[failure.item] and cut < len(cur) and "ev" not in cur[cut]:
            cut += 1  # the rest of the failing operation's phase
        cand = cur[:cut]
        if len(cand) < len(cur) and fails(cand):
            cur = cand
    attempts = 2
    cand = [it for it in cur if it.get("ev") != "barrier"]
    if len(cand) < len(cur) and fails(cand):
        cur = cand
    n = 2
    while len(cur) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(cur) // n)
        reduced = False
        for start in range(0, len(cur), chunk):
            cand = cur[:start] + cur[start + chunk:]
            if cand and fails(cand):
                cur = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(n * 2, len(cur))
    return cur


# ---------------------------------------------------------------------------
# Shell reproduction

def shell_of(prog, workers):
    """Plain shell commands doing PROG on a cloudfs mount at $M (single
    mount; the events as the commands that cause them)."""
    q = shlex.quote
    lines = [
        "# needs: cloudfsd, mount.cloudfs, cloudfs on PATH; run as root",
        "set -u; T=$(mktemp -d); M=$T/mnt; mkdir $M",
        "cloudfsd useradd --data $T/data alice > $T/alice.token; chmod 600 $T/alice.token",
        "cloudfsd useradd --data $T/data bob > /dev/null",
        "cloudfsd serve --data $T/data --listen 127.0.0.1:8479 2>$T/server.log & S=$!; sleep 1",
        "mount.cloudfs http://127.0.0.1:8479 $M -o token_file=$T/alice.token,cache=$T/cache",
    ]
    lines += [f"mkdir $M/w{w}" for w in range(workers)]
    if any("c" in it for it in prog):
        lines.append("mkdir $M/contested")
    # pw FILE OFFSET|A LEN SEED FLAGS [sync]: the harness's bytes at OFFSET (A: appended)
    lines.append("pw() { python3 -c 'import os,random,sys; p,o,n,s,fl=sys.argv[1:6]; n=int(n); "
                 "u=random.Random(int(s)).randbytes(min(n,65536) or 1); b=(u*(n//len(u)+1))[:n]; "
                 "fd=os.open(p,os.O_WRONLY|int(fl)|(os.O_APPEND if o==\"A\" else 0),0o644); "
                 "os.write(fd,b) if o==\"A\" else os.pwrite(fd,b,int(o)); "
                 "os.fsync(fd) if sys.argv[6:] else 0; os.close(fd)' \"$@\"; }")
    pyw = "pw"
    for it in prog:
        if "ev" in it:
            ev = it["ev"]
            if ev == "barrier":
                continue
            lines.append({
                "remount": "fusermount3 -u $M; mount.cloudfs http://127.0.0.1:8479 $M "
                           "-o token_file=$T/alice.token,cache=$T/cache",
                "kill9": "until cloudfs --json status $M | grep -q '\"open_writes\": 0'; do sleep 0.02; done; "
                         "kill -9 $(cut -d' ' -f1 $T/cache/lock); fusermount3 -uz $M; "
                         "mount.cloudfs http://127.0.0.1:8479 $M -o token_file=$T/alice.token,cache=$T/cache",
                "server_restart": "kill $S; wait $S; cloudfsd serve --data $T/data --listen "
                                  "127.0.0.1:8479 2>>$T/server.log & S=$!; sleep 1",
                "server_offline": "cloudfs cache warm $M; kill $S; wait $S  # start it again later",
                "evict": "cloudfs cache evict $M",
                "inspect": f"(cd $M && cloudfs cache stat); cloudfs cache ls $M/w{it.get('w', 0)}; "
                           "cloudfs status $M",
                "share": f"cloudfs share $M/w{it.get('w', 0)} bob   # (or unshare, every other time)",
            }[ev])
            continue
        name, *a = it["op"]
        if "c" in it:  # a contested rewrite: in two-mount mode, beside the other mount's
            _, p, n, s = it["op"]
            lines.append(f"{pyw} $M/contested/{q(p)} 0 {n} {s} {os.O_CREAT | os.O_TRUNC}"
                         f"  # mount {it['c']}, at once with the workers")
            continue
        d = f"$M/w{it.get('w', 0)}/"
        P = lambda p: d + q(p) if p else d  # noqa: E731
        if name == "create":
            p, mode, how = a
            lines.append({"excl": f"(set -C; : > {P(p)})", "trunc": f": > {P(p)}",
                          "plain": f": >> {P(p)}"}[how] + f"  # mode {oct(mode)}")
        elif name in ("write", "fsync"):
            p, off, n, s = a
            creat = os.O_CREAT if name == "fsync" else 0
            lines.append(f"{pyw} {P(p)} {off} {n} {s} {creat}" + (" sync" if name == "fsync" else ""))
        elif name == "append":
            p, n, s = a
            lines.append(f"{pyw} {P(p)} A {n} {s} 0")
        elif name == "truncate":
            lines.append(f"truncate -s {a[1]} {P(a[0])}")
        elif name == "read":
            lines.append(f"sha256sum {P(a[0])}" if a[2] < 0 else
                         f"dd if={P(a[0])} bs=1M iflag=skip_bytes,count_bytes skip={a[1]} "
                         f"count={a[2]} status=none | sha256sum")
        elif name == "stat":
            lines.append(f"stat {'-L ' if a[1] else ''}{P(a[0])}")
        elif name == "listdir":
            lines.append(f"ls -a {P(a[0])}")
        elif name == "readlink":
            lines.append(f"readlink {P(a[0])}")
        elif name == "mkdir":
            lines.append(f"mkdir -m {oct(a[1])[2:]} {P(a[0])}")
        elif name == "rmdir":
            lines.append(f"rmdir {P(a[0])}")
        elif name == "rmtree":
            lines.append(f"rm -rf {P(a[0])}")
        elif name == "unlink":
            lines.append(f"rm {P(a[0])}")
        elif name == "symlink":
            lines.append(f"ln -s {q(a[0])} {P(a[1])}")
        elif name == "mkfifo":
            lines.append(f"mkfifo -m {oct(a[1])[2:]} {P(a[0])}")
        elif name == "link":
            lines.append(f"ln -P {P(a[0])} {P(a[1])}")
        elif name == "copy":
            lines.append(f"python3 -c 'import os,sys; i=os.open(sys.argv[1],os.O_RDONLY); "
                         f"o=os.open(sys.argv[2],os.O_WRONLY|os.O_CREAT,0o644); n=int(sys.argv[3]); "
                         f"exec(\"while k:=os.copy_file_range(i,o,1<<30,n,n): n+=k\")' "
                         f"{P(a[0])} {P(a[1])} {a[2]}")
        elif name == "rename":
            lines.append(f"mv -T {'-n ' if a[2] else ''}{P(a[0])} {P(a[1])}")
        elif name == "chmod":
            lines.append(f"chmod {oct(a[1])[2:]} {P(a[0])}")
        elif name == "utime":
            lines.append(f"touch -m -d @{a[1] // 10**9}.{a[1] % 10**9:09d} {P(a[0])}")
        elif name == "unlink_open":
            p, off, n, s = a
            lines.append(f"exec 9<>{P(p)}; rm {P(p)}; {pyw} /dev/fd/9 {off} {n} {s} 0; exec 9>&-")
        elif name == "save":
            p, n, s, mode, sync = a
            dd, base = os.path.split(p)
            tmp = os.path.join(dd, "." + base + ".tmp")
            lines.append(f"{pyw} {P(tmp)} 0 {n} {s} {os.O_CREAT | os.O_TRUNC}"
                         + (" sync" if sync else "") + f"; chmod {oct(mode)[2:]} {P(tmp)}; "
                         f"mv -T {P(tmp)} {P(p)}")
    lines += [
        "cloudfs status --wait $M; cloudfs --json status $M",
        "ls -lR $M; fusermount3 -u $M",
        "mount.cloudfs http://127.0.0.1:8479 $T/fresh -o token_file=$T/alice.token,cache=$T/fresh-cache"
        "  # (mkdir $T/fresh first)",
        "ls -lR $T/fresh; find $T/fresh -type f -exec sha256sum {} +",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The command line

def replay_cmd(args, seed=None):
    parts = ["tests/harness/run", "--seed", str(seed if seed is not None else args.seed),
             "--ops", str(args.ops), "--workers", str(args.workers),
             "--events", ",".join(args.events) or "none", "--event-rate", str(args.event_rate)]
    if args.mounts != 1:
        parts += ["--mounts", str(args.mounts)]
    if args.without:
        parts += ["--without", ",".join(args.without)]
    if args.self_test:
        parts.append("--self-test")
    return " ".join(parts)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="tests/harness/run", description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, action="append",
                    help="the program's seed (repeat for several); default: a random one")
    ap.add_argument("--ops", type=int, default=2000, help="operations per seed (2000)")
    ap.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    ap.add_argument("--events", default=",".join(EVENTS),
                    help=f"events to use, comma-separated, or none ({','.join(EVENTS)})")
    ap.add_argument("--event-rate", type=float, default=0.3,
                    help="the chance of an event after each phase (0.3)")
    ap.add_argument("--mounts", type=int, default=1, choices=(1, 2),
                    help="2: also a second mount of the same user, with contested files")
    ap.add_argument("--without", default="", metavar="OP,...",
                    help="operations never to generate; 'replace': no rename over an "
                         "existing entry and no atomic save")
    ap.add_argument("--self-test", action="store_true",
                    help="a local folder instead of cloudfs: must always pass")
    ap.add_argument("--build", help="the build folder with the programs (default: "
                    "$CLOUDFSD etc., else build-asan, else build)")
    ap.add_argument("--shrink", type=float, default=300, metavar="SECONDS",
                    help="time for shrinking a failure (300; 0: do not shrink)")
    ap.add_argument("--replay", metavar="FILE", help="run the program saved in FILE (JSON)")
    ap.add_argument("--save", metavar="FILE", help="save the generated program as JSON")
    ap.add_argument("--out", default=tempfile.gettempdir(), help="where failures' programs are saved (/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--print-program", action="store_true", help="print the program and exit")
    args = ap.parse_args(argv)
    args.events = [] if args.events == "none" else [e for e in args.events.split(",") if e]
    args.without = [o for o in args.without.split(",") if o]
    for o in args.without:
        if o not in OP_WEIGHTS and o != "replace":
            ap.error(f"unknown operation {o!r} (choose from {', '.join(OP_WEIGHTS)}, replace)")
    for e in args.events:
        if e not in EVENTS:
            ap.error(f"unknown event {e!r} (choose from {', '.join(EVENTS)})")
    return args


def use_build(build):
    """Points cfs_server at the programs of BUILD (or of the environment)."""
    top = os.path.normpath(os.path.join(HERE, "..", ".."))
    if build is None:
        if os.environ.get("CLOUDFSD"):
            return
        for cand in ("build-asan", "build"):
            if os.path.exists(os.path.join(top, cand, "server", "cloudfsd")):
                build = os.path.join(top, cand)
                break
        else:
            return
    build = os.path.abspath(build)
    cfs_server.CLOUDFSD = os.path.join(build, "server", "cloudfsd")
    cfs_server.MOUNT_CLOUDFS = os.path.join(build, "fs", "mount.cloudfs")
    cfs_server.CLOUDFS = os.path.join(build, "cli", "cloudfs")
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")


def prepare():
    """Makes this process the reaper of the daemonized mounts, and SIGTERM
    an exception, so that a stopped run still unmounts and stops its server."""
    if not os.environ.get("CFSRAND_NO_SUBREAPER"):
        become_subreaper()

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)


def run_seed(seed, args, log=print):
    """Generates and runs SEED's program; on failure shrinks it and
    reports. Returns (ok, ops done, seconds, report text or None)."""
    if args.replay:
        with open(args.replay) as f:
            saved = json.load(f)
        prog, args.workers = saved["program"], saved.get("workers", args.workers)
        seed = saved.get("seed", seed)
    else:
        prog = generate(seed, args.ops, args.workers, args.events, args.event_rate,
                        args.mounts, contested=args.mounts > 1, without=args.without)
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"seed": seed, "workers": args.workers, "program": prog}, f)
    log(f"cfsrand: seed {seed}: {sum('op' in it for it in prog)} operations, "
        f"{sum(it.get('ev', 'barrier') != 'barrier' for it in prog)} events, "
        f"{args.workers} workers, {'self-test' if args.self_test else 'cloudfs'}")
    t0 = time.monotonic()
    f, r = run_program(prog, args, log=log)
    dt = time.monotonic() - t0
    if f is None:
        log(f"cfsrand: seed {seed}: passed, {r.ops_done} operations in {dt:.1f} s "
            f"({r.ops_done / dt:.0f} ops/s)")
        return True, r.ops_done, dt, None
    report = [f"cfsrand: seed {seed} FAILED after {r.ops_done} operations ({dt:.1f} s): "
              f"{f.kind}", str(f.detail)[:4000],
              "replay: " + (f"tests/harness/run --replay {args.replay}" if args.replay
                            else replay_cmd(args, seed))]
    log("\n".join(report))
    if args.shrink > 0 and f.kind not in ("harness-crash",):
        log(f"cfsrand: shrinking for up to {args.shrink:.0f} s ...")
        small = shrink(prog, f, args, args.shrink, log=log)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"cfsrand-{seed}-{f.kind}.json")
        with open(path, "w") as fh:
            json.dump({"seed": seed, "workers": args.workers, "kind": f.kind,
                       "program": small}, fh, indent=0)
        f2, _ = run_program(small, args, log=lambda *a: None, keep=False)
        lines = [f"cfsrand: shrunk to {len(small)} items (saved in {path}; "
                 f"replay: tests/harness/run --replay {path}{' --self-test' if args.self_test else ''}):"]
        lines += ["  " + json.dumps(it) for it in small]
        lines.append("  the shrunk program now: " + (f"{f2.kind}: {str(f2.detail)[:1500]}"
                                                     if f2 else "passes (flaky)"))
        lines.append("  as shell commands:")
        lines += ["    " + ln for ln in shell_of(small, args.workers).split("\n")]
        # Said again last: a CI log may keep only the report's tail.
        lines.append(report[0])
        lines.append(str(f.detail)[:1500])
        log("\n".join(lines))
        report += lines
    return False, r.ops_done, dt, "\n".join(report)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    use_build(args.build)
    if args.replay:
        with open(args.replay) as f:
            seeds = [json.load(f).get("seed", 0)]
    else:
        seeds = args.seed or [random.randrange(1 << 31)]
    if args.print_program:
        for s in seeds:
            for it in generate(s, args.ops, args.workers, args.events, args.event_rate,
                               args.mounts, contested=args.mounts > 1, without=args.without):
                print(json.dumps(it))
        return 0
    prepare()
    failed = []
    total_ops, total_t = 0, 0.0
    for s in seeds:
        ok, n, dt, _ = run_seed(s, args)
        total_ops += n
        total_t += dt
        if not ok:
            failed.append(s)
    print(f"cfsrand: {len(seeds) - len(failed)} of {len(seeds)} seeds passed, "
          f"{total_ops} operations in {total_t:.1f} s"
          + (f"; failed: {' '.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
