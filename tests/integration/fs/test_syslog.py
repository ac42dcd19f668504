"""A mount in the background (fstab, mount(8)) logs to syslog as well as
to its log file, so that an admin finds it in the journal.

The machine's /dev/log is never touched: the mount runs in a mount
namespace of its own whose /dev holds the devices it needs and, as
/dev/log, a datagram socket this test reads."""

import os
import re
import socket
import subprocess

from cfs_server import MOUNT_CLOUDFS, SANITIZER_MARKS, write_token_file


def test_a_daemonized_mount_logs_to_syslog_too(server, tmp_path):
    token = write_token_file(tmp_path / "token", server.useradd("alice"))
    dev, mnt, cache = tmp_path / "dev", tmp_path / "mnt", tmp_path / "cache"
    for d in (dev, mnt):
        d.mkdir()
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(str(dev / "log"))
    log.settimeout(30)
    # The devices are made anew (as root) in a tmpfs over /dev.
    script = (
        'set -e; mount -t tmpfs -o mode=755 cloudfs-test-dev /dev;'
        'mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5;'
        'mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/fuse c 10 229;'
        'touch /dev/log; mount --bind "$0/log" /dev/log;'
        '"$1" "$2" "$3" -o "token_file=$4,cache=$5"; ls "$3" >/dev/null; fusermount3 -u "$3"')
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        str(dev), MOUNT_CLOUDFS, server.url, str(mnt), token, str(cache)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr

    lines = []
    while not any("unmounting" in line for line in lines):
        lines.append(log.recv(4096).decode())
    log.close()

    # <30>: facility daemon (3 << 3), priority info (6).
    assert re.fullmatch(rf"<30>.* mount\.cloudfs\[\d+\]: mounted {re.escape(server.url)} on "
                        rf"'{re.escape(str(mnt))}' \(cache '.*'\)", lines[0]), lines
    assert lines[-1].endswith(f"]: unmounting '{mnt}'"), lines
    # The daemon is ours to reap (conftest.fuse_ready): a clean exit.
    pid = int(re.search(r"mount\.cloudfs\[(\d+)\]", lines[0]).group(1))
    assert os.waitpid(pid, 0)[1] == 0
    with open(cache / "mount.log") as f:
        kept = f.read()
    assert "info: mounted" in kept and "info: unmounting" in kept, kept
    assert not any(mark in kept for mark in SANITIZER_MARKS), kept
