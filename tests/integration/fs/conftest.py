"""Fixtures of the mount.cloudfs tests: real FUSE mounts of a real
cloudfsd, each cleaned up (unmounted, the driver checked for a clean exit)
whatever the test did."""

import os
import signal

import pytest

from cfs_fs import mounts, until
from cfs_server import MOUNT_CLOUDFS, become_subreaper


@pytest.fixture(scope="session", autouse=True)
def fuse_ready():
    if not os.access(MOUNT_CLOUDFS, os.X_OK):
        pytest.fail(f"no mount.cloudfs at {MOUNT_CLOUDFS} (set MOUNT_CLOUDFS)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    # A daemonized driver is then our child: its exit status is ours to read.
    become_subreaper()


@pytest.fixture
def mount(tmp_path):
    """mount(client, cache=None, start="daemon"|"foreground"|None, **options)
    -> a Mount of CLIENT's user on a new mountpoint (see cfs_fs.mounts).
    Every mount made is cleaned up after the test."""
    with mounts(tmp_path) as make:
        yield make


def all_stopped(pid):
    """Whether every thread of process PID is stopped: SIGSTOP stops each
    one only as it next leaves the kernel, so a request already taken may
    still be answered just after kill(2) returns."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        if state not in ("T", "t"):
            return False
    return True


@pytest.fixture
def paused(server):
    """paused() stops the server's process with SIGSTOP (it accepts
    connections, the kernel's backlog does, but answers nothing), and
    returns once all its threads are stopped; it is continued at the end
    of the test whatever happened."""
    stopped = []

    def pause():
        os.kill(server.proc.pid, signal.SIGSTOP)
        stopped.append(server.proc)
        until(lambda: all_stopped(server.proc.pid), within=30,
              what="the server's threads stopped")

    yield pause
    for proc in stopped:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
