"""Plain OpenSSH to a real guest: 'banger ssh-config install' with a temporary
HOME, then the stock ssh client, given only that HOME's ~/.ssh/config (-F:
ssh reads the passwd entry's home, not $HOME), reaches NAME.vm through
'banger ssh-proxy'. One QEMU guest (TCG here), booted by this module in its
own network namespace; the steps run in order and share it."""
import os
import pathlib
import subprocess

import pytest

from lifecycle import env_with_test_image

pytestmark = pytest.mark.slow

USER_CONFIG = b"# my own settings\nHost gitbox\n    User git\n    Port 2222"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "ssh-config-qemu")
    e.home = pathlib.Path(e.env["HOME"])
    e.config = e.home / ".ssh/config"
    yield e
    e.teardown()


def ssh(env, *args, input=None, check=True):
    """The stock ssh client, inside the namespace, with the HOME's config."""
    p = subprocess.run(["ip", "netns", "exec", env.ns, "ssh", "-F", str(env.config), "-o", "BatchMode=yes", *args],
                       env=env.env, capture_output=True, input=input, timeout=180)
    if check and p.returncode != 0:
        raise AssertionError(f"ssh {args} exited {p.returncode}: {p.stderr.decode(errors='replace')}\n"
                             f"--- daemon log ---\n{env.daemon_log()[-3000:]}")
    return p


def known_host(env, host):
    p = subprocess.run(["ssh-keygen", "-F", host, "-f", str(env.state / "ssh/known_hosts")], capture_output=True)
    return p.returncode == 0


def test_boot_a_guest(env):
    env.banger("vm", "create", "--name", "sq", "--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory",
               "256M", "--disk-size", "128M")
    assert env.json("vm", "show", "sq")["state"] == "running"


def test_install_keeps_the_users_lines(env):
    env.config.parent.mkdir(mode=0o700)
    env.config.write_bytes(USER_CONFIG)
    os.chmod(env.config, 0o600)
    env.banger("ssh-config", "install")
    data = env.config.read_bytes()
    assert data.startswith(b"# BEGIN banger ssh-config") and data.endswith(USER_CONFIG)


def test_plain_ssh_reaches_the_guest(env):
    p = ssh(env, "root@sq.vm", "cat", "/etc/hostname")
    assert p.stdout.decode().strip() == "sq"
    # Trusted on first use under the name, in banger's own known_hosts.
    assert known_host(env, "sq.vm")
    # No user given: the block says root. The key is checked now, not added.
    assert ssh(env, "sq.vm", "true").returncode == 0


def test_bulk_data_both_ways(env):
    """The proxy relays each direction on its own: a megabyte up and back."""
    blob = os.urandom(1 << 20)
    ssh(env, "sq.vm", "cat > /tmp/blob", input=blob)
    assert ssh(env, "sq.vm", "cat /tmp/blob").stdout == blob


def test_second_install_is_a_no_op(env):
    before = env.config.read_bytes(), os.stat(env.config).st_ino
    p = env.banger("ssh-config", "install")
    assert p.stdout.startswith("Nothing changed")
    assert (env.config.read_bytes(), os.stat(env.config).st_ino) == before


def test_unknown_vm_fails_clearly(env):
    p = ssh(env, "root@nosuch.vm", "true", check=False)
    assert p.returncode == 255
    assert b"banger: " in p.stderr and b"nosuch" in p.stderr, p.stderr


def test_uninstall_restores_the_file(env):
    env.banger("ssh-config", "uninstall")
    assert env.config.read_bytes() == USER_CONFIG
    assert not (env.config.parent / "banger.conf").exists()


def test_delete_forgets_the_host_key(env):
    env.banger("vm", "delete", "sq")
    assert not known_host(env, "sq.vm")
