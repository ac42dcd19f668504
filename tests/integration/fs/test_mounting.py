"""Mounting and unmounting: going into the background once the mount is
up, refusals (exit 32, mount(8)'s "mount failure") before anything is
mounted, a wrong command line (exit 1, its "incorrect invocation"), and
every way of unmounting. mount(8) running the installed helper, from the
command line and from fstab: test_install.py."""

import contextlib
import os
import re
import signal
import socket
import subprocess
from types import SimpleNamespace

import pytest

from cfs_fs import File, MiB, payload, put_tree, read, timed, tree_of, until
from cfs_server import CLOUDFSD, MOUNT_CLOUDFS, SANITIZER_MARKS, mounted, write_token_file

TREE = {"hello.txt": File(b"hello\n"), "big.bin": File(payload(3 * 4 * MiB + 5, "big"))}


@pytest.fixture
def filled(alice):
    put_tree(alice, alice.root_ns, TREE)
    return alice


def test_without_f_the_command_returns_once_mounted_and_the_daemon_serves(filled, mount):
    m = mount(filled, start=None)

    p = m.start_daemon()

    assert sorted(os.listdir(m.mountpoint)) == ["big.bin", "hello.txt"]
    assert read(os.path.join(m.mountpoint, "big.bin")) == TREE["big.bin"].data
    # The threads that follow the server run in the daemon too.
    filled.write_file(filled.root_ns, "later.txt", b"after the command returned")
    until(lambda: read(os.path.join(m.mountpoint, "later.txt")) == b"after the command returned",
          what="a change after daemonizing")
    assert f"mounted {m.url}" in read(os.path.join(m.cache, "mount.log")).decode()
    assert p.stdout == ""
    m.unmount(command=("umount",))


