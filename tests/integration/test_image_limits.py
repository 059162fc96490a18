"""What an image archive can make banger write: archives this test crafts
(a valid image plus a huge member of zeros, members the manifest does not
name, named layers that add up to more than the cap) imported through the
real CLI and daemon, which runs with image_import_max = 64M. Each refusal
must come promptly with a clear error and leave nothing in the cache,
staging or image directories; members the manifest does not name must never
be written. What the daemon wrote is measured around each import from its
own /proc/PID/io (wchar: bytes handed to write(2) and friends), so a member
unpacked and removed again still counts."""
import gzip
import io
import json
import os
import subprocess
import tarfile
import time

import pytest

from lifecycle import Env, require_root
from test_oci_boot import make_tar, sha256
from test_registry_auth import MT_CONFIG, MT_MANIFEST, tiny_kernel

pytestmark = pytest.mark.slow

MIB = 1 << 20
CAP = 64 * MIB
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


class Zeros(io.RawIOBase):
    """size zero bytes, read in chunks: big members without big buffers."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def add_member(tar, name, data=None, size=None, link=None):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.mode = 1700000000, 0o644
    if link is not None:
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(ti)
    elif data is not None:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        ti.size = size
        tar.addfile(ti, Zeros(size))


def small_layer(text):
    return make_tar(lambda add: (add("etc", tarfile.DIRTYPE, 0o755),
                                 add("etc/hello", tarfile.REGTYPE, 0o644, text.encode())))


def zero_file_layer(size):
    """An uncompressed layer tar holding one file of size zero bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_member(tar, "big.bin", size=size)
    return buf.getvalue()


def image_config(layers):
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha256(l) for l in layers]}}).encode()


def write_oci_archive(path, layers, extra=()):
    """An OCI layout as a .tar.gz: one image whose layers are the given
    (uncompressed) tars, then the extra members: (name, size) of zeros."""
    blobs = {}

    def blob(data, mt):
        blobs[sha256(data)] = data
        return {"mediaType": mt, "digest": sha256(data), "size": len(data)}

    ls = [blob(l, MT_LAYER_TAR) for l in layers]
    cfg = blob(image_config(layers), MT_CONFIG)
    man = blob(json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg, "layers": ls}).encode(),
               MT_MANIFEST)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        add_member(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_member(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [man]}).encode())
        for d, data in blobs.items():
            add_member(tar, "blobs/sha256/" + d[7:], data)
        for name, size in extra:
            add_member(tar, name, size=size)


def write_docker_archive(path, layers, extra=()):
    """A `docker save` archive: layers as <id>/layer.tar, the second copy of
    a repeated layer as a symlink to the first (as docker writes it)."""
    cfg = image_config(layers)
    names, first = [], {}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for i, l in enumerate(layers):
            name = f"{i:064x}/layer.tar"
            if sha256(l) in first:
                add_member(tar, name, link=f"../{first[sha256(l)]}")
            else:
                add_member(tar, name, l)
                first[sha256(l)] = name
            names.append(name)
        add_member(tar, sha256(cfg)[7:] + ".json", cfg)
        for name, size in extra:
            add_member(tar, name, size=size)
        add_member(tar, "manifest.json", json.dumps([{"Config": sha256(cfg)[7:] + ".json",
                                                      "RepoTags": ["t/x:1"], "Layers": names}]).encode())


def daemon_pid(env):
    for pid in env.ns_pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "bangerd":
                    return pid
        except OSError:
            pass
    raise AssertionError("no bangerd in the namespace")


def written(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(next(l for l in f if l.startswith("wchar:")).split()[1])


def import_measured(env, source, name):
    """Run `image import`; return the process, the bytes bangerd wrote
    meanwhile and the seconds it took."""
    env.banger("image", "list")  # the daemon is up
    pid = daemon_pid(env)
    before, t0 = written(pid), time.monotonic()
    p = env.banger("image", "import", str(source), "--name", name, check=False)
    return p, written(pid) - before, time.monotonic() - t0


def assert_left_nothing(env, name):
    assert env.banger("image", "show", name, check=False).returncode != 0
    assert not (env.state / "images" / name).exists()
    staging = env.tmp / "cache/banger/oci/tmp"
    assert not staging.exists() or not list(staging.iterdir()), list(staging.iterdir())


def make_env(tmp, config):
    e = Env(tmp)
    e.write_config(config)
    e.setup()
    k = e.tmp / "vmlinux"
    tiny_kernel(k)
    e.json("kernel", "import", "tinyk", "--from", str(k))
    return e


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = None
    try:
        e = make_env(tmp_path_factory.mktemp("image-limits"), f'image_import_max = "{CAP // MIB}M"\n')
        yield e
    finally:
        if e:
            e.teardown()


def test_huge_member_refused_at_its_header(env):
    """The issue's archive, scaled to the cap: a valid image plus one member
    of zeros four times the cap (a few hundred KiB compressed)."""
    path = env.tmp / "huge.tar.gz"
    write_oci_archive(path, [small_layer("huge")], extra=[("zeros.bin", 4 * CAP)])
    assert path.stat().st_size < 2 * MIB
    p, wrote, took = import_measured(env, path, "huge")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "add up to more than 64 MiB" in p.stderr and "image_import_max" in p.stderr, p.stderr
    assert "zeros.bin" in p.stderr, p.stderr
    assert wrote < 4 * MIB, wrote
    assert took < 60, took
    assert_left_nothing(env, "huge")


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_members_the_manifest_does_not_name_are_not_unpacked(env, fmt):
    """Half the cap of zeros in members nothing names: the import succeeds
    and none of it is written. The docker archive repeats its layer through
    a symlink, which must resolve to the one copy."""
    path = env.tmp / f"unnamed-{fmt}.tar.gz"
    layer = small_layer(f"unnamed {fmt}")
    extra = [("junk/zeros.bin", CAP // 2), ("blobs/sha256/" + "0" * 64, MIB)]
    if fmt == "oci":
        write_oci_archive(path, [layer], extra)
    else:
        write_docker_archive(path, [layer, layer], extra)
    name = f"unnamed-{fmt}"
    p, wrote, _ = import_measured(env, path, name)
    assert p.returncode == 0, p.stdout + p.stderr
    assert wrote < 8 * MIB, wrote
    img = env.json("image", "show", name)
    out = subprocess.run(["debugfs", "-R", "cat /etc/hello", img["rootfs"]], capture_output=True, text=True)
    assert out.stdout == f"unnamed {fmt}", out
    staging = env.tmp / "cache/banger/oci/tmp"
    assert not list(staging.iterdir())
    env.banger("image", "delete", name)


def test_named_layers_over_the_cap_refused(env):
    """Two layers the manifest does name, 40 MiB each (uncompressed tars of
    zeros, compressed by the archive): refused at the second one's header,
    before anything is unpacked."""
    path = env.tmp / "over.tar.gz"
    write_oci_archive(path, [zero_file_layer(40 * MIB), zero_file_layer(40 * MIB + 4096)])
    p, wrote, took = import_measured(env, path, "over")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "add up to more than 64 MiB" in p.stderr, p.stderr
    assert wrote < 4 * MIB, wrote
    assert took < 60, took
    assert_left_nothing(env, "over")
