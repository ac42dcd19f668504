"""cloudfsd as a service: the systemd units meson installs, the log a
journal reads, and 'cloudfsd stop' in place of pkill."""

import os
import re
import subprocess
import time

import pytest

from cfs_server import CLOUDFSD, SANITIZER_MARKS, Server, run_cli

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(CLOUDFSD)))


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    """What `meson install` of this build puts in a DESTDIR."""
    d = tmp_path_factory.mktemp("destdir")
    subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
                    "--destdir", str(d)], check=True, capture_output=True, timeout=300)
    return d


def installed(destdir, name):
    found = [os.path.join(root, name) for root, _, files in os.walk(destdir) if name in files]
    assert len(found) == 1, f"{name} installed as {found}"
    return found[0]


@pytest.mark.parametrize("unit, manager", [("cloudfsd.service", "--system"),
                                           ("cloudfs@.service", "--user")])
def test_each_installed_unit_passes_systemd_analyze_verify(destdir, tmp_path, unit, manager):
    # verify wants the ExecStart binaries to exist: the unit's absolute
    # paths are pointed at the same files under DESTDIR.
    with open(installed(destdir, unit)) as f:
        text = f.read()
    for exe in re.findall(r"^ExecStart=(\S+)", text, re.M):
        assert os.access(f"{destdir}{exe}", os.X_OK), f"{unit} runs {exe}, not installed"
        text = text.replace(exe, f"{destdir}{exe}")
    (tmp_path / unit).write_text(text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)  # a --user manager needs one
    p = subprocess.run(["systemd-analyze", manager, "verify", "--man=no", str(tmp_path / unit)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, XDG_RUNTIME_DIR=str(runtime)))
    # verify exits 0 on directives it ignores; anything it says is a flaw.
    assert (p.returncode, p.stdout + p.stderr) == (0, "")


def test_under_systemd_lines_carry_a_priority_and_no_timestamp(tmp_path):
    r, w = os.pipe()
    st = os.fstat(w)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    s = subprocess.Popen([CLOUDFSD, "serve", "--data", str(tmp_path / "data"),
                          "--listen", "127.0.0.1:0"], stderr=w, env=env)
    os.close(w)
    with os.fdopen(r) as log:
        first = log.readline()
        s.terminate()
        assert s.wait(timeout=20) == 0
        lines = [first] + log.read().splitlines(keepends=True)
    assert re.fullmatch(r"<6>cloudfsd \S+ serving '.*', listening on http://127\.0\.0\.1:\d+\n", first)
    assert lines[-1] == "<6>stopping on Terminated\n"
    assert all(line.startswith(("<3>", "<4>", "<6>", "<7>")) for line in lines), lines


def test_a_stale_journal_stream_is_not_the_journal(tmp_path):
    """A JOURNAL_STREAM inherited by a process whose stderr is elsewhere
    (a file here) leaves the timestamped lines."""
    log = tmp_path / "log"
    with open(log, "w") as f:
        p = subprocess.run([CLOUDFSD, "stop", "--data", str(tmp_path)], stderr=f,
                           env=dict(os.environ, JOURNAL_STREAM="1:2"), timeout=60)
    assert p.returncode == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z cloudfsd\[\d+\] error: no cloudfsd serves '.*'\n",
                        log.read_text())


@pytest.mark.embedded_only("cloudfsd stop finds the server by the embedded store's lock")
def test_cloudfsd_stop_stops_the_server_of_a_data_directory(tmp_path):
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start(
        options=["--pidfile", str(tmp_path / "cloudfsd.pid")])
    assert (tmp_path / "cloudfsd.pid").read_text() == f"{s.proc.pid}\n"

    p = run_cli("stop", "--data", s.data_dir)

    # stop returns once the server has exited: no wait here.
    assert s.proc.poll() == 0, s.log_text()
    assert p.stdout == ""
    assert "stopped the cloudfsd serving" in p.stderr and f"pid {s.proc.pid}" in p.stderr
    assert not (tmp_path / "cloudfsd.pid").exists()
    s.log.close()
    assert not any(m in s.log_text() for m in SANITIZER_MARKS), s.log_text()
    s.proc = None


def test_cloudfsd_stop_fails_when_no_server_runs(tmp_path):
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start()
    s.stop()  # the lock file stays, with the pid of a server now gone

    for data in (s.data_dir, str(tmp_path / "never")):
        p = run_cli("stop", "--data", data, check=False)
        assert p.returncode == 1
        assert f"no cloudfsd serves '{data}'" in p.stderr


def test_cloudfsd_stop_leaves_a_garbage_collection_alone(tmp_path):
    """'cloudfsd gc' holds the same lock; stop must not mistake it (or the
    pid a past server left) for a server."""
    s = Server(tmp_path / "data", tmp_path / "cloudfsd.log").start()
    s.stop()
    holder = subprocess.Popen(["flock", "--exclusive", os.path.join(s.data_dir, "serve.lock"),
                               "sleep", "30"])
    try:
        time.sleep(0.5)
        # What cloudfsd gc does to the file after taking the lock.
        open(os.path.join(s.data_dir, "serve.lock"), "w").close()
        p = run_cli("stop", "--data", s.data_dir, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 1
    assert "locked by a process that is not a server" in p.stderr
