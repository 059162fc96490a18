"""Run every cmocka unit test, in the normal and the ASan+UBSan build."""
import json
import os
import pathlib
import signal
import subprocess
import tempfile

import pytest

from conftest import ROOT, skip_code


def meson_tests(build):
    build = pathlib.Path(build)
    if not (build / "build.ninja").exists():
        return []
    out = subprocess.run(["meson", "introspect", "--tests", str(build)], capture_output=True, text=True, check=True)
    return [(t["name"], t["cmd"]) for t in json.loads(out.stdout)]


CASES = []
for label, var in (("plain", "BANGER_BUILD_DIR"), ("asan", "BANGER_ASAN_BUILD_DIR")):
    d = os.environ.get(var, str(ROOT / ("build" if label == "plain" else "build-asan")))
    for name, cmd in meson_tests(d):
        CASES.append(pytest.param(cmd, id=f"{label}-{name}"))


@pytest.mark.parametrize("cmd", CASES)
def test_unit(cmd):
    # Output to a file, not a pipe, and the test in its own process group,
    # killed when the test ends: a process it forked and left behind (a
    # stuck child of a threaded test) can neither hold the run open nor
    # outlive it.
    with tempfile.TemporaryFile() as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=600)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        f.seek(0)
        out = f.read().decode(errors="replace")
    assert rc is not None, "timed out after 600 s\n" + out[-6000:]
    skip_code(rc, out)
    assert rc == 0, out[-6000:]
