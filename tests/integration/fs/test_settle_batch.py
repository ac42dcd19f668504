"""Files closed one after another settle together (fs/settle.c): the
first one due waits up to a quarter of the settle delay for those closed
right after it, so that they go in one commit, and none is committed
before its own delay has passed."""

import re
import time

from cfs_fs import at, server_listing, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)

SETTLE = 2.0  # seconds; its quarter, 0.5 s, is how late the first may go
COMMIT = r"POST /meta/ns/\d+/commit"


def commits(seen):
    return [line for line in seen if re.match(COMMIT, line)]


def test_files_closed_one_after_another_go_in_one_commit_and_none_early(
        alice, mount, proxy):
    m = mount(alice.clone(proxy.url), settle=SETTLE)
    before = len(proxy.seen)
    start = time.monotonic()
    # Due 0.1 s apart, well within the quarter of the delay: apart, each
    # went in a commit of its own.
    for i in range(3):
        with open(at(m, f"f{i}"), "wb") as f:
            f.write(b"file %d\n" % i)
        time.sleep(0.1)
    time.sleep(SETTLE / 2)
    seen = list(proxy.seen[before:])
    # Only meaningful while no file's delay can have passed yet.
    if time.monotonic() - start < SETTLE:
        assert commits(seen) == [], seen
    until(lambda: set(server_listing(alice, alice.root_ns)) == {"f0", "f1", "f2"},
          within=30, what="the three files on the server")
    assert len(commits(proxy.seen[before:])) == 1, proxy.seen[before:]
