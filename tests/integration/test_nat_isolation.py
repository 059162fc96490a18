"""What --nat off means on the wire: with one VM's NAT turned on (so the
host forwards), a VM without NAT reaches neither the uplink's side nor is
reached from it; the NAT VM goes out masqueraded and takes no new
connections from outside; VMs on the bridge reach each other and the host.

Everything runs in namespaces this module creates: the helper's (bridge,
nft table, uplink), one per "VM" (a veth whose other end is a port of the
bridge, as a TAP would be) and one behind the uplink. That outside namespace
routes the VM network back to the host, as a LAN router might: the worst
case, where unmasqueraded traffic would get its replies."""
import json
import secrets
import shutil
import subprocess
import sys

import pytest

from test_helper import helper, run  # noqa: F401  (fixture)

pytestmark = [pytest.mark.skipif(shutil.which("nft") is None, reason="nftables (nft) missing")]

PORT = 7070
SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode())
    c.close()
"""
CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.recv(64).decode())
except OSError as e:
    print("FAIL", e)
"""


class Net:
    def __init__(self, h):
        self.h, self.tag = h, secrets.token_hex(3)
        self.out, self.vms, self.servers = f"bgo-{self.tag}", {}, []

    def setup(self):
        ns = self.h.ns
        self.h.ok("bridge.ensure")
        run("ip", "netns", "add", self.out)
        run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", self.out, ns=ns)
        run("ip", "addr", "add", "198.18.0.1/30", "dev", "up0", ns=ns)
        run("ip", "link", "set", "up0", "up", ns=ns)
        run("ip", "route", "add", "default", "via", "198.18.0.2", ns=ns)
        run("ip", "addr", "add", "198.18.0.2/30", "dev", "up1", ns=self.out)
        run("ip", "link", "set", "up1", "up", ns=self.out)
        run("ip", "link", "set", "lo", "up", ns=self.out)
        run("ip", "route", "add", "172.16.0.0/24", "via", "198.18.0.1", ns=self.out)
        for name, addr, port in (("nat", "172.16.0.2", "bgtn1"), ("plain", "172.16.0.3", "bgtn2")):
            vns = f"bgv{name}-{self.tag}"
            run("ip", "netns", "add", vns)
            run("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", vns, ns=ns)
            run("ip", "link", "set", port, "master", "br-fc", "up", ns=ns)
            run("ip", "addr", "add", f"{addr}/24", "dev", "eth0", ns=vns)
            run("ip", "link", "set", "eth0", "up", ns=vns)
            run("ip", "link", "set", "lo", "up", ns=vns)
            run("ip", "route", "add", "default", "via", "172.16.0.1", ns=vns)
            self.vms[name] = (vns, addr, port)
        for where, addr in ((self.out, "198.18.0.2"), (self.vms["nat"][0], "172.16.0.2"),
                            (self.vms["plain"][0], "172.16.0.3"), (ns, "172.16.0.1")):
            p = subprocess.Popen(["ip", "netns", "exec", where, sys.executable, "-c", SERVER, addr, str(PORT)],
                                 stdout=subprocess.PIPE, text=True)
            self.servers.append(p)
            assert p.stdout.readline().strip() == "listening"

    def connect(self, ns, addr):
        """The address the server saw us as, or "FAIL ..."."""
        return run(sys.executable, "-c", CLIENT, addr, str(PORT), ns=ns).stdout.strip()

    def teardown(self):
        for p in self.servers:
            p.kill()
            p.wait()
        for vns, _, port in self.vms.values():
            run("ip", "link", "del", port, ns=self.h.ns, check=False)
            run("ip", "netns", "del", vns, check=False)
        run("ip", "link", "del", "up0", ns=self.h.ns, check=False)
        run("ip", "netns", "del", self.out, check=False)


@pytest.fixture
def net(helper):  # noqa: F811
    n = Net(helper)
    try:
        n.setup()
        yield n
    finally:
        n.teardown()


def test_vm_without_nat_has_no_way_out_and_none_in(net, helper):  # noqa: F811
    nat_ns, nat_ip, nat_port = net.vms["nat"]
    plain_ns, plain_ip, _ = net.vms["plain"]
    helper.ok("nat.apply", {"entries": [{"ip": nat_ip, "tap": nat_port}]})
    try:
        assert run("sysctl", "-n", "net.ipv4.ip_forward", ns=helper.ns).stdout.strip() == "1"
        # The NAT VM goes out, masqueraded behind the uplink's address.
        assert net.connect(nat_ns, "198.18.0.2") == "198.18.0.1"
        # The VM without NAT does not, although the host forwards and the
        # outside has a route back to it.
        assert net.connect(plain_ns, "198.18.0.2").startswith("FAIL"), "a VM without NAT reached the uplink"
        # Nothing outside opens a connection to either VM.
        assert net.connect(net.out, plain_ip).startswith("FAIL"), "the outside reached a VM without NAT"
        assert net.connect(net.out, nat_ip).startswith("FAIL"), "the outside opened a connection to a NAT VM"
        # VMs on the bridge reach each other and the host, NAT or not.
        assert net.connect(plain_ns, nat_ip) == plain_ip
        assert net.connect(nat_ns, plain_ip) == nat_ip
        assert net.connect(plain_ns, "172.16.0.1") == plain_ip
        table = json.loads(run("nft", "-j", "list", "table", "ip", "banger", ns=helper.ns).stdout)
        assert any("drop" in json.dumps(x.get("rule", {})) for x in table["nftables"]), table
    finally:
        helper.ok("nat.apply", {"entries": []})
    # The last NAT VM gone: no forwarding at all, as the namespace was found.
    assert run("sysctl", "-n", "net.ipv4.ip_forward", ns=helper.ns).stdout.strip() == "0"
    assert net.connect(nat_ns, "198.18.0.2").startswith("FAIL")
    assert net.connect(plain_ns, nat_ip) == plain_ip
