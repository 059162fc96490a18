"""banger ssh-config install / uninstall / show on the files alone, with a
temporary HOME: no daemon and no guest (test_ssh_config_qemu.py connects to a
real one). What is checked is what the user would find on disk: their own
bytes untouched, the block at the top, modes, and uninstall giving back the
file byte for byte."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from bangerlib import bash_complete, run_cli

BEGIN = "# BEGIN banger ssh-config"


@pytest.fixture
def home(build_dir, xdg):
    return pathlib.Path(xdg["HOME"])


def install(xdg, *args):
    return run_cli(xdg, *args, "ssh-config", "install", check=True)


def uninstall(xdg):
    return run_cli(xdg, "ssh-config", "uninstall", check=True)


def snapshot(path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_mode & 0o7777, st.st_ino, st.st_mtime_ns


def write(path, data, mode):
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def test_no_ssh_dir_created_then_removed(xdg, home):
    out = install(xdg).stdout
    ssh = home / ".ssh"
    assert "created" in out and "ssh root@NAME.vm" in out
    assert os.stat(ssh).st_mode & 0o7777 == 0o700
    assert os.stat(ssh / "config").st_mode & 0o7777 == 0o600
    assert os.stat(ssh / "banger.conf").st_mode & 0o7777 == 0o644
    text = (ssh / "config").read_text()
    assert text.startswith(BEGIN) and f'Include "{ssh}/banger.conf"' in text
    conf = (ssh / "banger.conf").read_text()
    state = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/ssh"
    assert "Host *.vm\n" in conf and f'IdentityFile "{state}/id_ed25519"' in conf
    assert f'UserKnownHostsFile "{state}/known_hosts"' in conf
    assert "ssh-proxy %h %p" in conf and "--system" not in conf
    out = uninstall(xdg).stdout
    assert "removed" in out
    assert not ssh.exists()


def test_existing_dir_without_config(xdg, home):
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh/known_hosts").write_text("x ssh-ed25519 AAAA\n")
    install(xdg)
    assert (home / ".ssh/config").exists()
    uninstall(xdg)
    assert sorted(os.listdir(home / ".ssh")) == ["known_hosts"]


@pytest.mark.parametrize("original", [
    b"Host gitbox\n    User git\n    Port 2222\n",
    b"Host gitbox\r\n    User git\r\n",            # CRLF
    b"# no final newline\nHost a\n    User b",     # no trailing newline
    b"",                                           # an empty file stays an empty file
], ids=["lf", "crlf", "no-final-newline", "empty"])
def test_existing_config_round_trip(xdg, home, original):
    cfg = home / ".ssh/config"
    write(cfg, original, 0o640)
    install(xdg)
    data = cfg.read_bytes()
    assert data.startswith(BEGIN.encode()) and data.endswith(original)
    block = data[:len(data) - len(original)]
    crlf = original.startswith(b"Host gitbox\r\n")
    assert block.count(b"\r\n") == (3 if crlf else 0) and block.count(b"\n") == 3
    assert os.stat(cfg).st_mode & 0o7777 == 0o640
    # A second install is a no-op: same bytes, same inode, not rewritten.
    before = snapshot(cfg), snapshot(home / ".ssh/banger.conf")
    out = install(xdg).stdout
    assert out.startswith("Nothing changed")
    assert (snapshot(cfg), snapshot(home / ".ssh/banger.conf")) == before
    uninstall(xdg)
    assert cfg.read_bytes() == original
    assert os.stat(cfg).st_mode & 0o7777 == 0o640
    assert not (home / ".ssh/banger.conf").exists()


def test_user_lines_added_around_the_block_survive(xdg, home):
    cfg = home / ".ssh/config"
    write(cfg, b"Host a\n    User b\n", 0o600)
    install(xdg)
    cfg.write_bytes(b"# added before\n" + cfg.read_bytes() + b"Host later\n    User c\n")
    uninstall(xdg)
    assert cfg.read_bytes() == b"# added before\nHost a\n    User b\nHost later\n    User c\n"


def test_created_file_with_user_lines_is_kept(xdg, home):
    install(xdg)
    cfg = home / ".ssh/config"
    cfg.write_bytes(cfg.read_bytes() + b"Host mine\n")
    uninstall(xdg)
    assert cfg.read_bytes() == b"Host mine\n"
    assert (home / ".ssh").is_dir()


def test_symlink_into_own_dotfiles_is_followed(xdg, home):
    dots = home / "dotfiles"
    dots.mkdir(mode=0o755)
    target = dots / "ssh_config"
    write(target, b"Host a\n    User b", 0o600)
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh/config").symlink_to("../dotfiles/ssh_config")
    out = install(xdg).stdout
    assert "-> ../dotfiles/ssh_config" in out
    assert (home / ".ssh/config").is_symlink()
    assert target.read_bytes().startswith(BEGIN.encode())
    assert not list(dots.glob(".#*"))  # no temp file left behind
    uninstall(xdg)
    assert (home / ".ssh/config").is_symlink() and target.read_bytes() == b"Host a\n    User b"


@pytest.mark.parametrize("case", ["shared-dir", "dangling", "chain", "other-owner", "loose-ssh-dir"])
def test_unsafe_targets_are_refused(xdg, home, tmp_path, case):
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    cfg = ssh / "config"
    if case == "shared-dir":
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o1777)
        write(shared / "config", b"Host a\n", 0o600)
        cfg.symlink_to(shared / "config")
        watched = shared / "config"
    elif case == "dangling":
        cfg.symlink_to(home / "nowhere")
        watched = None
    elif case == "chain":
        write(home / "real", b"Host a\n", 0o600)
        (home / "link").symlink_to(home / "real")
        cfg.symlink_to(home / "link")
        watched = home / "real"
    elif case == "other-owner":
        write(cfg, b"Host a\n", 0o644)
        os.chown(cfg, 65534, 65534)
        watched = cfg
    else:
        write(cfg, b"Host a\n", 0o600)
        os.chmod(ssh, 0o777)
        watched = cfg
    if os.geteuid() != 0 and case == "other-owner":
        pytest.skip("chown needs root")
    before = watched.read_bytes() if watched else None
    p = run_cli(xdg, "ssh-config", "install")
    assert p.returncode == 1, p.stdout
    assert p.stderr.startswith("banger ssh-config install: ") and str(cfg if case != "loose-ssh-dir" else ssh) \
        in p.stderr, p.stderr
    if watched:
        assert watched.read_bytes() == before
    assert not (ssh / "banger.conf").exists()


def test_edited_block_is_refused_and_left_alone(xdg, home):
    cfg = home / ".ssh/config"
    write(cfg, b"Host a\n", 0o600)
    install(xdg)
    edited = cfg.read_bytes().replace(b"# END banger", b"User x\n# END banger")
    cfg.write_bytes(edited)
    for verb in ("install", "uninstall"):
        p = run_cli(xdg, "ssh-config", verb)
        assert p.returncode == 1 and "was edited" in p.stderr, p.stderr
        assert cfg.read_bytes() == edited
    show = json.loads(run_cli(xdg, "ssh-config", "show", "--json", check=True).stdout)
    assert show["block"] == "edited" and show["block_problem"]


def test_foreign_banger_conf_is_refused(xdg, home):
    write(home / ".ssh/banger.conf", b"Host *\n", 0o644)
    p = run_cli(xdg, "ssh-config", "install")
    assert p.returncode == 1 and "was not written by banger" in p.stderr
    assert (home / ".ssh/banger.conf").read_bytes() == b"Host *\n"
    assert not (home / ".ssh/config").exists()


def test_show_and_system_mode(xdg, home):
    s = json.loads(run_cli(xdg, "ssh-config", "show", "--json", check=True).stdout)
    assert s["block"] == "absent" and s["file_state"] == "absent" and s["key_exists"] is False
    install(xdg, "--system")
    conf = (home / ".ssh/banger.conf").read_text()
    assert 'IdentityFile "/var/lib/banger/ssh/id_ed25519"' in conf
    assert "' --system ssh-proxy %h %p" in conf
    # The user-mode text differs: show says so, install rewrites banger.conf only.
    s = json.loads(run_cli(xdg, "ssh-config", "show", "--json", check=True).stdout)
    assert s["block"] == "installed" and s["file_state"] == "outdated"
    cfg = (home / ".ssh/config").read_bytes()
    out = install(xdg).stdout
    assert "updated" in out and (home / ".ssh/config").read_bytes() == cfg
    assert "--system" not in (home / ".ssh/banger.conf").read_text()


def test_openssh_reads_it(xdg, home):
    """ssh -G prints the configuration OpenSSH would use: *.vm gets banger's
    settings, other hosts keep the user's."""
    if not shutil.which("ssh"):
        pytest.skip("ssh is not installed (openssh-client)")
    write(home / ".ssh/config", b"Host gitbox\n    User git\n    Port 2222\n", 0o600)
    install(xdg)

    def effective(host):
        p = subprocess.run(["ssh", "-G", "-F", str(home / ".ssh/config"), host], capture_output=True, text=True,
                           env=xdg, check=True)
        return dict(l.split(" ", 1) for l in p.stdout.splitlines() if " " in l)

    vm = effective("web.vm")
    state = pathlib.Path(xdg["XDG_STATE_HOME"]) / "banger/ssh"
    assert vm["user"] == "root" and vm["identityfile"] == f"{state}/id_ed25519"
    assert vm["userknownhostsfile"] == f"{state}/known_hosts"
    assert vm["proxycommand"].endswith("ssh-proxy %h %p") and vm["stricthostkeychecking"] == "accept-new"
    other = effective("gitbox")
    assert other["user"] == "git" and other["port"] == "2222" and "proxycommand" not in other


@pytest.mark.parametrize("args,message", [
    (["ssh-proxy", "Bad_Name.vm", "22"], "is not a VM"),
    (["ssh-proxy", "web.vm", "0"], "invalid port '0'"),
    (["ssh-proxy", "web.vm", "65536"], "invalid port"),
    (["ssh-proxy", "web.vm"], "missing argument"),
    (["ssh-config", "install", "extra"], "unexpected argument 'extra'"),
    (["ssh-config", "frob"], "unknown command 'frob'"),
])
def test_usage_errors(xdg, build_dir, args, message):
    p = run_cli(xdg, *args)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_completions_know_the_verbs(xdg, build_dir, tmp_path):
    script = tmp_path / "banger.bash"
    script.write_text(run_cli(xdg, "completion", "bash", check=True).stdout)

    def complete(*words):
        return bash_complete(script, xdg, *words)

    assert {"ssh-config", "ssh-proxy"} <= complete("banger", "ss")
    assert complete("banger", "ssh-config", "") == {"install", "uninstall", "show"}
    for shell in ("zsh", "fish"):
        text = run_cli(xdg, "completion", shell, check=True).stdout
        assert "ssh-config" in text and "uninstall" in text
