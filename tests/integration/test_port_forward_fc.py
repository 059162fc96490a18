"""Port forwarding (vm create -p, vm port add|rm|list) on the Firecracker
path, cheaply: the FAKE Firecracker's guest emulation (tests/fakes/
fake-firecracker) runs the real banger-agent in its own network namespace,
so 127.0.0.1 in the "guest" is not the host's; the CLI, daemon, forwarder,
multiplexer and agent are real, inside a network namespace this test
creates. A busybox httpd started in the guest through `vm exec` serves the
page; the host side connects from the test's namespace. The QEMU test
(test_port_forward_qemu.py) does the same against a real guest kernel."""
import hashlib
import os
import signal
import subprocess
import time

import pytest

from lifecycle import AGENT, process_gone
from test_lifecycle_fc import fc_env, wait_until
from lifecycle import kernel_dir

pytestmark = pytest.mark.slow

NAME = "pf"
PAGE = "hello from the guest\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not AGENT.exists():
        pytest.fail(f"{AGENT} is not built")
    for e in fc_env(tmp_path_factory, "port-forward-fc", AGENT.resolve()):
        e.vm_name = NAME
        yield e


def serve_page(env, name=NAME, port=8000):
    """busybox httpd in the guest on 127.0.0.1:port, with a page and a 3 MiB
    file; returns the file's sha256."""
    script = ("mkdir -p /tmp/www && printf '%s' \"$1\" > /tmp/www/index.html && "
              "head -c 3145728 /dev/urandom > /tmp/www/big && sha256sum /tmp/www/big && "
              f"busybox httpd -p 127.0.0.1:{port} -h /tmp/www")
    p = env.banger("vm", "exec", name, "--", "sh", "-c", script, "sh", PAGE)
    return p.stdout.split()[0]


def curl(env, url, check=True, timeout=20):
    p = subprocess.run(["ip", "netns", "exec", env.ns, "curl", "-sS", "--max-time", str(timeout), url],
                       capture_output=True, timeout=timeout + 10)
    if check:
        assert p.returncode == 0, (url, p.returncode, p.stderr, env.daemon_log()[-3000:])
    return p


def refused_while_taken(env, port):
    """vm port add on a host port something else listens on: one clear line,
    exit 1, and the forward not recorded."""
    blocker = subprocess.Popen(["ip", "netns", "exec", env.ns, "python3", "-c",
                                "import socket, time; s = socket.socket(); "
                                f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(600)"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert blocker.stdout.readline().strip() == "up"
        p = env.banger("vm", "port", "add", env.vm_name, f"{port}:8000", check=False)
        assert p.returncode == 1 and "already in use" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    finally:
        blocker.kill()
        blocker.wait()
    assert port not in [f["host_port"] for f in env.json("vm", "port", "list", env.vm_name)["forwards"]]


def listening(env, port):
    """Whether a socket listens on 127.0.0.1:port in the test's namespace."""
    return f"127.0.0.1:{port} " in env.in_ns("ss", "-Hltn").stdout


def test_create_with_forward_serves_guest_page(env, tmp_path):
    k = kernel_dir(tmp_path, env.image_dir, env.manifest)
    env.json("kernel", "import", "testk", "--from", str(k))
    env.json("image", "register", "--name", "test", "--rootfs", str(env.image_dir / "rootfs.ext4"),
             "--kernel-ref", "testk")
    env.banger("vm", "create", "--name", NAME, "--image", "test", "--vmm", "firecracker", "--vcpu", "1",
               "--memory", "256M", "--disk-size", "64M", "-p", "18080:8000")
    digest = serve_page(env)
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE
    # Megabytes through the stream's credit windows, byte for byte.
    big = curl(env, "http://127.0.0.1:18080/big").stdout
    assert len(big) == 3 << 20 and hashlib.sha256(big).hexdigest() == digest
    # Shown where the user looks.
    vm = env.json("vm", "show", NAME)
    assert [(f["host"], f["guest_port"], f["active"]) for f in vm["forwards"]] == [("127.0.0.1:18080", 8000, True)]
    assert "127.0.0.1:18080 -> port 8000/tcp (listening)" in env.banger("vm", "show", NAME).stdout
    ports = env.json("vm", "ports", NAME)
    assert ports["forwards"][0]["host_port"] == 18080
    assert any(p["port"] == 8000 for p in ports["ports"])  # the httpd itself, from the agent


def test_guest_port_nobody_listens_on_closes_promptly(env):
    env.banger("vm", "port", "add", NAME, "18081:8001")
    assert listening(env, 18081)
    t0 = time.monotonic()
    p = curl(env, "http://127.0.0.1:18081/", check=False)
    assert p.returncode != 0 and time.monotonic() - t0 < 5, p
    # A reset, not an empty success and not a hang. The reset can come so
    # soon after the accept that curl sees it as a failed connect (7).
    assert p.returncode in (7, 52, 56), p.stderr


def test_refusals_are_clear_and_leave_nothing(env):
    refused_while_taken(env, 18082)
    assert not listening(env, 18082)
    # The same host port twice.
    p = env.banger("vm", "port", "add", NAME, "18080:9000", check=False)
    assert p.returncode == 1 and "already forwarded by vm pf" in p.stderr, p.stderr
    # udp, and malformed specs: usage errors before anything is asked.
    p = env.banger("vm", "port", "add", NAME, "5353:53/udp", check=False)
    assert p.returncode == 2 and "only tcp" in p.stderr, p.stderr
    p = env.banger("vm", "port", "add", NAME, "nope", check=False)
    assert p.returncode == 2 and "HOST_PORT:GUEST_PORT" in p.stderr, p.stderr
    # A create whose host port is taken makes nothing.
    p = env.banger("vm", "create", "--name", "pf2", "--image", "test", "--vmm", "firecracker", "--memory", "256M",
                   "--disk-size", "64M", "-p", "18080:80", check=False)
    assert p.returncode == 1 and "18080" in p.stderr, p.stderr
    assert "pf2" not in env.banger("vm", "list", "--names").stdout.split()
    assert [f["host_port"] for f in env.json("vm", "port", "list", NAME)["forwards"]] == [18080, 18081]


def test_forward_survives_stop_start(env):
    env.banger("vm", "stop", NAME)
    assert not listening(env, 18080)  # a stopped VM listens on nothing
    assert [f["active"] for f in env.json("vm", "port", "list", NAME)["forwards"]] == [False, False]
    env.banger("vm", "start", NAME)
    serve_page(env)
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE


def test_forward_survives_daemon_sigkill(env):
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(st["pid"]), 5)
    assert env.json("vm", "show", NAME)["state"] == "running"  # a new daemon re-attached
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE


def test_port_rm_and_delete_close_listeners(env):
    env.banger("vm", "port", "rm", NAME, "127.0.0.1:18081")
    assert not listening(env, 18081)
    p = env.banger("vm", "port", "rm", NAME, "18081", check=False)
    assert p.returncode == 1 and "no forward" in p.stderr, p.stderr
    assert listening(env, 18080)
    env.banger("vm", "delete", NAME)
    assert not listening(env, 18080)
