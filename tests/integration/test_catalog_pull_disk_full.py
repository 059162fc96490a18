"""Pulls onto a full disk, through the real CLI and daemon: bangerd runs in a
mount namespace of the test's own where its images/ directory (where a
pull's download and staging directory live) is a size-limited tmpfs, which
the test resizes between pulls and which goes with the namespace.

The bundles are made here from two small OCI images (on the tiny kernel):
"noisy" holds 24 MiB of random bytes (its bundle is as large), "puffy" 96
MiB of one byte repeated (a bundle of a few hundred KiB that unpacks to
about 100 MiB). They are offered by a file:// catalog.

A download that cannot fit (the catalog gives its size) and an unpacked
bundle that cannot (its manifest gives it) are refused before they are
written; a disk that fills during a download (a bundle URL with --sha256:
no size known) or during the unpack (a manifest that understates its
files) stops the pull with an error naming the disk. Each time
nothing is registered and nothing is left in images/ (no .pull-* staging
directory, no partial file); afterwards, with room, both pull."""
import hashlib
import io
import json
import os
import pathlib
import subprocess
import tarfile

import pytest

from bangerlib import BANGERD, socket_path, wait_for_socket
from lifecycle import require_root
from test_catalog_pull_qemu import sha256_file
from test_image_limits import daemon_pid, make_env, write_oci_archive, written, zero_file_layer
from test_oci_boot import make_tar

pytestmark = pytest.mark.slow

MIB = 1 << 20
RESERVE = 64 * MIB  # FREE_SPACE_RESERVE: what a pull always leaves free

# Mounts a tmpfs of argv[2] bytes on argv[1], then becomes bangerd: run in a
# private mount namespace, the mount is the daemon's alone.
LAUNCH = r'''
import os, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % sys.argv[2], "banger-test", sys.argv[1]],
               check=True)
os.execv(sys.argv[3], [sys.argv[3]])
'''


def noise_layer(size):
    """A layer of random bytes: its bundle is as large as its data."""
    return make_tar(lambda add: (add("etc", tarfile.DIRTYPE, 0o755),
                                 add("etc/noise", tarfile.REGTYPE, 0o644, os.urandom(size))))


def bundle_manifest(path):
    p = subprocess.run(["tar", "--zstd", "-xOf", str(path), "manifest.json"], capture_output=True, check=True)
    return json.loads(p.stdout)


def unpacked_bytes(manifest):
    return sum(f.get("data", f.get("size", 0)) for f in manifest["files"])


def catalog_env(top, layers):
    """An Env on the tiny kernel whose file:// catalog (top/pub) offers a
    bundle of an image made of each (name, OCI layer); none of them is here."""
    pub = top / "pub"
    pub.mkdir()
    e = make_env(top / "env", 'image_import_max = "2G"\n'
                 f'[[catalog]]\nurl = "file://{pub}/catalog.json"\ninsecure = true\n')
    e.pub = pub
    try:
        for name, layer in layers:
            archive = top / f"{name}.tar"
            write_oci_archive(archive, [layer])
            e.json("image", "import", str(archive), "--name", name)
            archive.unlink()
            e.banger("image", "bundle", name, "-o", str(pub / f"{name}.tar.zst"), "--version", "1")
            e.banger("image", "delete", name)
        e.banger("catalog", "build", str(pub), "-o", str(pub / "catalog.json"))
    except BaseException:
        e.teardown()
        raise
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = None
    try:
        e = catalog_env(tmp_path_factory.mktemp("catalog-disk-full"),
                        (("noisy", noise_layer(24 * MIB)), ("puffy", zero_file_layer(96 * MIB, byte=1))))
        e.daemon = None
        pub = e.pub
        e.sizes = {n: (os.path.getsize(pub / f"{n}.tar.zst"), unpacked_bytes(bundle_manifest(pub / f"{n}.tar.zst")))
                   for n in ("noisy", "puffy")}
        e.kernels = sorted(os.listdir(e.state / "kernels"))
        start_small_daemon(e, 256 * MIB)
        yield e
    finally:
        if e:
            e.teardown()  # kills bangerd: its mount namespace and the tmpfs go with it


