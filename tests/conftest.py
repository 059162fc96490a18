"""Shared pytest fixtures: build locations and a private XDG tree per test."""
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("BANGER_BUILD_DIR", ROOT / "build"))


def skip_code(rc, out):
    """Exit code 77 means 'cannot run here'; the test printed why."""
    if rc == 77:
        pytest.skip((out or "").strip().splitlines()[-1] if out and out.strip() else "exit 77")


@pytest.fixture
def build_dir():
    if not (BUILD / "src/cli/banger").exists():
        pytest.fail(f"banger is not built in {BUILD}; run scripts/test.sh")
    return BUILD


@pytest.fixture
def xdg(tmp_path):
    """A fresh XDG tree; returns an env dict for the banger binaries."""
    short = pathlib.Path(tempfile.mkdtemp(prefix="bg-", dir="/tmp"))
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("XDG_") or k.startswith("BANGER_"):
            del env[k]
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    # Runtime paths must stay short (sun_path is 108 bytes).
    env["XDG_RUNTIME_DIR"] = str(short)
    os.makedirs(env["HOME"], exist_ok=True)
    yield env
    shutil.rmtree(short, ignore_errors=True)
