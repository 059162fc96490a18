"""scripts/run.sh, the README's first command, up to where it needs the
network: it must say what it does while it builds banger and name the file
that holds the build's output. A stub slirp4netns (first in PATH) that fails
at once stops it right after the build, before anything slow; the network
namespace it made is removed by its own exit trap."""
import os
import pathlib
import subprocess

import pytest

from conftest import BUILD, ROOT


def test_run_sh_says_it_builds_and_names_the_log(build_dir, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("scripts/run.sh runs as root")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "slirp4netns").write_text("#!/bin/sh\necho 'stub: no user-mode network here' >&2\nexit 1\n")
    (stub / "slirp4netns").chmod(0o755)
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BANGER_"))}
    env.update(PATH=f"{stub}:{os.environ['PATH']}", BANGER_BUILD_DIR=str(BUILD), BANGER_RUN_CACHE=str(cache))
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    p = subprocess.run(["bash", str(ROOT / "scripts/run.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p.stderr
    log = cache / "build.log"
    assert f"run.sh: building banger in {BUILD}" in p.stderr and f"output in {log}" in p.stderr, p.stderr
    assert "run.sh: banger is built" in p.stderr, p.stderr
    assert log.exists() and log.read_text().strip(), "the build's output is kept where run.sh said"
    assert "slirp4netns did not come up" in p.stderr, p.stderr
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not any(n.startswith("banger-run-") for n in after - before)
