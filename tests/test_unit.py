"""Run every cmocka unit test, in the normal and the ASan+UBSan build."""
import json
import os
import pathlib
import subprocess

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
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    skip_code(p.returncode, out)
    assert p.returncode == 0, out[-6000:]
