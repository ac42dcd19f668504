"""An upload of bytes the server already holds takes as long as an upload of
new bytes, so one timed upload tells nobody what others have stored
(DESIGN.md, access to blocks; cloudfsd(8), FILES).

Fresh and already-held uploads are interleaved in a random order (the seed
is printed), so that a machine that slows down or speeds up part way slows
both kinds alike, and their medians are compared: a median shrugs off the
stalls a loaded machine throws in.  The tolerance is the larger of a
fixed share of the fresh median and three standard errors of the
difference, estimated from the spread (MAD) of the samples.  The old
store skipped two fsyncs and a rename for held bytes and was 35 to 50 %
faster for them, far beyond either bound; a round that lands outside the
bounds by bad luck is tried again, a real difference fails every round.

The fresh bytes are sent once before, under a wrong id (refused, not
stored), as the held ones were sent to be stored: bytes this process has
not touched yet are slower to send, which would make the fresh uploads
look slower by themselves.
"""

import os
import random
import statistics
import time

import pytest

from cfs_server import block_id

PAIRS = 40   # fresh and held uploads per round, each
ROUNDS = 3   # a round within the bounds passes
SHARE = 0.12  # of the fresh median: below this a difference is noise


def mad_se(samples):
    """The standard error of the median of SAMPLES, from their median
    absolute deviation (normal approximation, robust to outliers)."""
    med = statistics.median(samples)
    mad = statistics.median(abs(x - med) for x in samples)
    return 1.2533 * 1.4826 * mad / len(samples) ** 0.5


def timed_upload(client, data):
    t0 = time.perf_counter()
    r = client.upload(data)
    elapsed = time.perf_counter() - t0
    assert r.status == 200, r
    return elapsed


def one_round(alice, bob, size, rng):
    """PAIRS fresh and PAIRS held uploads by alice in a random order;
    returns (fresh times, held times) in seconds."""
    held = [os.urandom(size) for _ in range(PAIRS)]
    fresh = [os.urandom(size) for _ in range(PAIRS)]
    for data in held:  # stored by someone else, before the clock runs
        assert bob.upload(data).status == 200
    for data in fresh:  # sent as often, so as warm in this process's memory
        wrong_id = block_id(b"not " + data)
        assert bob.put(f"/block/{wrong_id}", data).status == 400
    plan = [("fresh", d) for d in fresh] + [("held", d) for d in held]
    rng.shuffle(plan)
    times = {"fresh": [], "held": []}
    for kind, data in plan:
        times[kind].append(timed_upload(alice, data))
    return times["fresh"], times["held"]


@pytest.mark.parametrize("size", [4096, 1 << 20], ids=["4KiB", "1MiB"])
def test_an_upload_of_held_bytes_takes_as_long_as_one_of_new_bytes(alice, bob, size):
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(5):  # warm the connections and the server's caches
        timed_upload(alice, os.urandom(size))
    report = []
    for _ in range(ROUNDS):
        fresh, held = one_round(alice, bob, size, rng)
        f, h = statistics.median(fresh), statistics.median(held)
        tol = max(SHARE * f, 3 * (mad_se(fresh) ** 2 + mad_se(held) ** 2) ** 0.5)
        report.append(f"fresh {f * 1e3:.2f} ms, held {h * 1e3:.2f} ms "
                      f"(held/fresh {h / f:.2f}), tolerance {tol * 1e3:.2f} ms")
        print(report[-1])
        if abs(f - h) <= tol:
            return
    pytest.fail(f"seed {seed}: the held bytes' uploads stand out in every round:\n"
                + "\n".join(report))
