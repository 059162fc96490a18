"""Catalog pulls end to end: the test guest's image and kernel written as
bundles, listed in a catalog signed with Debian's real minisign tool, served
by a Python HTTP server (with Range support) inside the test's network
namespace, where bangerd runs too. A kernel and an image (which brings its
kernel) are pulled and a QEMU VM boots from them. A tampered bundle, a
catalog signed by another key, a missing signature and a bundle with a
"../" member are each refused with nothing registered and nothing left; a
transfer cut half way is resumed with a Range request; a pull cancelled
mid-transfer from a second client leaves nothing. With the default
image missing, vm create pulls it from the catalog instead of building it."""
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import time

import pytest

from lifecycle import BANGER, Env, build_test_image, kernel_dir, require_root

pytestmark = pytest.mark.slow

# Serves DIR on the namespace's 127.0.0.1. A file F with a flag file .F.cut
# next to it is cut half way once (its full Content-Length promised), with
# .F.slow it trickles at 80 KiB/s; Range requests get a 206. Every request is logged as "PATH RANGE".
SERVER = r'''
import http.server, os, sys, time
root, portfile, logfile = sys.argv[1:4]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        path = os.path.join(root, name)
        rng = self.headers.get("Range")
        with open(logfile, "a") as f:
            f.write("%s %s\n" % (self.path, rng or "-"))
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if rng:
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if os.path.exists(os.path.join(root, "." + name + ".slow")):
            for i in range(0, len(body), 16384):
                self.wfile.write(body[i:i + 16384])
                self.wfile.flush()
                time.sleep(0.2)
            return
        flag = os.path.join(root, "." + name + ".cut")
        if not rng and os.path.exists(flag):
            os.unlink(flag)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
'''


