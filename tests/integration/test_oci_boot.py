"""OCI import end to end through the real product: an image this test builds
itself (busybox-static, busybox init, an /etc/inittab) as an OCI layout,
pushed with skopeo to Debian's docker-registry on the namespace's
127.0.0.1, imported by reference with `banger image import`, booted with
the QEMU driver (the test kernel's initramfs loads the NIC, console and
vsock drivers: the image has no modules) and driven through the agent the
importer installed. The same image also comes in as a `docker save`-style
archive and as the OCI layout directory itself, and a layout whose layer
bytes do not match their digest is refused without leaving anything."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest

from lifecycle import Env, build_test_image, kernel_dir, process_gone, require_root

pytestmark = pytest.mark.slow

TAG = "1"
REPO = "banger/busybox"
GIB = 1 << 30

INITTAB = """\
::sysinit:/etc/init.d/rcS
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
"""

# The initramfs moved a devtmpfs onto /dev already; the rest is ours.
RCS = """\
#!/bin/sh
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q "^devtmpfs /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
echo "oci-guest: sysinit done"
"""


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(fill):
    """An uncompressed layer tar; fill(add) adds the entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind, mode, data=b"", link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, 1700000000, 0, 0
            ti.linkname = link
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        fill(add)
    return buf.getvalue()


def busybox_root(add):
    """busybox with a link per applet (sbin/init among them), the init
    scripts, the mount points."""
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/init.d", "dev", "proc", "sys", "run",
              "var", "root"):
        add(d, tarfile.DIRTYPE, 0o700 if d == "root" else 0o755)
    add("tmp", tarfile.DIRTYPE, 0o1777)
    add("bin/busybox", tarfile.REGTYPE, 0o755, pathlib.Path("/bin/busybox").read_bytes())
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in sorted(set(applets)):
        if a.startswith(("bin/", "sbin/", "usr/")) and a != "bin/busybox":
            add(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    add("etc/inittab", tarfile.REGTYPE, 0o644, INITTAB.encode())
    add("etc/init.d/rcS", tarfile.REGTYPE, 0o755, RCS.encode())
    add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
    add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")


def write_blob(layout, data):
    digest = sha256(data)
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def build_layout(layout, raw):
    """An OCI image layout of one layer, written by hand: digests are sha256
    of the exact bytes; diff_ids are those of the uncompressed layer."""
    (layout / "blobs/sha256").mkdir(parents=True)
    layer = write_blob(layout, gzip.compress(raw, mtime=0))
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]}}
    cfg = write_blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(cfg, mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}
    man = write_blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [dict(man, mediaType="application/vnd.oci.image.manifest.v1+json",
                                annotations={"org.opencontainers.image.ref.name": TAG})]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layer["digest"], raw


def ns_python(env, code):
    return env.in_ns("/usr/bin/python3", "-c", code).stdout.strip()


