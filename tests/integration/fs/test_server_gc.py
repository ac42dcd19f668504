"""The server's block storage comes back to what live files need once
they are deleted and retention has passed, with mounts working on: a
mount that writes bytes the server collected meanwhile sends them again."""

import os

from cfs_fs import MiB, at, cloudfs, payload, read, until, until_server_holds


def test_deleting_everything_returns_the_server_to_what_live_files_need(
        server, alice, mount):
    server.stop()
    server.start(options=["--retention", "1s", "--gc-every", "1s"])
    alice = alice.clone(server.url)
    m = mount(alice)
    files = {f"f{i}.bin": payload((i % 3) * 4 * MiB + 1000 * i + 1, f"f{i}") for i in range(8)}
    for name, data in files.items():
        with open(at(m, name), "wb") as f:
            f.write(data)
    with open(at(m, "f1.bin"), "wb") as f:  # a new version: the old one is garbage
        f.write(payload(5000, "f1 again"))
    for name in list(files)[2:]:
        os.unlink(at(m, name))
    cloudfs("status", "--wait", m.mountpoint)
    live = {"f0.bin": files["f0.bin"], "f1.bin": payload(5000, "f1 again")}
    until(lambda: server.stored_bytes() == sum(len(d) for d in live.values()), within=15,
          what="the server's blocks down to the live files'")
    print(f"server blocks: {server.stored_bytes()} bytes for "
          f"{sum(len(d) for d in live.values())} bytes of live files")
    # Bytes the server collected come back with the next file that has them.
    with open(at(m, "f5.bin"), "wb") as f:
        f.write(files["f5.bin"])
    cloudfs("status", "--wait", m.mountpoint)
    live["f5.bin"] = files["f5.bin"]
    until_server_holds(alice, live)
    fresh = mount(alice)
    for name, data in live.items():
        assert read(at(fresh, name)) == data