def minisign(*args):
    p = subprocess.run(["minisign", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def make_key(work, name):
    minisign("-G", "-W", "-f", "-p", str(work / f"{name}.pub"), "-s", str(work / f"{name}.key"))
    return (work / f"{name}.pub").read_text().splitlines()[1]


def sign(work, key, path):
    minisign("-S", "-s", str(work / f"{key}.key"), "-m", str(path), "-t", "banger test catalog")


def start_server(env, work, root):
    (work / "server.py").write_text(SERVER)
    port_file, env.http_log = work / "port", work / "http.log"
    env.http_log.write_text("")
    log = open(work / "server.err", "wb")
    proc = subprocess.Popen(["ip", "netns", "exec", env.ns, "/usr/bin/python3", str(work / "server.py"), str(root),
                             str(port_file), str(env.http_log)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    for _ in range(200):
        if port_file.exists():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("the HTTP server did not start: " + (work / "server.err").read_text())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    for tool in ("minisign", "zstd"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/deps.sh test installs it)")
    work = tmp_path_factory.mktemp("catalog-pull")
    e = Env(work / "env")
    e.setup()
    e.server = None
    try:
        e.work, e.pub = work, work / "pub"
        e.pub.mkdir()
        e.key = make_key(work, "good")
        make_key(work, "other")
        e.server, port = start_server(e, work, e.pub)
        e.url = f"http://127.0.0.1:{port}/catalog.json"
        e.write_config(f'default_image = "test"\n[[catalog]]\nurl = "{e.url}"\npublic_key = "{e.key}"\n')
        e.image_dir, e.manifest = build_test_image()
        e.banger("kernel", "import", "testk", "--from", str(kernel_dir(work, e.image_dir, e.manifest)))
        e.banger("image", "register", "--name", "test", "--rootfs", str(e.image_dir / "rootfs.ext4"),
                 "--kernel-ref", "testk")
        e.banger("image", "bundle", "test", "-o", str(e.pub / "test.tar.zst"), "--version", "1.0")
        e.banger("kernel", "bundle", "testk", "-o", str(e.pub / "testk.tar.zst"), "--version", "1.0")
        publish(e)
        # What the catalog offers is pulled back: nothing of it stays here.
        e.banger("image", "delete", "test")
        e.banger("kernel", "rm", "testk")
        yield e
    finally:
        if e.server:
            e.server.kill()
            e.server.wait()
        e.teardown()
        shutil.rmtree(work, ignore_errors=True)


def publish(env, key="good"):
    env.banger("catalog", "build", str(env.pub), "-o", str(env.pub / "catalog.json"))
    sign(env.work, key, env.pub / "catalog.json")


def state_names(env, sub):
    d = env.state / sub
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def assert_nothing_left(env, images, kernels):
    assert sorted(i["name"] for i in env.json("image", "list")["images"]) == images
    assert sorted(k["name"] for k in env.json("kernel", "list")["kernels"]) == kernels
    assert state_names(env, "images") == images, "a pull left files in images/"
    assert state_names(env, "kernels") == kernels, "a pull left files in kernels/"


def pull_fails(env, *args):
    p = env.banger(*args, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    return p.stderr


def test_list_available(env):
    res = env.json("image", "list", "--available")
    assert res["catalogs"] == [{"url": env.url, "ok": True, "verified": True}], res["catalogs"]
    [img] = res["images"]
    assert img["name"] == "test" and img["version"] == "1.0" and img["here"] is False
    assert img["kernel"]["name"] == "testk"
    assert img["url"] == env.url.replace("catalog.json", "test.tar.zst")
    assert img["sha256"] == sha256_file(env.pub / "test.tar.zst")
    out = env.banger("kernel", "list", "--available").stdout
    assert out.splitlines()[0].split() == ["NAME", "VERSION", "SIZE", "HERE", "SOURCE"], out
    assert out.splitlines()[1].split()[:2] == ["testk", "1.0"], out


def doctor_catalog_row(env):
    rows = json.loads(env.banger("doctor", "--json", check=False).stdout)
    [row] = [r for r in rows if r["check"] == "catalog"]
    return row["status"], " ".join(row["details"])


def test_doctor_checks_the_catalog(env):
    status, detail = doctor_catalog_row(env)
    assert status == "PASS" and "signature verified" in detail and env.url in detail, detail


def test_other_key_and_missing_signature_refused(env):
    sign(env.work, "other", env.pub / "catalog.json")
    err = pull_fails(env, "kernel", "pull", "testk")
    assert "does not verify" in err, err
    assert_nothing_left(env, [], [])
    (env.pub / "catalog.json.minisig").unlink()
    err = pull_fails(env, "image", "pull", "test")
    assert "is not signed" in err, err
    assert_nothing_left(env, [], [])
    res = env.json("image", "list", "--available")
    assert res["catalogs"][0]["ok"] is False and "is not signed" in res["catalogs"][0]["error"]
    status, detail = doctor_catalog_row(env)
    assert status == "FAIL" and "is not signed" in detail, detail
    sign(env.work, "good", env.pub / "catalog.json")


def test_tampered_bundle_refused(env):
    b = env.pub / "testk.tar.zst"
    good = b.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    b.write_bytes(bytes(bad))
    try:
        err = pull_fails(env, "kernel", "pull", "testk")
        assert "does not match the sha256" in err, err
    finally:
        b.write_bytes(good)
    assert_nothing_left(env, [], [])


def test_cancel_a_pull_mid_transfer(env):
    """operations cancel from a second client stops a pull in its download;
    nothing is registered or left, and the list is empty again."""
    slow = env.pub / ".testk.tar.zst.slow"
    slow.write_text("")
    cli = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "kernel", "pull", "testk"], env=env.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        op, ops = None, None
        for _ in range(600):
            ops = env.json("operations", "list")["operations"]
            op = next((o for o in ops if o["kind"] == "kernel.pull" and o["stage"] == "download" and o["bytes"] > 0),
                      None)
            if op:
                break
            time.sleep(0.1)
        assert op and op["target"] == "testk" and op["cancellable"] is True, ops
        assert op["bytes"] < op["total"], op
        env.banger("operations", "cancel", str(op["id"]))
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        slow.unlink(missing_ok=True)
    assert cli.returncode == 3 and "cancelled" in err, (cli.returncode, out, err)
    for _ in range(50):
        if env.json("operations", "list") == {"operations": []}:
            break
        time.sleep(0.1)
    assert env.json("operations", "list") == {"operations": []}
    assert_nothing_left(env, [], [])


def hostile_bundle(env, name):
    """A kernel bundle whose second member is ../evil (zstd by the tool)."""
    manifest = json.dumps({"format": 1, "kind": "kernel", "name": "evilk", "version": "1.0",
                           "kernel": {"name": "evilk"}, "files": []}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in (("manifest.json", manifest), ("../evil", b"outside")):
            ti = tarfile.TarInfo(member)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
    raw = env.work / "evil.tar"
    raw.write_bytes(buf.getvalue())
    subprocess.run(["zstd", "-q", "-f", str(raw), "-o", str(env.pub / name)], check=True)


def test_dotdot_bundle_refused(env):
    hostile_bundle(env, "evilk.tar.zst")
    cat = json.loads((env.pub / "catalog.json").read_text())
    cat["kernels"].append({"name": "evilk", "version": "1.0", "architecture": "x86_64", "description": "",
                           "url": "evilk.tar.zst", "size": (env.pub / "evilk.tar.zst").stat().st_size,
                           "sha256": sha256_file(env.pub / "evilk.tar.zst")})
    (env.pub / "catalog.json").write_text(json.dumps(cat))
    sign(env.work, "good", env.pub / "catalog.json")
    try:
        err = pull_fails(env, "kernel", "pull", "evilk")
        assert "unsafe path" in err, err
    finally:
        (env.pub / "evilk.tar.zst").unlink()
        publish(env)
    assert not (env.state / "evil").exists() and not (env.state / "images/evil").exists()
    assert_nothing_left(env, [], [])


def test_kernel_pull_resumes_a_cut_transfer(env):
    (env.pub / ".testk.tar.zst.cut").write_text("")
    env.http_log.write_text("")
    p = env.banger("kernel", "pull", "testk")
    assert "pulled kernel testk" in p.stdout, p.stdout
    assert "resume" in p.stderr, p.stderr
    log = env.http_log.read_text().splitlines()
    gets = [l for l in log if l.startswith("/testk.tar.zst ")]
    assert len(gets) == 2 and gets[0].endswith(" -") and gets[1].split()[1].startswith("bytes="), log
    k = env.json("kernel", "show", "testk")
    assert k["version"] == env.manifest["KERNEL_RELEASE"]
    assert_nothing_left(env, [], ["testk"])
    assert "already here" in pull_fails(env, "kernel", "pull", "testk")


def test_image_pull_brings_its_kernel_and_boots(env):
    env.banger("kernel", "rm", "testk")
    p = env.banger("image", "pull", "test:1.0")
    assert "pulled image test" in p.stdout, p.stdout + p.stderr
    img = env.json("image", "show", "test")
    assert img["managed"] is True and img["kernel"] == "testk", img
    assert sha256_file(img["rootfs"]) == sha256_file(env.image_dir / "rootfs.ext4")
    assert os.stat(img["rootfs"]).st_blocks < os.stat(img["rootfs"]).st_size // 512, "holes not kept"
    assert_nothing_left(env, ["test"], ["testk"])
    assert env.json("image", "list", "--available")["images"][0]["here"] is True
    env.banger("vm", "create", "--name", "pulled", "--image", "test", "--vmm", "qemu", "--vcpu", "1",
               "--memory", "256M", "--disk-size", "64M")
    vm = env.json("vm", "show", "pulled")
    assert vm["state"] == "running" and vm["ready"]["agent"] is True, vm
    p = env.banger("vm", "exec", "pulled", "--", "uname", "-r")
    assert p.stdout.strip() == env.manifest["KERNEL_RELEASE"]
    env.banger("vm", "delete", "pulled")


def test_pull_by_file_and_url_with_sha256(env):
    env.banger("image", "delete", "test")
    sha = sha256_file(env.pub / "test.tar.zst")
    err = pull_fails(env, "image", "pull", str(env.pub / "test.tar.zst"), "--sha256", "0" * 64)
    assert "does not match the sha256" in err, err
    assert_nothing_left(env, [], ["testk"])
    env.banger("image", "pull", str(env.pub / "test.tar.zst"), "--sha256", sha)
    env.banger("image", "delete", "test")
    env.banger("image", "pull", env.url.replace("catalog.json", "test.tar.zst"), "--sha256", sha)
    assert_nothing_left(env, ["test"], ["testk"])


def test_vm_create_pulls_the_missing_default_image(env):
    """default_image = "test": with no image of that name, vm create pulls it
    from the catalog (it does not build it with debootstrap) and says so."""
    env.banger("image", "delete", "test")
    p = env.banger("vm", "create", "--name", "dflt", "--no-start", "--vmm", "qemu", "--vcpu", "1", "--memory",
                   "256M", "--disk-size", "64M")
    assert "test does not exist yet: pulling it from a catalog" in p.stderr, p.stderr
    assert "debootstrap" not in p.stderr, p.stderr
    img = env.json("image", "show", "test")
    assert img["source"] == env.url.replace("catalog.json", "test.tar.zst"), img
    assert env.json("vm", "show", "dflt")["image"] == "test"
    env.banger("vm", "delete", "dflt")
    assert_nothing_left(env, ["test"], ["testk"])
