"""Installing: `meson install` puts the mount helper where mount(8) looks
for it, whatever the prefix, and through the installed helper `mount -t
fuse.cloudfs`, a line of fstab (`mount -a`, with the words fstab lines
carry) and `umount` work, with the exit statuses mount(8) expects of its
helpers.

mount(8) looks for helpers in the real /sbin only.  So each test mounts
in a mount namespace of its own, where the scratch install's helper
directory is bound over /sbin: the machine's /sbin is never touched, and
what is mounted there (the helpers, the FUSE mounts) is seen only there.
The test reads and writes through /proc/PID/root of the process that
holds the namespace."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from cfs_fs import read, until, until_server_holds
from cfs_server import MOUNT_CLOUDFS, SANITIZER_MARKS, write_token_file

SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "..")
# The build that made the driver under test (BUILD/fs/mount.cloudfs).
BUILD = os.path.dirname(os.path.dirname(os.path.realpath(MOUNT_CLOUDFS)))


def meson(*args):
    p = subprocess.run(["meson", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"meson {' '.join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}"
    return p.stdout


def options_of(where):
    """The options of a build directory (or their defaults, given the
    project's meson.build): {name: value}."""
    return {o["name"]: o["value"]
            for o in json.loads(meson("introspect", "--buildoptions", where))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The build under test installed with DESTDIR into a scratch root, as
    a package is built or `sudo ninja install` installs: .helpers is the
    directory of the helpers and .sbindir the prefix's, in the scratch
    root."""
    root = str(tmp_path_factory.mktemp("destdir"))
    meson("install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", root)
    o = options_of(BUILD)
    # A relative directory is under the prefix; os.path.join keeps an
    # absolute one as it is, as meson does.
    return SimpleNamespace(helpers=root + os.path.join(o["prefix"], o["mount_helper_dir"]),
                           sbindir=root + os.path.join(o["prefix"], o["sbindir"]))


def test_by_default_the_helpers_go_to_sbin_where_mount_8_looks():
    assert options_of(os.path.join(SOURCE, "meson.build"))["mount_helper_dir"] == "/sbin"


@pytest.mark.parametrize("prefix", ["/usr", "/opt/cloudfs"])
def test_the_helpers_go_to_sbin_whatever_the_prefix(tmp_path, prefix):
    meson("setup", "--prefix", prefix, str(tmp_path / "build"), SOURCE)

    where = json.loads(meson("introspect", "--installed", str(tmp_path / "build")))

    assert where[str(tmp_path / "build" / "fs" / "mount.cloudfs")] == "/sbin/mount.cloudfs"
    assert where["mount.fuse.cloudfs"] == "/sbin/mount.fuse.cloudfs"


def test_install_puts_the_driver_and_the_fuse_cloudfs_helper_in_the_helper_directory(
        installed):
    driver = os.path.join(installed.helpers, "mount.cloudfs")
    helper = os.path.join(installed.helpers, "mount.fuse.cloudfs")

    assert os.path.isfile(driver) and os.access(driver, os.X_OK)
    assert os.readlink(helper) == "mount.cloudfs"
    if installed.sbindir != installed.helpers:
        assert not os.path.exists(os.path.join(installed.sbindir, "mount.cloudfs"))
    p = subprocess.run([helper, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("mount.cloudfs "), p


# The namespace starts as a copy of ours, with copies of the FUSE mounts of
# other programs (other tests on this machine, say).  A copy would keep
# such a filesystem alive, and its driver running, after its owner
# unmounted it: so the first thing in the namespace lets the copies go.
LET_FUSE_COPIES_GO = r"""
awk '$3 ~ /^fuse/ { print $2 }' /proc/self/mounts | while read -r mp; do
	umount -l "$(printf '%b' "$mp")" 2>/dev/null
done
exec sleep infinity
"""


class Namespace:
    """A mount namespace of its own (unshare --mount --propagation
    private), held by a sleeping process. mount() and run() run a command
    in it; path() is a path as seen in it. close() unmounts what is left,
    ends the drivers and the namespace with them."""

    def __init__(self):
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", LET_FUSE_COPIES_GO])
        self.drivers = []  # (pid, cache) of each driver mounted here
        # Until unshare has made the namespace and become sleep, a command
        # "in" it would run in ours: bind over the machine's /sbin.
        deadline = time.monotonic() + 10
        while not self._ready():
            if self.holder.poll() is not None:
                pytest.skip(f"unshare --mount exited {self.holder.returncode} "
                            "(not allowed to make a mount namespace)")
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)

    def _ready(self):
        pid = self.holder.pid
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                became_sleep = f.read().startswith(b"sleep\0")
            return became_sleep and os.readlink(f"/proc/{pid}/ns/mnt") != \
                os.readlink("/proc/self/ns/mnt")
        except FileNotFoundError:
            return False

    def run(self, *argv, expect=0):
        """Runs ARGV in the namespace; it must exit EXPECT (None: any
        status). Returns the CompletedProcess."""
        p = subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", *argv],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        for mark in SANITIZER_MARKS:
            assert mark not in p.stderr, f"sanitizer report from {argv}:\n{p.stderr}"
        assert expect is None or p.returncode == expect, \
            f"{' '.join(argv)} exited {p.returncode}, not {expect}: {p.stderr}"
        return p

    def mount(self, *argv, caches):
        """Runs a mount(8) command (ARGV) that must mount the caches
        CACHES, each by a driver of its own, which is then a child of ours
        (conftest's become_subreaper)."""
        p = self.run(*argv)
        for cache in caches:
            with open(os.path.join(cache, "lock")) as f:
                self.drivers.append((int(f.read().split()[0]), cache))
        return p

    def path(self, path):
        """PATH as seen in the namespace: through /proc/PID/root of a
        process in it."""
        return f"/proc/{self.holder.pid}/root{path}"

    def mounts(self):
        """{mountpoint: (type, source)} of what is mounted in the namespace."""
        out = {}
        with open(f"/proc/{self.holder.pid}/mountinfo") as f:
            for line in f:
                fields = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), x)
                          for x in line.split()]
                rest = fields[fields.index("-") + 1:]
                out[fields[4]] = (rest[0], rest[1])
        return out

    def check_clean_exits(self, timeout=45):
        """Every driver exits 0 within TIMEOUT (an unmount sends what is
        queued first), with no sanitizer report in its log."""
        for pid, cache in self.drivers:
            status = wait_exit(pid, timeout)
            with open(os.path.join(cache, "mount.log"), errors="replace") as f:
                log = f.read()
            for mark in SANITIZER_MARKS:
                assert mark not in log, f"sanitizer report in mount.cloudfs's log:\n{log}"
            assert status == 0, f"mount.cloudfs exited {status}:\n{log}"
        self.drivers = []

    def close(self):
        for mp, (kind, _) in self.mounts().items():
            if kind.startswith("fuse"):
                self.run("umount", "-l", mp, expect=None)
        for pid, _ in self.drivers:
            try:
                os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 30)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.holder.kill()
        self.holder.wait()


