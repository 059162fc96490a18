"""The fuzz targets: every corpus has a target (so the replayers of
tests/test_unit.py run it), every corpus replays through its libFuzzer
binary in the clang build, and scripts/fuzz.sh fuzzes and reports."""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import ROOT

CORPUS = ROOT / "tests/fuzz/corpus"
FUZZ_BUILD = pathlib.Path(os.environ.get("BANGER_FUZZ_BUILD_DIR", ROOT / "build-fuzz"))


def meson_targets():
    text = (ROOT / "tests/fuzz/meson.build").read_text()
    return sorted(re.findall(r"^\s*\['(fuzz-[a-z0-9-]+)',", text, re.M))


def corpora():
    return sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def fuzz_binary(target):
    exe = FUZZ_BUILD / "tests/fuzz" / target
    if not exe.exists():
        pytest.skip(f"no libFuzzer build in {FUZZ_BUILD} (scripts/test.sh makes one with clang)")
    return exe


def test_every_corpus_has_a_target():
    assert meson_targets() == corpora()
    for name in corpora():
        assert any((CORPUS / name).iterdir()), f"corpus {name} is empty"


@pytest.mark.parametrize("target", corpora())
def test_corpus_replays_under_libfuzzer(target, tmp_path):
    exe = fuzz_binary(target)
    inputs = sorted(str(p) for p in (CORPUS / target).iterdir() if p.is_file())
    p = subprocess.run([str(exe), f"-artifact_prefix={tmp_path}/"] + inputs, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert p.returncode == 0, p.stderr[-6000:]
    assert p.stderr.count("Running: ") == len(inputs), p.stderr[-3000:]


def test_fuzz_script_reports(tmp_path):
    fuzz_binary("fuzz-port-spec")
    env = dict(os.environ, BANGER_FUZZ_BUILD_DIR=str(FUZZ_BUILD), FUZZ_WORK=str(tmp_path))
    p = subprocess.run([str(ROOT / "scripts/fuzz.sh"), "3", "fuzz-port-spec"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith("fuzz-port-spec ")]
    assert len(lines) == 1, p.stdout
    name, seconds, execs, speed, cov, ft, corpus, new, crashes = lines[0].split()
    assert int(seconds) >= 3 and int(execs) > 0 and int(speed) > 0, lines[0]
    assert int(cov) > 0 and int(ft) > 0 and crashes == "0", lines[0]
    seeds = len(list((CORPUS / "fuzz-port-spec").iterdir()))
    assert int(corpus) == int(new) + seeds and int(new) >= 0, lines[0]
    assert re.search(r"^# \d{4}-\d\d-\d\d .* load average [0-9.]+ [0-9.]+ [0-9.]+", p.stdout, re.M), p.stdout
    # An unknown target is refused with its name.
    p = subprocess.run([str(ROOT / "scripts/fuzz.sh"), "1", "fuzz-nonesuch"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 2 and "fuzz-nonesuch" in p.stderr
