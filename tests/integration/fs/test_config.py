"""The configuration file (mount.cloudfs(8), FILES): `mount.cloudfs
MOUNTPOINT` mounts the server of ~/.config/cloudfs/config with its token
file, daemonized and with the default cache, as users run it; the command
line wins over the file; a malformed file is refused naming its line.
`cloudfs login URL` writes that file and the token file, once the server
accepted the token."""

import glob
import os
import pty
import stat
import subprocess
import time

import pytest

from cfs_fs import until, until_server_holds
from cfs_server import CLOUDFS, MOUNT_CLOUDFS, SANITIZER_MARKS, Mount, mounted, write_token_file


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """$XDG_CACHE_HOME, where the default caches are."""
    d = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    return d


def write_config(own_config, text):
    (own_config / "config").write_text(text)


def writes_reach_the_server(m, client, name, data):
    """A file written through mount M reaches CLIENT's server; then M is
    unmounted."""
    with open(os.path.join(m.mountpoint, name), "wb") as f:
        f.write(data)
    until_server_holds(client, {name: data})
    m.unmount()


def start_as_users_do(m, argv, cache_home):
    """Runs ARGV (no -f): it must exit 0 with M's mountpoint mounted; M then
    knows its default cache (the one under CACHE_HOME) and its daemon."""
    os.makedirs(m.mountpoint, exist_ok=True)
    p = run(argv)
    assert p.returncode == 0, f"{argv} exited {p.returncode}: {p.stderr}"
    assert mounted(m.mountpoint), f"{argv} returned, but nothing is mounted"
    [lock] = glob.glob(os.path.join(cache_home, "cloudfs", "*", "lock"))
    m.cache = os.path.dirname(lock)
    m.startup_log = p.stderr
    with open(lock) as f:
        m.pid = int(f.read().split()[0])


def run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    for mark in SANITIZER_MARKS:
        assert mark not in p.stderr, f"sanitizer report from {argv}:\n{p.stderr}"
    return p


@pytest.fixture
def plain_mount(tmp_path):
    """A Mount whose arguments the test gives; cleaned up after it."""
    made = []

    def make(url):
        m = Mount(url, tmp_path / f"mnt{len(made)}", "", "", tmp_path / "fg.log")
        made.append(m)
        return m

    yield make
    for m in made:
        m.cleanup()


def test_one_operand_mounts_the_configured_server_with_the_default_token_file(
        alice, own_config, cache_home, plain_mount):
    write_token_file(own_config / "token", alice.token)
    write_config(own_config, f"# set by hand\n\nserver = {alice.url}\n")
    m = plain_mount(alice.url)

    start_as_users_do(m, [MOUNT_CLOUDFS, m.mountpoint], cache_home)

    writes_reach_the_server(m, alice, "from-config.txt", b"written through a configured mount\n")


def test_the_configured_token_file_and_options_are_used(
        alice, own_config, cache_home, tmp_path, plain_mount):
    token = write_token_file(tmp_path / "elsewhere.token", alice.token)
    log = tmp_path / "custom.log"
    write_config(own_config, f"server = {alice.url}\ntoken_file = {token}\n"
                             f"options = settle=0.2,log={log}\n")
    m = plain_mount(alice.url)
    m.options["log"] = str(log)

    start_as_users_do(m, [MOUNT_CLOUDFS, m.mountpoint], cache_home)

    # The option reached the driver: the daemon logs where it was told to.
    until(lambda: f"mounted {alice.url}" in log.read_text(), what="the log line")
    m.unmount()


def test_the_command_line_wins_over_the_file(
        alice, own_config, cache_home, tmp_path, plain_mount):
    token = write_token_file(tmp_path / "alice.token", alice.token)
    # Everything the file says is wrong; the command line puts it right.
    write_config(own_config, "server = http://127.0.0.1:1\n"
                             "token_file = /nonexistent/token\n"
                             "options = timeout=0\n")
    m = plain_mount(alice.url)

    start_as_users_do(m, [MOUNT_CLOUDFS, alice.url, m.mountpoint,
                          "-o", f"token_file={token},timeout=5"], cache_home)

    writes_reach_the_server(m, alice, "cli-wins.txt", b"x")


def test_the_fstab_spec_cloudfs_means_the_configured_server(
        alice, own_config, cache_home, tmp_path, plain_mount):
    token = write_token_file(tmp_path / "alice.token", alice.token)
    write_config(own_config, f"server = {alice.url}\n")
    m = plain_mount(alice.url)

    start_as_users_do(m, [MOUNT_CLOUDFS, "cloudfs", m.mountpoint,
                          "-o", f"_netdev,token_file={token}"], cache_home)

    assert os.listdir(m.mountpoint) == []
    m.unmount()


