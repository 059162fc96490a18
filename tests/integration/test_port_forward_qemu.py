"""Port forwarding on a real QEMU guest (TCG here: the agent's transport is
virtio-serial, so this is the path a VM with no usable network route takes
too): a busybox httpd in the guest serves a page and a file to curl on
127.0.0.1 in the test's namespace; the forward survives vm stop/start and a
daemon SIGKILL and re-attach; a taken host port is refused with nothing
made; a guest port nobody listens on resets the host connection at once;
deleting the VM closes the listener. Real CLI, daemon, helper and guest,
inside a network namespace this test creates; the tests share one VM."""
import hashlib
import os
import signal
import time

import pytest

from lifecycle import env_with_test_image, process_gone
from test_lifecycle_fc import wait_until
from test_port_forward_fc import PAGE, curl, listening, refused_while_taken, serve_page

pytestmark = pytest.mark.slow

NAME = "pfq"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "port-forward-qemu")
    try:
        # No NAT: the forward needs no route to the guest.
        e.banger("vm", "create", "--name", NAME, "--image", "test", "--vmm", "qemu", "--vcpu", "1", "--memory",
                 "256M", "--disk-size", "64M", "--no-nat", "-p", "18080:8000")
        e.vm_name = NAME
        yield e
    finally:
        e.teardown()


def test_page_through_the_agent(env):
    digest = serve_page(env, NAME)
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE
    big = curl(env, "http://127.0.0.1:18080/big", timeout=120).stdout
    assert len(big) == 3 << 20 and hashlib.sha256(big).hexdigest() == digest
    vm = env.json("vm", "show", NAME)
    assert [(f["host"], f["guest_port"], f["active"]) for f in vm["forwards"]] == [("127.0.0.1:18080", 8000, True)]


def test_guest_port_nobody_listens_on_resets_at_once(env):
    env.banger("vm", "port", "add", NAME, "18081:8001")
    assert listening(env, 18081)
    t0 = time.monotonic()
    p = curl(env, "http://127.0.0.1:18081/", check=False)
    assert p.returncode in (7, 52, 56) and time.monotonic() - t0 < 5, (p, time.monotonic() - t0)
    env.banger("vm", "port", "rm", NAME, "18081")
    assert not listening(env, 18081)


def test_taken_port_is_refused_with_nothing_made(env):
    refused_while_taken(env, 18082)
    assert [f["host_port"] for f in env.json("vm", "port", "list", NAME)["forwards"]] == [18080]


def test_survives_stop_and_start(env):
    env.banger("vm", "stop", NAME)
    assert not listening(env, 18080)
    env.banger("vm", "start", NAME)
    assert listening(env, 18080)
    serve_page(env, NAME)
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE


def test_survives_daemon_sigkill(env):
    st = env.json("daemon", "status")
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_until(lambda: process_gone(st["pid"]), 5)
    assert env.json("vm", "show", NAME)["state"] == "running"  # a new daemon re-attached
    assert curl(env, "http://127.0.0.1:18080/").stdout.decode() == PAGE


def test_delete_closes_the_listener(env):
    env.banger("vm", "delete", NAME)
    assert not listening(env, 18080)