def wait_exit(pid, timeout):
    """The exit status of our child PID, once it exits within TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert time.monotonic() < deadline, f"mount.cloudfs {pid} did not exit in {timeout} s"
        time.sleep(0.01)


@pytest.fixture
def ns(installed):
    """A Namespace whose /sbin is the scratch install's helper directory."""
    for tool in ("unshare", "nsenter", "mount", "umount"):
        if not shutil.which(tool):
            pytest.skip(f"no {tool} (util-linux) to mount in a namespace of its own")
    n = Namespace()
    try:
        n.run("mount", "--bind", installed.helpers, "/sbin")
        yield n
    finally:
        n.close()


@pytest.fixture
def setup(alice, tmp_path):
    """Alice's URL, token file, and mountpoints and caches by number."""
    token = write_token_file(tmp_path / "alice.token", alice.token)
    for i in range(2):
        os.makedirs(tmp_path / f"mnt{i}")
    return SimpleNamespace(url=f"http://{alice.host}:{alice.port}", token=token,
                           mp=lambda i: str(tmp_path / f"mnt{i}"),
                           cache=lambda i: str(tmp_path / f"cache{i}"))


def test_mount_t_fuse_cloudfs_runs_the_installed_helper_and_umount_unmounts(
        alice, setup, ns):
    alice.write_file(alice.root_ns, "hello.txt", b"hello\n")
    mp = setup.mp(0)

    ns.mount("mount", "-t", "fuse.cloudfs", setup.url, mp,
             "-o", f"token_file={setup.token},cache={setup.cache(0)}", caches=[setup.cache(0)])

    assert ns.mounts()[mp] == ("fuse.cloudfs", setup.url)
    assert read(ns.path(mp + "/hello.txt")) == b"hello\n"
    with open(ns.path(mp + "/written.txt"), "wb") as f:
        f.write(b"through mount -t\n")
    until_server_holds(alice, {"written.txt": b"through mount -t\n"})
    ns.run("umount", mp)
    ns.check_clean_exits()
    assert mp not in ns.mounts()