@pytest.mark.parametrize("lines, says", [
    ("# fine\nsever = typo\n", "'{config}' line 3: unknown key 'sever'"),
    ("options = timeout=soon\n", "'options = timeout=soon' of '{config}'"),
], ids=["a malformed line, by file and line", "invalid options, by file"])
def test_a_bad_configuration_is_refused_with_exit_1_naming_it(
        alice, own_config, tmp_path, lines, says):
    write_config(own_config, f"server = {alice.url}\n{lines}")
    mp = tmp_path / "mnt"
    mp.mkdir()

    p = run([MOUNT_CLOUDFS, str(mp)])

    assert p.returncode == 1, p
    assert says.format(config=own_config / "config") in p.stderr, p.stderr
    assert not mounted(str(mp))


def test_without_a_server_anywhere_one_operand_is_a_wrong_command_line(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()

    p = run([MOUNT_CLOUDFS, str(mp)])

    assert p.returncode == 1, p
    assert "URL is required" in p.stderr, p.stderr


def test_a_missing_default_token_file_is_a_failure_naming_it(alice, own_config, tmp_path):
    write_config(own_config, f"server = {alice.url}\n")
    mp = tmp_path / "mnt"
    mp.mkdir()

    p = run([MOUNT_CLOUDFS, str(mp)])

    assert p.returncode == 32, p
    assert f"'{own_config / 'token'}'" in p.stderr, p.stderr
    assert not mounted(str(mp))


def login(url, token, *args):
    """cloudfs login URL ARGS with TOKEN piped on its stdin."""
    p = subprocess.run([CLOUDFS, "login", url, *args], input=token + "\n",
                       capture_output=True, text=True, timeout=60)
    for mark in SANITIZER_MARKS:
        assert mark not in p.stderr, f"sanitizer report from cloudfs login:\n{p.stderr}"
    return p


def test_login_keeps_a_good_token_0600_and_then_one_operand_mounts(
        alice, own_config, cache_home, plain_mount):
    p = login(alice.url, alice.token)

    assert p.returncode == 0, p.stderr
    token = own_config / "token"
    assert token.read_text() == alice.token + "\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert (own_config / "config").read_text() == \
        f"server = {alice.url}\ntoken_file = {token}\n"
    m = plain_mount(alice.url)
    start_as_users_do(m, [MOUNT_CLOUDFS, m.mountpoint], cache_home)
    writes_reach_the_server(m, alice, "after-login.txt", b"logged in\n")


def test_login_creates_the_directories_private_and_keeps_other_settings(
        alice, own_config, tmp_path):
    (own_config / "config").write_text("# mine\noptions = settle=1\nserver = http://old\n")
    elsewhere = tmp_path / "new" / "dir" / "alice.token"

    p = login(alice.url, alice.token, "--token-file", str(elsewhere))

    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(elsewhere.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    assert (own_config / "config").read_text() == \
        f"# mine\noptions = settle=1\nserver = {alice.url}\ntoken_file = {elsewhere}\n"


def test_login_with_a_refused_token_exits_1_and_writes_nothing(alice, own_config):
    p = login(alice.url, "0" * 64)

    assert p.returncode == 1, p
    assert "refused the token" in p.stderr and alice.url in p.stderr, p.stderr
    assert os.listdir(own_config) == []


def test_login_with_an_unreachable_server_exits_1_naming_it(own_config):
    p = login("http://127.0.0.1:1", "0" * 64)

    assert p.returncode == 1, p
    assert "http://127.0.0.1:1/meta/namespaces" in p.stderr, p.stderr
    assert os.listdir(own_config) == []


def test_help_lists_login():
    p = subprocess.run([CLOUDFS, "--help"], capture_output=True, text=True)

    assert p.returncode == 0 and "  login URL" in p.stdout, p


def test_login_on_a_terminal_prompts_and_does_not_echo_the_token(alice, own_config):
    master, slave = pty.openpty()
    p = subprocess.Popen([CLOUDFS, "login", alice.url], stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while b"token for" not in seen and time.monotonic() < deadline:
        seen += os.read(master, 4096)
    os.write(master, alice.token.encode() + b"\n")
    assert p.wait(timeout=60) == 0
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)

    assert f"token for {alice.url}: ".encode() in seen, seen
    assert alice.token.encode() not in seen, "the token was echoed"
    assert (own_config / "token").read_text() == alice.token + "\n"
