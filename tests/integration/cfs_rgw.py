"""Ceph's S3 gateway, radosgw, for the tests that need a server checking
SigV4 signatures as AWS does (s3rver does not): a throwaway Ceph cluster
of one monitor and one OSD keeping objects in memory (memstore), and a
radosgw, all on 127.0.0.1 and free ports, with cephx off between them
(the S3 users' keys are still checked), in one temporary directory.
Debian's radosgw, ceph-mon and ceph-osd (tools/debian-packages)."""

import os
import shutil
import socket
import subprocess
import time
import uuid

BUCKET = "cloudfs-rgw"
ACCESS_KEY = "CLOUDFSTESTKEY"
SECRET_KEY = "cloudfs-test-secret"


def missing():
    """Why radosgw cannot be started here, or None."""
    for tool in ("radosgw", "radosgw-admin", "ceph-mon", "ceph-osd", "ceph", "monmaptool",
                 "ceph-authtool"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian's radosgw, ceph-mon, ceph-osd)"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RadosGateway:
    def __init__(self, directory):
        self.dir = str(directory)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.procs = []
        self.port = free_port()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *argv, timeout=120):
        p = subprocess.run([*argv, "-c", self.conf], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"{argv} exited {p.returncode}: {p.stderr}{p.stdout}"
        return p.stdout

    def _daemon(self, *argv):
        log = open(os.path.join(self.dir, "log", f"{os.path.basename(argv[0])}.out"), "a")
        self.procs.append(subprocess.Popen([*argv, "-f", "-c", self.conf],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        log.close()

    def _write_conf(self, mon_port):
        fsid = str(uuid.uuid4())
        d = self.dir
        with open(self.conf, "w") as f:
            f.write(f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon data = {d}/mon/$name
osd data = {d}/osd/$name
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
ms bind ipv6 = false
rgw frontends = beast endpoint=127.0.0.1:{self.port}
rgw data = {d}/rgw
""")
        return fsid

    def start(self, timeout=120):
        for sub in ("run", "log", "mon", "osd/osd.0", "rgw"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        mon_port = free_port()
        fsid = self._write_conf(mon_port)
        keyring = os.path.join(self.dir, "keyring")
        for name, caps in (("mon.", ["mon", "allow *"]),
                           ("client.admin", ["mon", "allow *", "osd", "allow *",
                                             "mgr", "allow *"]),
                           ("osd.0", ["mon", "allow profile osd", "osd", "allow *"]),
                           ("client.rgw", ["mon", "allow rw", "osd", "allow rwx"])):
            create = ["--create-keyring"] if name == "mon." else []
            subprocess.run(["ceph-authtool", *create, keyring, "--gen-key", "-n", name,
                            *[a for i in range(0, len(caps), 2)
                              for a in ("--cap", caps[i], caps[i + 1])]],
                           check=True, capture_output=True, timeout=60)
        monmap = os.path.join(self.dir, "monmap")
        self._run("monmaptool", "--create", "--fsid", fsid,
                  "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", monmap)
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring)
        self._daemon("ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        assert self._run("ceph", "osd", "new", osd_uuid).strip() == "0"
        self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("ceph-osd", "-i", "0")
        self._daemon("radosgw", "-n", "client.rgw")
        deadline = time.monotonic() + timeout
        while not self._answers():
            for p in self.procs:
                assert p.poll() is None, f"{p.args} exited {p.returncode}:\n{self.logs()}"
            assert time.monotonic() < deadline, "radosgw did not come up:\n" + self.logs()
            time.sleep(0.5)
        self._run("radosgw-admin", "user", "create", "--uid", "cloudfs",
                  "--display-name", "cloudfs tests", "--access-key", ACCESS_KEY,
                  "--secret", SECRET_KEY)
        status = self.curl("-X", "PUT", f"{self.endpoint}/{BUCKET}")[0]
        assert status == 200, f"cannot create bucket {BUCKET}: HTTP {status}"
        return self

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def curl(self, *args, secret=SECRET_KEY):
        """curl ARGS signed as the test user with SECRET: (status, body)."""
        p = subprocess.run(
            ["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3",
             "--user", f"{ACCESS_KEY}:{secret}", "-H",
             "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "-w", "\n%{http_code}", *args], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        body, _, status = p.stdout.rpartition(b"\n")
        return int(status), body

    def blocks_options(self, prefix):
        return ["--blocks", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", self.endpoint,
                "--s3-path-style"]

    def logs(self):
        out = []
        for name in sorted(os.listdir(os.path.join(self.dir, "log"))):
            with open(os.path.join(self.dir, "log", name), errors="replace") as f:
                out.append(f"--- {name}\n" + f.read()[-3000:])
        return "\n".join(out)

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