def test_fstab_lines_mount_with_mount_a_and_by_mountpoint_whatever_words_they_carry(
        alice, setup, ns, tmp_path):
    fstab = tmp_path / "fstab"
    # As mount(8) passes them: defaults, noauto, x-* and comment= it keeps
    # to itself; _netdev, nofail, user and users it passes on, with the
    # nosuid, nodev and noexec that user implies.
    fstab.write_text(
        f"{setup.url} {setup.mp(0)} fuse.cloudfs defaults,_netdev,nofail,user,users,"
        f"x-systemd.automount,x-systemd.mount-timeout=30,comment=cloud,"
        f"token_file={setup.token},cache={setup.cache(0)} 0 0\n"
        f"{setup.url} {setup.mp(1)} fuse.cloudfs noauto,_netdev,"
        f"token_file={setup.token},cache={setup.cache(1)} 0 0\n")

    ns.mount("mount", "-a", "-T", str(fstab), caches=[setup.cache(0)])

    assert ns.mounts()[setup.mp(0)] == ("fuse.cloudfs", setup.url)
    assert setup.mp(1) not in ns.mounts(), "mount -a mounted a noauto line"
    ns.mount("mount", "-T", str(fstab), setup.mp(1), caches=[setup.cache(1)])
    assert ns.mounts()[setup.mp(1)] == ("fuse.cloudfs", setup.url)
    with open(ns.path(setup.mp(0) + "/from-fstab.txt"), "wb") as f:
        f.write(b"written through one fstab line\n")
    until(lambda: read(ns.path(setup.mp(1) + "/from-fstab.txt")) ==
          b"written through one fstab line\n", within=30, what="the file in the other mount")
    until_server_holds(alice, {"from-fstab.txt": b"written through one fstab line\n"})
    ns.run("umount", setup.mp(0), setup.mp(1))
    ns.check_clean_exits()
    assert setup.mp(0) not in ns.mounts() and setup.mp(1) not in ns.mounts()


@pytest.mark.parametrize("problem, status", [
    ("token_file=MISSING", 32),  # mount(8)'s "mount failure"
    ("token_file=TOKEN,no_such_option", 1),  # its "incorrect invocation"
], ids=["a refused mount", "a wrong option"])
def test_mount_8_returns_the_helpers_exit_status_and_nothing_is_mounted(
        alice, setup, ns, tmp_path, problem, status):
    opts = problem.replace("MISSING", str(tmp_path / "no-such-token")).replace(
        "TOKEN", setup.token) + f",cache={setup.cache(0)}"

    ns.run("mount", "-t", "fuse.cloudfs", setup.url, setup.mp(0), "-o", opts, expect=status)

    assert setup.mp(0) not in ns.mounts()
