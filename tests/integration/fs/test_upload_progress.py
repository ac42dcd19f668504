"""cloudfs status shows how far the largest file being sent has come, so
that a large upload is seen to move."""

from cfs_fs import at, cloudfs, payload, until
from cfs_proxy import proxy  # noqa: F401 (a fixture)
from cfs_server import BLOCK_SIZE


def test_status_shows_the_bytes_sent_of_a_large_file_held_mid_upload(alice, mount, proxy):
    m = mount(alice.clone(proxy.url), settle=0)
    data = payload(5 * BLOCK_SIZE + 123, seed=3)  # six blocks
    proxy.hold(r"PUT /block/", after=2)
    with open(at(m, "big.iso"), "wb") as f:
        f.write(data)
    proxy.wait_held(1)

    def progress():
        st = cloudfs("status", "--json", m.mountpoint, expect=3)["mounts"][0]
        return st["upload_progress"]

    # The two blocks let through are on the server; the others wait.
    until(lambda: (progress() or {}).get("sent") == 2 * BLOCK_SIZE, within=10,
          what="two blocks counted")
    assert progress() == {"path": "big.iso", "sent": 2 * BLOCK_SIZE, "size": len(data)}
    text = cloudfs("status", m.mountpoint, expect=3)
    assert "uploading big.iso: 8.0 MiB of 20.0 MiB" in text, text
    proxy.release()
    cloudfs("status", "--wait", m.mountpoint)
    assert cloudfs("status", "--json", m.mountpoint)["mounts"][0]["upload_progress"] is None
