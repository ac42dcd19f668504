"""The differential harness (cfsrand.py) as a test: fixed seeds on a real
cloudfsd and a daemonized mount, with every event, and the self-test (a
local folder as both sides), which must always pass.

tests/harness/run --seed S --ops N runs longer; see cfsrand.py."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cfsrand  # noqa: E402

# The CI budget: 6 seeds of 3,500 operations (21,000), 3 workers.
#
# SEEDS_TODAY run with what avoids the open cloudfs bugs (TODAY_OPTIONS:
# no rename over an existing entry and no atomic save; of the events only
# remount and kill -9: no share, no server outage, and no cache evict or
# cache ls, which delete the mount's WAL), and must pass.
#
# SEEDS_AFTER_FIXES run with every operation and every event. Each of them
# fails today (2026-12-04), because of the open bugs in OPEN_BUGS; set
# SEEDS_AFTER_FIXES_ENABLED (or CFSRAND_AFTER_FIXES=1) once they are fixed.
SEEDS_TODAY = (101, 102, 103, 104, 105, 106)
TODAY_OPTIONS = ["--without", "replace", "--events", "remount,kill9"]
SEEDS_AFTER_FIXES = (101, 102, 103, 104, 105, 106)
SEEDS_AFTER_FIXES_ENABLED = bool(os.environ.get("CFSRAND_AFTER_FIXES"))
OPS_PER_SEED = 3500
OPEN_BUGS = {
    "rename-over": "rename of a freshly written file over a synced one makes a "
                   "conflicted copy and loses the name (every seed, within ~300 operations)",
    "share": "sharing a folder drops its settling files and empties it in the mount",
    "wal": "cloudfs cache ls or cache evict next to a mount deletes its SQLite WAL: "
           "queued changes lost at kill -9, EIO, SIGBUS, unmount hangs",
    "unique": "the upload queue jams with UNIQUE constraint failed: entries.ns, "
              "entries.node (after a server outage)",
}

SELF_TEST_SEEDS = (1, 2, 3, 4, 5)

# How long a failure may be shrunk before it is reported (seconds).
SHRINK_S = float(os.environ.get("CFSRAND_SHRINK", "90"))


def args_for(seed, ops, self_test=False, mounts=1, options=()):
    return cfsrand.parse_args(["--seed", str(seed), "--ops", str(ops),
                               "--shrink", str(SHRINK_S), "--mounts", str(mounts),
                               "--out", os.environ.get("CFSRAND_OUT", "/tmp"), *options]
                              + (["--self-test"] if self_test else []))


@pytest.fixture(scope="module", autouse=True)
def programs():
    cfsrand.use_build(None)
    if not os.access(cfsrand.cfs_server.MOUNT_CLOUDFS, os.X_OK):
        pytest.fail(f"no mount.cloudfs at {cfsrand.cfs_server.MOUNT_CLOUDFS} "
                    "(set MOUNT_CLOUDFS)")
    cfsrand.prepare()


shrunk = []


def run(seed, ops, **kw):
    args = args_for(seed, ops, **kw)
    if shrunk:
        args.shrink = 0  # one failure shrunk per session is enough to go on with
    ok, done, secs, report = cfsrand.run_seed(seed, args)
    if not ok and args.shrink:
        shrunk.append(seed)
    assert ok, report
    assert done >= ops * 0.99, f"only {done} of {ops} operations ran"


@pytest.mark.parametrize("seed", SELF_TEST_SEEDS)
def test_the_model_against_itself_always_agrees(seed):
    run(seed, 3000, self_test=True)


def test_the_model_against_itself_with_two_mounts(seed=6):
    run(seed, 2000, self_test=True, mounts=2)


@pytest.mark.parametrize("seed", SEEDS_TODAY)
def test_a_mount_does_what_a_local_folder_does(seed):
    run(seed, OPS_PER_SEED, options=TODAY_OPTIONS)


@pytest.mark.parametrize("seed", SEEDS_AFTER_FIXES)
def test_a_mount_does_what_a_local_folder_does_with_every_operation_and_event(seed):
    if not SEEDS_AFTER_FIXES_ENABLED:
        pytest.skip("waits for the open bugs: " + "; ".join(OPEN_BUGS.values()))
    run(seed, OPS_PER_SEED)


def test_two_mounts_of_one_user_keep_every_write(seed=201):
    run(seed, 2000, mounts=2, options=TODAY_OPTIONS)