def start_small_daemon(env, size):
    """bangerd in a private mount namespace with images/ on a tmpfs."""
    env.banger("daemon", "stop")
    images = env.state / "images"
    assert os.listdir(images) == [], os.listdir(images)
    log = open(env.tmp / "bangerd.out", "wb")
    env.daemon = subprocess.Popen(["ip", "netns", "exec", env.ns, "unshare", "--mount", "--propagation", "private",
                                   "/usr/bin/python3", "-c", LAUNCH, str(images), str(size), str(BANGERD)],
                                  env=env.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    wait_for_socket(socket_path(env.env), timeout=30, proc=env.daemon)
    assert daemon_pid(env) == env.daemon.pid
    env.images = pathlib.Path(f"/proc/{env.daemon.pid}/root") / str(images).lstrip("/")
    mounts = pathlib.Path(f"/proc/{env.daemon.pid}/mountinfo").read_text()
    assert any(l.split()[4] == str(images) and " - tmpfs " in l for l in mounts.splitlines()), mounts


def resize(env, size):
    """The tmpfs's size, as the daemon sees it (its own mount namespace)."""
    subprocess.run(["nsenter", "-t", str(env.daemon.pid), "-m", "mount", "-o", f"remount,size={size}",
                    str(env.state / "images")], check=True, capture_output=True)
    st = os.statvfs(env.images)
    return st.f_bavail * st.f_frsize


def pull(env, *args):
    """`image pull ARGS` from the daemon of this test (it must not be
    replaced by an autostarted one that sees no tmpfs); the process and the
    bytes bangerd wrote meanwhile."""
    assert env.daemon.poll() is None, "the test's bangerd exited"
    before = written(env.daemon.pid)
    p = env.banger("image", "pull", *args, check=False)
    assert env.daemon.poll() is None and daemon_pid(env) == env.daemon.pid
    return p, written(env.daemon.pid) - before


def assert_nothing_left(env, images=()):
    assert sorted(i["name"] for i in env.json("image", "list")["images"]) == sorted(images)
    assert sorted(os.listdir(env.images)) == sorted(images), "a pull left files in images/"
    assert sorted(os.listdir(env.state / "kernels")) == env.kernels


def one_sentence(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("banger: ")]
    assert lines, stderr
    return lines[-1]


def test_download_that_cannot_fit_is_refused_before_it_starts(env):
    size, _ = env.sizes["noisy"]
    free = resize(env, RESERVE + size // 2)
    assert free < RESERVE + size, free
    p, wrote = pull(env, "noisy")
    assert p.returncode == 1, p.stdout + p.stderr
    err = one_sentence(p.stderr)
    assert "not enough free space for the bundle's download on the disk of " + str(env.state / "images") in err, err
    assert wrote < 2 * MIB, wrote
    assert_nothing_left(env)


def test_disk_full_during_the_download(env):
    """No size is known for a bundle URL: the download runs until the disk is
    full, and the pull then says so and removes what it wrote."""
    size, _ = env.sizes["noisy"]
    free = resize(env, size // 2)
    assert free < size, free
    sha = sha256_file(env.pub / "noisy.tar.zst")
    p, wrote = pull(env, f"file://{env.pub}/noisy.tar.zst", "--sha256", sha)
    assert p.returncode == 1, p.stdout + p.stderr
    err = one_sentence(p.stderr)
    assert f"the disk of {env.state / 'images'} is full" in err and "free some space" in err, err
    assert wrote >= free - 2 * MIB, (wrote, free)  # the disk really filled
    assert_nothing_left(env)


def test_unpacked_bundle_that_cannot_fit_is_refused_before_unpacking(env):
    size, unpacked = env.sizes["puffy"]
    assert unpacked > 90 * MIB and size < 8 * MIB, env.sizes
    free = resize(env, RESERVE + size + unpacked // 2)
    assert RESERVE + size < free < RESERVE + size + unpacked, free
    p, wrote = pull(env, "puffy")
    assert p.returncode == 1, p.stdout + p.stderr
    err = one_sentence(p.stderr)
    assert "not enough free space for the unpacked bundle on the disk of " + str(env.state / "images") in err, err
    assert wrote < size + 4 * MIB, (wrote, size)  # the download, not the unpack
    assert_nothing_left(env)


def understated_bundle(path, size):
    """An image bundle whose manifest says its rootfs.ext4 of size random
    bytes takes nothing ("data": 0): the check before unpacking passes."""
    data = os.urandom(size)
    files = [{"path": "rootfs.ext4", "type": "file", "mode": 0o644, "size": size, "data": 0,
              "sha256": hashlib.sha256(data).hexdigest()}]
    manifest = json.dumps({"format": 1, "kind": "image", "name": "liar", "version": "1", "kernel": {"name": "tinyk"},
                           "files": files}).encode()
    raw = path.with_suffix(".tar")
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in (("manifest.json", manifest), ("rootfs.ext4", data)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(body), 0o644
            tar.addfile(ti, io.BytesIO(body))
    subprocess.run(["zstd", "-q", "-f", "--rm", str(raw), "-o", str(path)], check=True)


def test_disk_full_during_the_unpack(env):
    """A manifest that understates what its files take gets past the check:
    the unpack fills the disk, and the pull says so and removes it all."""
    bundle = env.tmp / "liar.tar.zst"
    understated_bundle(bundle, 96 * MIB)  # a local file: no download into images/
    free = resize(env, RESERVE + 8 * MIB)  # past the check (it needs 0), not the 96 MiB
    assert free < 96 * MIB, free
    p, _ = pull(env, str(bundle), "--sha256", sha256_file(bundle))
    bundle.unlink()
    assert p.returncode == 1, p.stdout + p.stderr
    err = one_sentence(p.stderr)
    assert f"the disk of {env.state / 'images'} is full" in err and "free some space" in err, err
    assert "unpack" in p.stderr, p.stderr  # it was the unpack that filled it
    assert_nothing_left(env)


def test_pulls_that_fit_work_afterwards(env):
    need = RESERVE + sum(s + u for s, u in env.sizes.values()) + 32 * MIB
    resize(env, need)
    for name in ("noisy", "puffy"):
        p, _ = pull(env, name)
        assert p.returncode == 0 and f"pulled image {name}" in p.stdout, p.stdout + p.stderr
        img = env.json("image", "show", name)
        assert img["managed"] is True and img["kernel"] == "tinyk", img
        [rootfs] = [f for f in bundle_manifest(env.pub / f"{name}.tar.zst")["files"] if f["path"] == "rootfs.ext4"]
        assert sha256_file(env.images / name / "rootfs.ext4") == rootfs["sha256"]
    assert_nothing_left(env, ["noisy", "puffy"])
