"""A throwaway PostgreSQL cluster for tests: initdb and pg_ctl from
Debian's postgresql package, on a temporary directory, listening only on
a Unix socket in it, run as an unprivileged user (tests run as root and
PostgreSQL refuses root).  One cluster per test session, started on first
use and stopped at exit; one fresh database per cloudfsd (new_database)."""

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")

# Which metadata engine Server runs cloudfsd on: "embedded" (the data
# directory's SQLite) or "postgresql" (a database of the session's cluster).
ENGINE = os.environ.get("CLOUDFS_TEST_META", "embedded")


def _owner():
    """The unprivileged user the cluster runs as when we are root."""
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise AssertionError("no unprivileged user to run PostgreSQL as")


class Cluster:
    """DURABLE keeps PostgreSQL's own fsync and synchronous commit, as a
    deployment would (bench/run measures with it); the tests go without."""

    def __init__(self, durable=False):
        self.dir = tempfile.mkdtemp(prefix="cfs-postgres-")
        self.user = _owner() if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.names = itertools.count(1)
        self._run("initdb", "-D", self.data, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "-U", "cloudfs")
        # Durability is not what the tests are about: no fsync.
        fast = "" if durable else \
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                  "-o", f"-k {self.dir} -c listen_addresses= -c max_connections=300{fast}",
                  "start")
        atexit.register(self.stop)

    def _run(self, tool, *args):
        argv = [os.path.join(PG_BIN, tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.user.pw_name, "--", *argv]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/")
        if p.returncode != 0:
            raise AssertionError(f"{tool} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p

    def url(self, db):
        return f"postgresql://cloudfs@/{db}?host={self.dir}"

    def sql(self, db, query):
        """Runs QUERY in database DB; its rows as lists of strings."""
        p = self._run("psql", "-h", self.dir, "-U", "cloudfs", "-d", db, "-AtX",
                      "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query)
        return [line.split("\t") for line in p.stdout.splitlines()]

    def new_database(self):
        """A new, empty database; its name."""
        name = f"t{os.getpid()}_{next(self.names)}"
        self._run("createdb", "-h", self.dir, "-U", "cloudfs", name)
        return name

    def stop(self):
        if os.path.exists(self.data):
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster = None


def cluster():
    """The session's cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster
