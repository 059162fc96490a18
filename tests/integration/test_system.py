"""`banger system install|status|uninstall` into a temporary root (--root DIR),
asserting on the files, modes and owners it leaves, and the man page against
the CLI's own help. Runs as root (it chowns to nobody); nothing here touches
the host's /usr/local, /etc or /var, or talks to systemd."""
import json
import os
import pathlib
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess

import pytest

from bangerlib import BANGER, BANGERD, man_page_text, socket_path, stop_daemon, wait_for_socket
from conftest import BUILD, ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="system install needs root (chown to the owner)")

NOBODY = pwd.getpwnam("nobody")
UNITS = ("bangerd-root.service", "bangerd@.service", "bangerd@.socket")
BINARIES = {
    "usr/local/bin/banger": "src/cli/banger",
    "usr/local/bin/bangerd": "src/daemon/bangerd",
    "usr/local/libexec/banger/bangerd-root": "src/helper/bangerd-root",
    "usr/local/libexec/banger/banger-agent": "src/agent/banger-agent",
}
# path -> (type, mode, uid, gid); every file and directory the install makes.
ROOT_DIR = ("d", 0o755, 0, 0)
EXPECTED = {
    **{p: ("f", 0o755, 0, 0) for p in BINARIES},
    **{f"etc/systemd/system/{u}": ("f", 0o644, 0, 0) for u in UNITS},
    "usr/local/share/man/man1/banger.1": ("f", 0o644, 0, 0),
    "usr/local/share/doc/banger/README.md": ("f", 0o644, 0, 0),
    "etc/banger/owner": ("f", 0o644, 0, 0),
    "etc/banger": ROOT_DIR,
    "usr/local/libexec/banger": ROOT_DIR,
    "usr/local/share/doc/banger": ROOT_DIR,
    "var/lib/banger": ("d", 0o700, NOBODY.pw_uid, NOBODY.pw_gid),
    "var/cache/banger": ("d", 0o700, NOBODY.pw_uid, NOBODY.pw_gid),
    **{p: ROOT_DIR for p in ("etc", "etc/systemd", "etc/systemd/system", "usr", "usr/local", "usr/local/bin",
                             "usr/local/libexec", "usr/local/share", "usr/local/share/man",
                             "usr/local/share/man/man1", "usr/local/share/doc", "var", "var/lib", "var/cache")},
}


def banger(*args, check=False):
    p = subprocess.run([str(BANGER), *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"banger {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def install(root, owner="nobody", check=True):
    return banger("system", "install", "--owner", owner, "--root", str(root), check=check)


def tree(root):
    """Every path below root -> (type, mode, uid, gid, inode, mtime_ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = pathlib.Path(dirpath) / n
            st = p.lstat()
            kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "l"
            out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino,
                                             st.st_mtime_ns)
    return out


@pytest.fixture
def root(build_dir, tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    yield r
    shutil.rmtree(r, ignore_errors=True)


def test_install_layout_modes_and_owners(root):
    p = install(root)
    assert "Installed banger for nobody" in p.stdout
    got = {k: v[:4] for k, v in tree(root).items()}
    assert got == EXPECTED
    for dst, src in BINARIES.items():
        assert (root / dst).read_bytes() == (BUILD / src).read_bytes(), dst
    assert (root / "usr/local/share/man/man1/banger.1").read_bytes() == (ROOT / "docs/banger.1").read_bytes()
    assert (root / "etc/banger/owner").read_text() == f"{NOBODY.pw_uid}:{NOBODY.pw_gid}\n"
    assert "systemctl enable --now bangerd-root.service bangerd@nobody.service" in p.stdout


def test_units_have_absolute_install_paths(root):
    install(root)
    units = {u: (root / "etc/systemd/system" / u).read_text() for u in UNITS}
    for u, text in units.items():
        assert not re.search(r"@[a-z]+@", text), u  # every placeholder filled
        src = (ROOT / "units" / (u + ".in")).read_text()
        assert len(text.splitlines()) == len(src.splitlines())
    assert re.search(r"^ExecStart=/usr/local/libexec/banger/bangerd-root --system$", units["bangerd-root.service"], re.M)
    assert re.search(r"^ExecStart=/usr/local/bin/bangerd --system$", units["bangerd@.service"], re.M)
    assert re.search(r"^User=%i$", units["bangerd@.service"], re.M)
    assert re.search(r"^SocketUser=%i$", units["bangerd@.socket"], re.M)
    assert "Documentation=file:///usr/local/share/doc/banger/README.md" in units["bangerd-root.service"]
    # The paths the units name exist in the installed tree.
    for path in ("usr/local/libexec/banger/bangerd-root", "usr/local/bin/bangerd",
                 "usr/local/share/doc/banger/README.md"):
        assert (root / path).is_file()


def test_second_install_changes_nothing(root):
    install(root)
    before = tree(root)
    p = install(root)
    assert tree(root) == before  # same inodes and mtimes: nothing rewritten
    assert "Nothing changed" in p.stdout
    lines = [l for l in p.stdout.splitlines() if l.startswith("/") is False and root.as_posix() in l]
    assert lines and all(l.split()[0] == "unchanged" for l in lines), p.stdout
    j = json.loads(banger("--json", "system", "install", "--owner", "nobody", "--root", str(root), check=True).stdout)
    assert j["changed"] == 0 and {i["change"] for i in j["items"]} == {"unchanged"}


def test_install_repairs_drift(root):
    install(root)
    unit = root / "etc/systemd/system/bangerd@.service"
    good = unit.read_text()
    unit.write_text(good + "# local edit\n")
    os.chmod(root / "var/lib/banger", 0o755)
    os.chown(root / "etc/banger", NOBODY.pw_uid, 0)
    p = install(root)
    changes = dict(reversed(l.split(None, 1)) for l in p.stdout.splitlines() if str(root) in l)
    assert changes[str(unit)] == "updated"
    assert changes[f"{root}/var/lib/banger"] == "updated" and changes[f"{root}/etc/banger"] == "updated"
    assert changes[f"{root}/usr/local/bin/banger"] == "unchanged"
    assert unit.read_text() == good
    assert {k: v[:4] for k, v in tree(root).items()} == EXPECTED


def test_symlinked_directory_is_refused(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "etc/systemd").mkdir(parents=True)
    os.symlink(outside, root / "etc/systemd/system")
    p = install(root, check=False)
    assert p.returncode == 1
    assert f"{root}/etc/systemd/system is a symlink: refusing to follow it" in p.stderr
    assert list(outside.iterdir()) == []
    # Refused while preparing directories: no file was written anywhere.
    assert not [k for k, v in tree(root).items() if v[0] == "f"]


def test_symlinked_file_is_replaced_not_followed(root, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (root / "usr/local/bin").mkdir(parents=True)
    os.symlink(victim, root / "usr/local/bin/banger")
    os.symlink(victim, root / "usr/local/bin/bangerd")
    install(root)
    assert victim.read_text() == "keep me\n"
    assert stat.S_ISREG((root / "usr/local/bin/banger").lstat().st_mode)
    assert (root / "usr/local/bin/bangerd").read_bytes() == (BUILD / "src/daemon/bangerd").read_bytes()


def test_symlinked_owner_file_is_refused(root, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("0:0\n")
    (root / "etc/banger").mkdir(parents=True)
    os.symlink(victim, root / "etc/banger/owner")
    p = install(root, check=False)
    assert p.returncode == 1 and f"cannot read {root}/etc/banger/owner: it is a symlink" in p.stderr
    assert victim.read_text() == "0:0\n" and (root / "etc/banger/owner").is_symlink()


def test_owner_checks(root):
    p = install(root, owner="root", check=False)
    assert p.returncode == 1 and "owner cannot be root" in p.stderr
    p = install(root, owner="no-such-user-banger", check=False)
    assert p.returncode == 1 and "no such user 'no-such-user-banger'" in p.stderr
    assert list(root.iterdir()) == []
    install(root)
    other = pwd.getpwuid(1).pw_name  # daemon
    p = install(root, owner=other, check=False)
    assert p.returncode == 1 and f"already installed for uid {NOBODY.pw_uid} (nobody)" in p.stderr
    assert (root / "etc/banger/owner").read_text() == f"{NOBODY.pw_uid}:{NOBODY.pw_gid}\n"


def test_non_root_is_refused(build_dir, tmp_path):
    target = tmp_path / "nr"
    target.mkdir(mode=0o777)
    os.chmod(tmp_path, 0o755)
    for verb in (["install", "--owner", "nobody"], ["uninstall"]):
        p = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", str(BANGER),
                            "system", *verb, "--root", str(target)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert f"banger system {verb[0]}: must be run as root" in p.stderr
    assert list(target.iterdir()) == []


def test_usage_errors(build_dir):
    p = banger("system", "install")
    assert p.returncode == 2 and "--owner USER is required" in p.stderr
    p = banger("system", "uninstall", "--force")
    assert p.returncode == 2 and "--force only makes sense with --purge" in p.stderr
    assert banger("system", "frob").returncode == 2


def test_status(root):
    p = banger("system", "status", "--root", str(root))
    assert p.returncode == 1 and "FAIL banger\n" in p.stdout and "not installed" in p.stdout
    install(root)
    p = banger("--json", "system", "status", "--root", str(root))
    assert p.returncode == 0, p.stdout
    rows = {r["check"]: r for r in json.loads(p.stdout)}
    assert {r["status"] for r in rows.values()} == {"PASS"}, rows
    assert rows["bangerd"]["details"][0] == f"{root}/usr/local/bin/bangerd: " + \
        subprocess.run([str(BUILD / "src/daemon/bangerd"), "--version"], capture_output=True, text=True).stdout.strip()
    assert rows["owner"]["details"][0].endswith(f"uid {NOBODY.pw_uid} gid {NOBODY.pw_gid} (nobody)")
    assert rows["/var/lib/banger"]["details"][0].endswith(f"mode 0700, owner {NOBODY.pw_uid}:{NOBODY.pw_gid}")
    (root / "usr/local/libexec/banger/bangerd-root").unlink()
    (root / "etc/systemd/system/bangerd@.socket").write_text("[Socket]\n")
    p = banger("system", "status", "--root", str(root))
    assert p.returncode == 1
    assert re.search(r"^FAIL bangerd-root\n    .*/bangerd-root: not installed$", p.stdout, re.M)
    assert re.search(r"^WARN bangerd@\.socket\n    .*differs from this build", p.stdout, re.M)


def test_uninstall_keeps_data_and_purge_removes_it(root):
    install(root)
    data = root / "var/lib/banger/images"
    data.mkdir()
    (data / "disk.ext4").write_bytes(b"x" * 4096)
    for wants, link, target in (("multi-user.target.wants", "bangerd-root.service", "bangerd-root.service"),
                                ("sockets.target.wants", "bangerd@nobody.socket", "bangerd@.socket")):
        (root / "etc/systemd/system" / wants).mkdir()
        os.symlink(f"/etc/systemd/system/{target}", root / "etc/systemd/system" / wants / link)
    (root / "etc/systemd/system/multi-user.target.wants/other.service").write_text("")
    p = banger("system", "uninstall", "--root", str(root), check=True)
    assert "configuration and data are kept" in p.stdout
    left = {k for k, v in tree(root).items() if v[0] != "d"}
    assert left == {"etc/banger/owner", "var/lib/banger/images/disk.ext4",
                    "etc/systemd/system/multi-user.target.wants/other.service"}
    assert not (root / "usr/local/libexec/banger").exists()
    assert (root / "var/cache/banger").is_dir()
    p = banger("system", "uninstall", "--purge", "--root", str(root), check=True)
    for d in ("etc/banger", "var/lib/banger", "var/cache/banger"):
        assert not (root / d).exists(), d
        assert f"removed    {root}/{d}" in p.stdout
    assert (root / "etc/systemd/system/multi-user.target.wants/other.service").exists()


def make_db_with_running_vm(xdg, dest):
    """A real database: bangerd creates and migrates it; then one VM is
    recorded as running, as a crashed or still-running daemon leaves it."""
    d = subprocess.Popen(["unshare", "-n", str(BANGERD)], env=xdg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        wait_for_socket(socket_path(xdg), proc=d)
    finally:
        stop_daemon(d)
    db = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/banger.db"
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO kernels (id, name, kernel_path, created_at) VALUES ('aaaaaaaaaaaa', 'k', '/k', 1)")
        con.execute("INSERT INTO images (id, name, kernel_id, rootfs_path, created_at) "
                    "VALUES ('bbbbbbbbbbbb', 'i', 'aaaaaaaaaaaa', '/r', 1)")
        con.execute("INSERT INTO vms (id, name, image_id, state, vmm, vcpus, mem_mib, created_at, updated_at) "
                    "VALUES ('cccccccccccc', 'busy', 'bbbbbbbbbbbb', 'running', 'qemu', 1, 128, 1, 1)")
    con.close()
    shutil.copy(db, dest)


def test_purge_refused_while_vms_run(root, xdg):
    install(root)
    make_db_with_running_vm(xdg, root / "var/lib/banger/banger.db")
    p = banger("system", "uninstall", "--purge", "--root", str(root))
    assert p.returncode == 1
    assert "VM busy (cccccccccccc) is recorded as running" in p.stderr
    assert "1 VM is still recorded as running" in p.stderr
    # Refused before anything was removed.
    assert (root / "usr/local/bin/banger").exists() and (root / "var/lib/banger/banger.db").exists()
    banger("system", "uninstall", "--purge", "--force", "--root", str(root), check=True)
    assert not (root / "var/lib/banger").exists()


def test_purge_refused_over_a_mount(root):
    install(root)
    mnt = root / "var/lib/banger/mnt"
    mnt.mkdir()
    # A private mount namespace: the tmpfs never shows on the host.
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec",
                        f'mount -t tmpfs none "{mnt}"; touch "{mnt}/inside"; '
                        f'"{BANGER}" system uninstall --purge --root "{root}"'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{mnt} is a mount point below {root.resolve()}/var/lib/banger" in p.stderr
    assert (root / "var/lib/banger").is_dir() and (root / "usr/local/bin/banger").exists()


def test_systemd_analyze_verify_installed_units(root, tmp_path):
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    install(root)
    # verify needs ExecStart= to exist on this host: point it at the copies
    # installed under root (and only change that line). The instance is not
    # "nobody", for which systemd warns on principle.
    stage = tmp_path / "stage"
    stage.mkdir()
    for u in UNITS:
        text = (root / "etc/systemd/system" / u).read_text()
        new = re.sub(r"^ExecStart=(/\S+)", lambda m: f"ExecStart={root}{m.group(1)}", text, flags=re.M)
        assert sum(a != b for a, b in zip(text.splitlines(), new.splitlines())) == (0 if u.endswith("socket") else 1)
        (stage / u).write_text(new)
    user = pwd.getpwuid(1).pw_name
    os.symlink("bangerd@.service", stage / f"bangerd@{user}.service")
    os.symlink("bangerd@.socket", stage / f"bangerd@{user}.socket")
    p = subprocess.run([sa, "verify", "--man=no", str(stage / "bangerd-root.service"),
                        str(stage / f"bangerd@{user}.service"), str(stage / f"bangerd@{user}.socket")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


# ---- the man page documents the whole CLI -----------------------------------

def help_commands(*args):
    """Names in the 'Commands:' section of a help text: [[name, alias...]]."""
    p = banger(*args, "--help", check=True)
    out = p.stdout.split("\nCommands:\n", 1)
    if len(out) < 2:
        return []
    names = []
    for line in out[1].splitlines():
        if not line.startswith("  "):
            break
        names.append(re.match(r"[^\s,]+(?:, [^\s,]+)*", line.strip()).group(0).split(", "))
    return names


@pytest.fixture(scope="module")
def man_text():
    return man_page_text(ROOT / "docs/banger.1")


def test_man_page_documents_every_command_and_verb(build_dir, man_text):
    top = help_commands()
    assert {"vm", "image", "kernel", "daemon", "system", "doctor"} <= {n[0] for n in top}
    checked = 0
    for (cmd, *_) in top:
        assert f"banger {cmd}" in man_text, f"'banger {cmd}' is not in docs/banger.1"
        for names in help_commands(cmd):
            # "banger vm delete|rm ...": the verb and each alias in one heading.
            m = re.search(rf"banger {cmd} ((?:[a-z-]+\|)*{re.escape(names[0])}(?:\|[a-z-]+)*)\b", man_text)
            assert m, f"'banger {cmd} {names[0]}' is not in docs/banger.1"
            assert set(names) <= set(m.group(1).split("|")), f"aliases {names} of {cmd} missing in docs/banger.1"
            checked += 1
    assert checked >= 30


def test_man_page_sections(man_text):
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT", "FILES", "EXAMPLES"):
        assert f" {section} " in man_text, section
    for opt in ("--json", "--socket PATH", "--system", "--version", "XDG_RUNTIME_DIR", "BANGER_LOG_LEVEL",
                "/etc/banger/owner"):
        assert opt in man_text, opt
