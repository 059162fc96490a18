"""A banger command on a real terminal, as a user runs it: a tmux pane (on a
tmux server of the test's own) running a script that runs banger in the
test's namespace with the test's environment, then prints `TAG-rc=N` (its
exit code) and sleeps, so the pane and what it shows stay. env: any of the
tests' environments (ns, env)."""
import contextlib
import re
import shutil
import subprocess
import time

import pytest

from lifecycle import BANGER

KEEP = ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "PATH")


class Pane:
    def __init__(self, server, session):
        self.server, self.session = server, session

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, check=check)

    def text(self):
        """What the pane shows, with the last 100 lines of its history."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-100", "-t", self.session).stdout

    def send(self, *keys):
        self.tmux("send-keys", "-t", self.session, *keys)

    def has(self, pattern, timeout=120):
        """Whether a line of the pane matches pattern within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text(), re.M):
                return True
            time.sleep(0.2)
        return False


@contextlib.contextmanager
def banger_pane(env, script, server, args, tag, width=120, height=40):
    """Run `banger ARGS` (a string, as a shell reads it) in a new pane of
    width x height, the script written at path script; the Pane while the
    block runs, the tmux server killed after it. Skips without tmux."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    envs = " ".join(f"{k}='{v}'" for k, v in env.env.items() if k in KEEP)
    script.write_text(f"#!/bin/bash\nip netns exec {env.ns} env {envs} TERM=xterm {BANGER} {args}\n"
                      f"echo {tag}-rc=$?\nsleep 600\n")
    script.chmod(0o755)
    pane = Pane(server, tag)
    pane.tmux("kill-server", check=False)
    pane.tmux("new-session", "-d", "-s", tag, "-x", str(width), "-y", str(height), str(script))
    try:
        yield pane
    finally:
        pane.tmux("kill-server", check=False)