def start_registry(env, work):
    """docker-registry inside the test's namespace, so 127.0.0.1 is the
    namespace's loopback, where the daemon (also in there) pulls from."""
    port = int(ns_python(env, "import socket;s=socket.socket();s.bind(('127.0.0.1',0));"
                              "print(s.getsockname()[1])"))
    cfg = work / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                   f"    rootdirectory: {work / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    log = open(work / "registry.log", "wb")
    proc = subprocess.Popen(["ip", "netns", "exec", env.ns, shutil.which("docker-registry"), "serve", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    # The registry gives no readiness signal: poll its port (10 s at most).
    ready = ns_python(env, "import socket,time\nfor _ in range(200):\n  try:\n"
                           f"    socket.create_connection(('127.0.0.1',{port}),1).close();print('up');break\n"
                           "  except OSError: time.sleep(0.05)\n")
    if ready != "up":
        proc.kill()
        proc.wait()
        raise AssertionError("docker-registry did not answer: " + (work / "registry.log").read_text())
    return proc, port


def skopeo(env, src, dst):
    p = env.in_ns("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", src, dst, check=False)
    assert p.returncode == 0, p.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/deps.sh test installs it)")
    work = tmp_path_factory.mktemp("oci-boot")
    e = Env(work / "env")
    e.setup()
    e.registry = None
    try:
        e.image_dir, e.manifest = build_test_image()
        e.layout = work / "layout"
        e.layer_raw = make_tar(busybox_root)
        e.layer_digest, _ = build_layout(e.layout, e.layer_raw)
        e.registry, port = start_registry(e, work)
        e.ref = f"127.0.0.1:{port}/{REPO}:{TAG}"
        skopeo(e, f"oci:{e.layout}:{TAG}", f"docker://{e.ref}")
        e.archive = work / "busybox-docker.tar"
        skopeo(e, f"oci:{e.layout}:{TAG}", f"docker-archive:{e.archive}:{REPO}:{TAG}")
        k = kernel_dir(work, e.image_dir, e.manifest)
        e.json("kernel", "import", "testk", "--from", str(k))
        e.work = work
        yield e
    finally:
        if e.registry:
            e.registry.kill()
            e.registry.wait()
        e.teardown()
        shutil.rmtree(work, ignore_errors=True)


def image_files(env):
    d = env.state / "images"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def check_managed_image(env, name):
    img = env.json("image", "show", name)
    assert img["managed"] is True and img["size"] >= GIB, img
    rootfs = pathlib.Path(img["rootfs"])
    assert rootfs.is_file() and rootfs.stat().st_size == img["size"]
    assert rootfs.parent == env.state / "images" / name
    return img


def delete_image(env, name, img):
    env.banger("image", "delete", name)
    assert env.banger("image", "show", name, check=False).returncode == 1
    assert not pathlib.Path(img["rootfs"]).exists()
    assert name not in image_files(env)


def test_registry_import_boots_with_the_agent(env):
    p = env.banger("image", "import", "--name", "ocireg", env.ref)
    assert "imported image ocireg" in p.stdout
    img = check_managed_image(env, "ocireg")
    assert img["kernel"] == "testk"
    env.banger("vm", "create", "--name", "oci1", "--image", "ocireg", "--vmm", "qemu", "--vcpu", "1",
               "--memory", "256M", "--disk-size", "64M")
    vm = env.json("vm", "show", "oci1")
    assert vm["state"] == "running" and vm["ready"]["agent"] is True, vm
    env.vm = vm
    # busybox init ran the image's own sysinit, then the importer's entry.
    log = env.banger("vm", "logs", "oci1").stdout
    assert "oci-guest: sysinit done" in log


def test_exec_output_and_exit_code(env):
    p = env.banger("vm", "exec", "oci1", "--", "busybox", "echo", "hello-from-oci")
    assert p.stdout == "hello-from-oci\n"
    p = env.banger("vm", "exec", "oci1", "--", "busybox", "sh", "-c", "echo err >&2; exit 7", check=False)
    assert p.returncode == 7 and "err" in p.stderr
    # The kernel is the test kernel; its modules came from the initramfs.
    assert env.banger("vm", "exec", "oci1", "--", "uname", "-r").stdout.strip() == env.manifest["KERNEL_RELEASE"]


def test_agent_configured_the_network(env):
    """--setup-network applied /etc/banger/network.conf: address, hostname,
    and the guest answers on the bridge."""
    addr = env.banger("vm", "exec", "oci1", "--", "ip", "-4", "addr", "show", "eth0").stdout
    assert f"inet {env.vm['ip']}/" in addr, addr
    assert env.banger("vm", "exec", "oci1", "--", "hostname").stdout.strip() == "oci1"
    # From the namespace to the guest over the bridge (Debian ships no ping
    # by default; busybox-static is a test dependency already).
    p = env.in_ns("/bin/busybox", "ping", "-c", "1", "-W", "5", env.vm["ip"], check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_delete_vm_and_registry_image(env):
    env.banger("vm", "delete", "oci1")
    assert env.banger("vm", "show", "oci1", check=False).returncode == 1
    assert process_gone(env.vm["pid"])
    # The pulled blobs stay cached while an image came from them...
    kept = env.json("image", "cache", "prune", "--dry-run")
    assert kept["dry_run"] is True and kept["blobs"] == 0 and kept["kept"] >= 2
    img = env.json("image", "show", "ocireg")
    delete_image(env, "ocireg", img)
    # ...and go once it is deleted (config, layer and manifest blobs).
    dry = env.json("image", "cache", "prune", "--dry-run")
    assert dry["blobs"] >= 2 and all(b["digest"].startswith("sha256:") for b in dry["removed"])
    blobs_dir = env.tmp / "cache/banger/oci"
    before = sorted(p.name for p in blobs_dir.rglob("*") if p.is_file())
    assert before  # dry run removed nothing
    done = env.json("image", "cache", "prune")
    assert done["blobs"] == dry["blobs"] and done["bytes"] == dry["bytes"]
    assert env.json("image", "cache", "prune", "--dry-run")["blobs"] == 0


@pytest.mark.parametrize("kind", ["docker-archive", "oci-layout"])
def test_local_sources(env, kind):
    source = env.archive if kind == "docker-archive" else env.layout
    name = "oci-" + kind.split("-")[0]
    out = env.json("image", "import", "--name", name, str(source))
    assert out["name"] == name and out["source"] == str(source)
    img = check_managed_image(env, name)
    # The agent's inittab entry is in the image (read without mounting).
    p = subprocess.run(["debugfs", "-R", "cat /etc/inittab", img["rootfs"]], capture_output=True, text=True)
    assert "::respawn:/usr/local/bin/banger-agent --setup-network --serve" in p.stdout
    assert p.stdout.startswith(INITTAB)
    delete_image(env, name, img)


def test_digest_mismatch_leaves_nothing(env):
    """The layer blob swapped for other bytes (a valid gzip of the same tar)
    under the old digest: refused (by its size, which no longer matches the
    descriptor's, before its digest is computed), no image, no file."""
    bad = env.work / "bad-layout"
    shutil.copytree(env.layout, bad)
    blob = bad / "blobs/sha256" / env.layer_digest[7:]
    blob.write_bytes(gzip.compress(env.layer_raw, compresslevel=1, mtime=1))
    assert sha256(blob.read_bytes()) != env.layer_digest
    before = image_files(env)
    p = env.banger("image", "import", "--name", "ocibad", str(bad), check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "bytes, the manifest says" in p.stderr, p.stderr
    assert "ocibad" not in env.banger("image", "list").stdout
    assert env.banger("image", "show", "ocibad", check=False).returncode == 1
    assert image_files(env) == before and "ocibad" not in before
    assert not list((env.state / "images").rglob("*ocibad*"))


def hardlinked_busybox(add):
    add("bin", tarfile.DIRTYPE, 0o755)
    add("sbin", tarfile.DIRTYPE, 0o755)
    add("etc", tarfile.DIRTYPE, 0o755)
    add("bin/busybox", tarfile.REGTYPE, 0o755, b"\x7fELF not really busybox\n")
    add("sbin/init", tarfile.LNKTYPE, 0o755, link="bin/busybox")
    add("etc/inittab", tarfile.REGTYPE, 0o644, b"::sysinit:/etc/init.d/rcS")  # no final newline


def sysvinit(add):
    add("sbin", tarfile.DIRTYPE, 0o755)
    add("etc", tarfile.DIRTYPE, 0o755)
    add("sbin/init", tarfile.REGTYPE, 0o755, b"\x7fELF not really sysvinit\n")
    add("etc/inittab", tarfile.REGTYPE, 0o644, b"id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n")


@pytest.mark.parametrize("fill,want", [
    (hardlinked_busybox, "::sysinit:/etc/init.d/rcS\n::respawn:/usr/local/bin/banger-agent --setup-network --serve\n"),
    (sysvinit, "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n"
               "bngr:2345:respawn:/usr/local/bin/banger-agent --setup-network --serve\n"),
], ids=["busybox-hardlink", "sysvinit"])
def test_inittab_entry_fits_the_init(env, fill, want):
    """busybox init reads no id/runlevel fields (it would open the id as a
    tty); sysvinit needs them."""
    name = "init-" + fill.__name__.replace("_", "-")
    layout = env.work / name
    build_layout(layout, make_tar(fill))
    img = env.json("image", "import", "--name", name, str(layout))
    p = subprocess.run(["debugfs", "-R", "cat /etc/inittab", img["rootfs"]], capture_output=True, text=True)
    assert p.stdout == want
    delete_image(env, name, img)
