"""The bash completions of the three programs (tools/*.bash-completion):
each, sourced into bash as bash-completion would, offers the commands,
options and operands the program takes, and every option it offers is
one the program's --help names."""

import os
import re
import subprocess

import pytest

from cfs_server import CLOUDFS, CLOUDFSD, MOUNT_CLOUDFS

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools")


def complete(program, words, cwd=None):
    """What completing the last of WORDS (the line after PROGRAM) offers."""
    line = [program, *words]
    script = (f"source {os.path.join(TOOLS, program + '.bash-completion')}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in line)})\n"
              f"COMP_CWORD={len(line) - 1}\n"
              f"$(complete -p {program} | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                       cwd=cwd)
    assert p.returncode == 0, p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


@pytest.mark.parametrize("program, words, want", [
    ("cloudfs", [""], ["cache", "history", "leave", "login", "restore", "share", "shares",
                       "stats", "status", "unshare"]),
    ("cloudfs", ["cache", ""], ["evict", "gc", "ls", "pin", "stat", "unpin", "verify", "warm"]),
    ("cloudfs", ["restore", "--j"], ["--jid", "--json"]),
    ("cloudfsd", [""], ["--help", "--version", "gc", "revoke", "serve", "stop", "token",
                        "useradd"]),
    ("cloudfsd", ["stop", "--"], ["--data", "--help", "--timeout"]),
    ("cloudfsd", ["serve", "--tls-"], ["--tls-cert", "--tls-key"]),
    ("cloudfsd", ["gc", "--"], ["--blocks", "--data", "--help", "--meta", "--retention",
                                "--s3-credentials", "--s3-endpoint", "--s3-path-style",
                                "--s3-region", "--s3-virtual-host"]),
    ("cloudfsd", ["serve", "--blocks", "s"], ["s3://"]),
    ("mount.cloudfs", ["-o", "token_file=t,cache_"], ["token_file=t,cache_min_free=",
                                                      "token_file=t,cache_size="]),
    ("mount.cloudfs", ["--"], ["--help", "--version"]),
])
def test_each_program_completes_its_commands_and_options(program, words, want):
    assert complete(program, words) == want


def test_paths_complete_where_a_program_takes_one(tmp_path):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "file").write_text("x")
    assert complete("mount.cloudfs", ["http://h:8470", "m"], cwd=tmp_path) == ["mnt"]
    assert complete("mount.cloudfs", ["m"], cwd=tmp_path) == ["mnt"]  # URL from the config
    assert complete("cloudfsd", ["serve", "--data", "m"], cwd=tmp_path) == ["mnt"]
    assert complete("cloudfs", ["cache", "pin", "f"], cwd=tmp_path) == ["file"]


@pytest.mark.parametrize("program, binary, words", [
    ("cloudfs", CLOUDFS, [["--"]]),
    ("cloudfsd", CLOUDFSD, [["serve", "--"], ["gc", "--"], ["useradd", "--"], ["stop", "--"]]),
    ("mount.cloudfs", MOUNT_CLOUDFS, [["--"], ["-o", ""]]),
])
def test_every_option_offered_is_one_the_help_names(program, binary, words):
    helps = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    for sub in {w[0] for w in words if w[0] in ("serve", "gc", "useradd", "stop")}:
        helps += subprocess.run([binary, sub, "--help"], capture_output=True, text=True).stdout
    for w in words:
        for offered in complete(program, w):
            name = offered.rstrip("=")
            if name in ("allow_other", "default_permissions", "ro", "rw"):
                continue  # FUSE's and mount(8)'s, not ours to list
            assert re.search(re.escape(name) + r"\b", helps), f"{program} offers {offered}"