def run(argv):
    """Runs ARGV to its end; it must not report a sanitizer error (which
    would also change its exit status)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    for mark in SANITIZER_MARKS:
        assert mark not in p.stderr, f"sanitizer report from {argv}:\n{p.stderr}"
    return p


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The problems a mount must refuse. Each sets one up for the mount M (not
# started yet; the test has its server, alice, the mount fixture and
# tmp_path) and returns the words the refusal must name.

def unreachable_server(m, t):
    m.url = f"http://127.0.0.1:{closed_port()}"
    return [m.url]


def bad_token(m, t):
    write_token_file(m.token_file, "0" * 64)
    return [m.token_file, "refused"]


def missing_token_file(m, t):
    m.token_file = str(t.tmp_path / "no-such-token")
    return [m.token_file]


def token_file_others_can_read(m, t):
    os.chmod(m.token_file, 0o644)
    return [m.token_file, "0644"]


def mountpoint_not_empty(m, t):
    os.makedirs(m.mountpoint)
    open(os.path.join(m.mountpoint, "something"), "w").close()
    return [m.mountpoint, "empty"]


def cache_in_use(m, t):
    other = t.mount(t.alice, cache=m.cache)
    return [m.cache, str(other.pid)]


def cache_of_another_user(m, t):
    t.mount(t.server.user("bob"), cache=m.cache).unmount()
    return [m.cache]


def cache_through_a_symlink(m, t):
    os.makedirs(t.tmp_path / "real-cache")
    os.symlink(t.tmp_path / "real-cache", m.cache)
    return [m.cache, "symlink"]


@pytest.mark.parametrize("problem", [
    unreachable_server, bad_token, missing_token_file, token_file_others_can_read,
    mountpoint_not_empty, cache_in_use, cache_of_another_user, cache_through_a_symlink])
def test_a_problem_is_refused_with_exit_32_before_mounting_naming_it(
        server, filled, mount, tmp_path, problem):
    m = mount(filled, start=None)
    words = problem(m, SimpleNamespace(server=server, alice=filled, mount=mount,
                                       tmp_path=tmp_path))
    os.makedirs(m.mountpoint, exist_ok=True)

    p = run(m.argv(foreground=False))

    assert p.returncode == 32, p
    for w in words:
        assert w in p.stderr, f"the message does not name {w!r}: {p.stderr}"
    assert not mounted(m.mountpoint)


@pytest.mark.parametrize("argv", [
    [], ["URL"], ["URL", "MP", "EXTRA", "-o", "token_file=TOKEN"],
    ["URL", "MP", "-o", "token_file=TOKEN,timeout=0"],
    ["URL", "MP", "-o", "token_file=TOKEN,timeout=soon"],
    ["URL", "MP", "-o", "token_file=TOKEN,parallel=0"],
    ["URL", "MP", "-o", "token_file=TOKEN,streaming=maybe"],
    ["URL", "MP", "-o", "token_file=TOKEN,no_such_option"],
    ["URL", "MP", "-o", "token_file=TOKEN", "--no-such-flag"],
], ids=lambda a: " ".join(a) or "nothing")
def test_a_wrong_command_line_exits_1_with_the_usage_and_mounts_nothing(
        filled, mount, argv):
    m = mount(filled, start=None)
    os.makedirs(m.mountpoint)
    subst = {"URL": m.url, "MP": m.mountpoint, "EXTRA": m.mountpoint}
    argv = [re.sub(r"URL|MP|EXTRA|TOKEN", lambda w: subst.get(w[0], m.token_file), a)
            for a in argv]

    p = run([MOUNT_CLOUDFS, *argv])

    assert p.returncode == 1, p
    assert "usage: mount.cloudfs" in p.stderr, p.stderr
    assert not mounted(m.mountpoint)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_shows_the_usage_and_exits_0(flag):
    p = run([MOUNT_CLOUDFS, flag])

    assert p.returncode == 0, p
    assert p.stdout.startswith("usage: mount.cloudfs [URL] MOUNTPOINT"), p.stdout
    assert "token_file=" in p.stdout


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_shows_the_version_and_exits_0(flag):
    version = subprocess.run([CLOUDFSD, "--version"], capture_output=True,
                             text=True).stdout.split()[-1]

    p = run([MOUNT_CLOUDFS, flag])

    assert p.returncode == 0, p
    assert p.stdout.startswith(f"mount.cloudfs {version}"), (p.stdout, version)


def signal_sender(sig):
    def send(m):
        os.kill(m.pid, sig)
    return send


def command(*argv):
    def run(m):
        subprocess.run([*argv, m.mountpoint], check=True, timeout=30)
    return run


@pytest.mark.parametrize("start", ["foreground", "daemon"])
@pytest.mark.parametrize("how", [command("fusermount3", "-u"), command("umount"),
                                 signal_sender(signal.SIGTERM), signal_sender(signal.SIGINT)],
                         ids=["fusermount3 -u", "umount", "SIGTERM", "SIGINT"])
def test_each_way_of_unmounting_ends_the_mount_cleanly(filled, mount, start, how):
    m = mount(filled, start=start)
    assert read(os.path.join(m.mountpoint, "big.bin")) == TREE["big.bin"].data

    how(m)

    m.check_clean_exit()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_a_file_is_open_ends_the_mount_cleanly(filled, mount, sig):
    m = mount(filled)
    fd = os.open(os.path.join(m.mountpoint, "hello.txt"), os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"hello\n"

        os.kill(m.pid, sig)

        m.check_clean_exit()
    finally:
        with contextlib.suppress(OSError):  # the mount is gone
            os.close(fd)


def test_after_kill_9_the_next_mount_of_the_same_cache_starts_and_reads_right(
        filled, mount, tmp_path):
    first = mount(filled)
    assert read(os.path.join(first.mountpoint, "hello.txt")) == b"hello\n"
    with open(os.path.join(first.mountpoint, "big.bin"), "rb", buffering=0) as f:
        f.read(MiB)  # fetches under way
        first.kill9()
        timed(lambda: f.read(MiB), 30)  # the dead mount answers, whatever it says

    m = mount(filled, cache=first.cache)

    assert read(os.path.join(m.mountpoint, "big.bin")) == TREE["big.bin"].data
    assert read(os.path.join(m.mountpoint, "hello.txt")) == b"hello\n"
    assert sorted(tree_of(m.mountpoint)) == ["big.bin", "hello.txt"]
