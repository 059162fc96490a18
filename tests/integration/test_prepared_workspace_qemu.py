"""Prepared workspaces on a QEMU guest: a repository's executable
.banger/setup runs as root in the guest's copy before the command of
`vm run DIR -- COMMAND`, its output streamed and kept in a log on the host
and in the guest; a failed setup stops with its exit code and the log's
path; `--no-setup` skips it; mise files without mise in the image are said
once. Real CLI, daemon, helper, git and guest, in a namespace this test
creates. The test image has busybox's sh, date and sleep."""
import os
import re
import subprocess

import pytest

from lifecycle import env_with_test_image

SIZES = ("--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory", "256M", "--disk-size", "128M")

SETUP = """#!/bin/sh
# banger-inputs: deps.txt
echo "setup starts in $(pwd) as $(id -u)"
sleep 5
echo "$(date +%s) $(cat /proc/sys/kernel/random/uuid)" > marker
echo setup done
"""


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1"}).stdout


def make_repo(parent, name, setup=SETUP, extra=None):
    repo = parent / name
    repo.mkdir(parents=True)
    (parent / ".gitconfig").write_text("[user]\n\tname = Ada Host\n\temail = ada@host.example\n")
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text("marker\n")
    (repo / "deps.txt").write_text("one\n")
    (repo / "code.txt").write_text("v1\n")
    (repo / ".banger").mkdir()
    s = repo / ".banger/setup"
    s.write_text(setup)
    s.chmod(0o755)
    for path, text in (extra or {}).items():
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "prepared-qemu")
    try:
        yield e
    finally:
        e.teardown()


def log_path(stderr):
    m = re.search(r"its log is (\S+)", stderr)
    assert m, stderr
    return m.group(1)


def test_failing_setup_stops_with_its_exit_code_and_log(env):
    repo = make_repo(env.tmp / "home", "broken", setup="#!/bin/sh\necho about to fail\nexit 7\n")
    p = env.banger("vm", "run", *SIZES, "--rm", str(repo), "--", "echo", "command-ran", check=False)
    assert p.returncode == 7, p.stderr
    assert "command-ran" not in p.stdout
    assert "about to fail" in p.stderr  # streamed
    assert "exit code 7" in p.stderr, p.stderr
    log = log_path(p.stderr)
    assert log.startswith(str(env.state)), log
    text = open(log).read()
    assert "about to fail" in text and "exit status 7" in text, text


def test_no_setup_skips_it(env):
    repo = make_repo(env.tmp / "home", "skipped", setup="#!/bin/sh\necho should-not-run\nexit 9\n")
    p = env.banger("vm", "run", *SIZES, "--rm", "--no-setup", str(repo), "--", "cat", "code.txt")
    assert p.stdout == "v1\n"
    assert "should-not-run" not in p.stderr


def test_mise_files_without_mise_are_said_once(env):
    repo = make_repo(env.tmp / "home", "tools", setup="#!/bin/sh\necho plain-setup\n",
                     extra={".tool-versions": "nodejs 20.0.0\n", ".mise.toml": "[tools]\n"})
    p = env.banger("vm", "run", *SIZES, "--rm", str(repo), "--", "cat", "code.txt")
    assert p.stdout == "v1\n"
    assert p.stderr.count("has no mise") == 1, p.stderr
    assert "plain-setup" in p.stderr


def test_setup_runs_as_root_and_keeps_its_log_in_the_guest(env):
    repo = make_repo(env.tmp / "home", "logged", setup="#!/bin/sh\necho \"uid=$(id -u) in $(pwd)\"\n")
    p = env.banger("vm", "create", "--name", "logged", *SIZES, "--workspace", str(repo))
    assert "uid=0 in /root/logged" in p.stderr, p.stderr
    g = env.banger("vm", "exec", "logged", "--", "cat", "/var/log/banger-setup.log")
    assert "uid=0 in /root/logged" in g.stdout, g.stdout
    h = env.banger("vm", "workspace", "log", "logged")
    assert "uid=0 in /root/logged" in h.stdout and "exit status 0" in h.stdout, h.stdout
    env.banger("vm", "delete", "logged")
