"""The shipped systemd units parse cleanly (`systemd-analyze verify`: no
errors, no warnings) and keep the properties banger relies on."""
import configparser
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BUILD

UNITS = ("bangerd-root.service", "bangerd@.service", "bangerd@.socket")


def unit_text(name):
    p = BUILD / "units" / name
    if not p.exists():
        pytest.fail(f"{p} was not generated; is units/ in the build?")
    return p.read_text()


def parse(name):
    # systemd allows repeated keys (DeviceAllow=); keep them all.
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read_string(unit_text(name))
    return cp


@pytest.fixture
def staged(tmp_path):
    """The generated units with ExecStart pointed at programs that exist here
    (the install paths do not), plus instances of the templates."""
    for name in UNITS:
        exe = str((BUILD / "src/helper/bangerd-root").resolve()) if "root" in name else "/bin/true"
        lines = [re.sub(r"^ExecStart=\S+", "ExecStart=" + exe, l) for l in unit_text(name).splitlines()]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    os.symlink("bangerd@.service", tmp_path / "bangerd@alice.service")
    os.symlink("bangerd@.socket", tmp_path / "bangerd@alice.socket")
    return tmp_path


def test_systemd_analyze_verify(staged):
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    p = subprocess.run([sa, "verify", "--man=no", str(staged / "bangerd-root.service"),
                        str(staged / "bangerd@alice.service"), str(staged / "bangerd@alice.socket")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", p.stderr


def test_staging_really_swaps_only_execstart(staged):
    for name in UNITS:
        orig = unit_text(name).splitlines()
        new = (staged / name).read_text().splitlines()
        diff = [(a, b) for a, b in zip(orig, new) if a != b]
        want = 0 if name.endswith(".socket") else 1
        assert len(orig) == len(new) and len(diff) == want, diff
        assert all(a.startswith("ExecStart=") for a, _ in diff)


def test_helper_unit_properties():
    s = parse("bangerd-root.service")["Service"]
    assert s["Type"] == "notify" and s["KillMode"] == "process"
    assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict" and s["PrivateTmp"] == "yes"
    assert s["RuntimeDirectory"] == "banger-root" and s["RuntimeDirectoryMode"] == "0711"
    assert set(s["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_CHOWN",
                                                       "CAP_DAC_OVERRIDE"}
    assert set(s["ReadWritePaths"].split()) == {"/var/lib/banger", "/run/banger-root"}
    assert s["ExecStart"].endswith("/bangerd-root --system")


def test_daemon_units_properties():
    s = parse("bangerd@.service")["Service"]
    assert s["User"] == "%i" and s["Type"] == "notify" and s["KillMode"] == "process"
    assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict"
    assert s["CapabilityBoundingSet"] == ""
    sock = parse("bangerd@.socket")["Socket"]
    assert sock["ListenStream"] == "/run/banger/bangerd.sock"
    assert sock["SocketMode"] == "0600" and sock["SocketUser"] == "%i"
