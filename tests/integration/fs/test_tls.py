"""mount.cloudfs over https: the server's certificate is verified, and
-o ca=FILE trusts a private CA on every connection the mount opens (its
first calls, block uploads and fetches, the sync thread's long polls, the
control socket's share); without it, or with a CA that did not sign the
certificate, the mount is refused before anything is mounted."""

import os
import subprocess

import pytest

from cfs_fs import MiB, at, cloudfs, payload, read, until, until_server_holds
from cfs_server import mounted, tls_files


@pytest.fixture
def alice(tls_server):
    return tls_server.user("alice")


@pytest.fixture
def bob(tls_server):
    return tls_server.user("bob")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("start", ["foreground", "daemon"])
def test_with_ca_a_write_reaches_the_server_and_a_second_mount(alice, tls, mount, start):
    m1 = mount(alice, start=start, ca=tls.ca)
    m2 = mount(alice, ca=tls.ca)
    data = payload(5 * MiB + 3, "tls")  # two blocks
    assert m1.url.startswith("https://")

    write(at(m1, "big.bin"), data)
    cloudfs("status", "--wait", "--timeout", "60", m1.mountpoint)

    until_server_holds(alice, {"big.bin": data})
    until(lambda: read(at(m2, "big.bin")) == data, within=10,
          what="the file in the second mount")
    write(at(m2, "back.txt"), b"the other way")
    until(lambda: read(at(m1, "back.txt")) == b"the other way", within=10,
          what="the second mount's file in the first")


def test_a_share_is_made_over_https_too(alice, bob, tls, mount):
    m = mount(alice, ca=tls.ca)
    os.mkdir(at(m, "proj"))
    write(at(m, "proj", "a.txt"), b"shared over TLS")
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)

    cloudfs("share", at(m, "proj"), "bob")

    mb = mount(bob, ca=tls.ca)
    until(lambda: read(at(mb, "proj", "a.txt")) == b"shared over TLS", within=10,
          what="the shared folder in bob's mount")


def test_a_relative_ca_path_still_serves_once_the_mount_is_in_the_background(
        alice, tls, mount):
    # The daemon leaves the caller's directory, and libcurl reads the CA
    # file again for each new connection.
    m = mount(alice, start=None, ca=os.path.basename(tls.ca))
    m.start_daemon(cwd=os.path.dirname(tls.ca))

    write(at(m, "late.txt"), b"sent after daemonizing")
    cloudfs("status", "--wait", "--timeout", "60", m.mountpoint)

    until_server_holds(alice, {"late.txt": b"sent after daemonizing"})


def another_ca(tmp_path):
    return tls_files(tmp_path / "other").ca


@pytest.mark.parametrize("ca", [None, another_ca], ids=["no-ca", "another-ca"])
@pytest.mark.parametrize("foreground", [False, True], ids=["daemon", "foreground"])
def test_an_unverified_certificate_refuses_the_mount_and_says_so(
        alice, mount, tmp_path, ca, foreground):
    options = {} if ca is None else {"ca": ca(tmp_path)}
    m = mount(alice, start=None, **options)
    os.makedirs(m.mountpoint)

    p = subprocess.run(m.argv(foreground=foreground), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)

    assert p.returncode == 32, p
    assert "cannot trust the server" in p.stderr, p.stderr
    assert "certificate" in p.stderr, p.stderr
    assert "-o ca=FILE" in p.stderr, p.stderr
    assert not mounted(m.mountpoint)


def test_a_ca_file_that_cannot_be_read_refuses_the_mount_naming_it(alice, mount, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    m = mount(alice, start=None, ca=missing)
    os.makedirs(m.mountpoint)

    p = subprocess.run(m.argv(foreground=False), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)

    assert p.returncode == 32, p
    assert f"cannot read CA file '{missing}'" in p.stderr, p.stderr
    assert not mounted(m.mountpoint)


def test_a_certificate_that_does_not_verify_never_starts_a_mount_offline(
        alice, tls, mount, tmp_path):
    # The cache of an earlier mount would let an unreachable server's mount
    # start offline; a server that answers with the wrong certificate is no
    # outage, and is refused.
    first = mount(alice, ca=tls.ca)
    write(at(first, "a.txt"), b"a")
    cloudfs("status", "--wait", "--timeout", "60", first.mountpoint)
    first.unmount()
    m = mount(alice, cache=first.cache, start=None, ca=another_ca(tmp_path))
    os.makedirs(m.mountpoint)

    p = subprocess.run(m.argv(foreground=False), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)

    assert p.returncode == 32 and "cannot trust the server" in p.stderr, p
    assert not mounted(m.mountpoint)
