#!/usr/bin/python3
"""Peak memory of mount.cloudfs with a namespace of a million entries.

Puts N entries (1000 directories of N/1000 empty files) on a fresh cloudfsd
through its batch commit, mounts it with an empty cache (the first mount
lists the whole namespace), walks the mount with `find` and `ls -lR`, and
reports the driver's peak RSS (VmHWM) after each step, with the time each
step took next to a baseline: the same `find` over an equal tree on the
local disk.

    bench/million_entries.py [--entries N] [--build DIR]

It builds DIR (default build-release, --buildtype=release) if needed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))

from cfs_server import Server  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["meson", "setup", build_dir, "--buildtype=release"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def populate(client, n_entries):
    """1000 directories of n/1000 empty files, 1000 ops a batch."""
    per_dir = max(1, n_entries // 1000)
    ops = []
    done = 0

    def flush():
        r = client.post(f"/meta/ns/{client.root_ns}/commit", {"ops": ops})
        assert r.status == 200, r
        assert all(x["status"] == "committed" for x in r.json["results"]), r
        ops.clear()

    def add(op):
        ops.append(op)
        if len(ops) == 1000:
            flush()

    for d in range(1000):
        add({"op": "dir", "path": f"d{d:03}"})
        for f in range(per_dir):
            add({"op": "file", "path": f"d{d:03}/f{f:06}", "size": 0, "blocks": []})
        done += per_dir
        if d % 100 == 99:
            print(f"  {done} entries on the server", file=sys.stderr)
    if ops:
        flush()
    return 1000 + 1000 * per_dir


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(cmd):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def local_tree(path, n_entries):
    per_dir = max(1, n_entries // 1000)
    for d in range(1000):
        os.mkdir(f"{path}/d{d:03}")
        for f in range(per_dir):
            open(f"{path}/d{d:03}/f{f:06}", "w").close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    args = ap.parse_args()
    build(args.build)
    os.environ["CLOUDFSD"] = os.path.join(args.build, "server", "cloudfsd")
    mount_bin = os.path.join(args.build, "fs", "mount.cloudfs")

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(f"{tmp}/data", f"{tmp}/cloudfsd.log").start()
        try:
            client = server.user("bench")
            t = time.monotonic()
            n = populate(client, args.entries)
            print(f"put {n} entries in {time.monotonic() - t:.1f} s", file=sys.stderr)

            token = f"{tmp}/token"
            with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(client.token)
            mnt = f"{tmp}/mnt"
            os.mkdir(mnt)
            log = open(f"{tmp}/mount.log", "w")
            t = time.monotonic()
            proc = subprocess.Popen(
                [mount_bin, server.url, mnt, "-f", "-o",
                 f"token_file={token},cache={tmp}/cache"],
                stderr=log)
            while not os.path.ismount(mnt):
                if proc.poll() is not None:
                    sys.exit(f"mount.cloudfs exited {proc.returncode}")
                time.sleep(0.05)
            t_mount = time.monotonic() - t
            rss = [("mount (first listing)", t_mount, peak_rss_mb(proc.pid))]
            try:
                for name, cmd in (("find", ["find", mnt]),
                                  ("ls -lR", ["ls", "-lR", mnt])):
                    rss.append((name, timed(cmd), peak_rss_mb(proc.pid)))
            finally:
                subprocess.run(["fusermount3", "-u", mnt], check=True)
                proc.wait(timeout=60)

            local = f"{tmp}/local"
            os.mkdir(local)
            local_tree(local, args.entries)
            subprocess.run(["sync"])
            t_local = timed(["find", local])
        finally:
            server.stop()

    print(f"\nmount.cloudfs with {n} entries (peak RSS, VmHWM)")
    print(f"{'step':<24}{'time s':>10}{'peak RSS MB':>14}")
    for name, secs, mb in rss:
        print(f"{name:<24}{secs:>10.2f}{mb:>14.1f}")
    print(f"\nfind over the same tree on local disk: {t_local:.2f} s;"
          f" find on the mount is {rss[1][1] / t_local:.1f}x that")
    worst = max(mb for _, _, mb in rss)
    print(f"peak RSS {worst:.1f} MB: {'under' if worst < 64 else 'OVER'} the 64 MB budget")


if __name__ == "__main__":
    main()
