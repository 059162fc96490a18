"""What an image archive or a registry can make banger write, through the
real CLI and daemon, which runs with image_import_max = 64M.

Archives this test crafts: a valid image plus a huge member of zeros,
members the manifest does not name, named layers that add up to more than
the cap, layers whose files add up to more, a file of zeros (which must end
up as holes, not written blocks). A registry this test serves in its own
network namespace (the fake one of test_registry_auth.py) lies about its
blobs: descriptors without a size or with a zero or negative one, a config
larger than a JSON document may be, a blob larger than the cap, an endless
config blob, a blob longer than its descriptor. And a daemon whose state and
cache live on a 96 MiB tmpfs must refuse, before writing them, layers or
files that would not leave its reserve free.

Each refusal must come promptly with a clear error and leave nothing in the
cache, staging or image directories; what nothing names must never be
written. What the daemon wrote is measured around each import from its own
/proc/PID/io (wchar: bytes handed to write(2) and friends), so a file
written and removed again still counts."""
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
from test_registry_auth import MT_CONFIG, MT_INDEX, MT_LAYER, MT_MANIFEST, Registry, tiny_kernel

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


def zero_file_layer(size, byte=0):
    """An uncompressed layer tar holding one file of size bytes (zeros, or
    the given byte: compressible, but no holes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if byte:
            add_member(tar, "big.bin", bytes([byte]) * size)
        else:
            add_member(tar, "big.bin", size=size)
    return buf.getvalue()


def image_config(layers):
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha256(l) for l in layers]}}).encode()


def write_oci_archive(path, layers, extra=(), gz=False):
    """An OCI layout as a .tar.gz: one image whose layers are the given
    (uncompressed) tars, stored as they are or gzipped, then the extra
    members: (name, size) of zeros."""
    blobs = {}

    def blob(data, mt):
        blobs[sha256(data)] = data
        return {"mediaType": mt, "digest": sha256(data), "size": len(data)}

    ls = [blob(gzip.compress(l, 1, mtime=0), MT_LAYER) if gz else blob(l, MT_LAYER_TAR) for l in layers]
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


def test_zero_blocks_become_holes(env):
    """A layer holding a 48 MiB file of zeros (a few KiB gzipped): imported,
    and neither the spool nor the image gets a block of it written."""
    path = env.tmp / "holes.tar.gz"
    write_oci_archive(path, [small_layer("holes"), zero_file_layer(48 * MIB)], gz=True)
    p, wrote, _ = import_measured(env, path, "holes")
    assert p.returncode == 0, p.stdout + p.stderr
    assert wrote < 8 * MIB, wrote
    img = env.json("image", "show", "holes")
    out = subprocess.run(["debugfs", "-R", "stat /big.bin", img["rootfs"]], capture_output=True, text=True)
    assert "Size: 50331648" in out.stdout, out.stdout
    env.banger("image", "delete", "holes")


def test_files_over_the_cap_refused(env):
    """A 100 KiB layer whose file unpacks to 100 MiB (zeros: no disk
    either way): refused when the image's files pass the cap."""
    path = env.tmp / "bomb.tar.gz"
    write_oci_archive(path, [zero_file_layer(100 * MIB)], gz=True)
    assert path.stat().st_size < MIB
    p, wrote, took = import_measured(env, path, "bomb")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "files of the image add up to more than 64 MiB" in p.stderr, p.stderr
    assert wrote < 4 * MIB and took < 60, (wrote, took)
    assert_left_nothing(env, "bomb")


# ---- a registry that lies ----

ENDLESS = 256 * MIB  # what "endless" sends before it gives up
DROP = object()


def registry_image(config=None, layer=None, entry=None):
    """A one-layer image under tag 1, its descriptors changed by the given
    dicts (a value DROP removes the field); with entry, tag 1 is an index
    whose one entry is changed so."""
    raw = small_layer("lying registry")
    lz, cfg = gzip.compress(raw, mtime=0), image_config([raw])
    descs = [dict({"mediaType": MT_CONFIG, "digest": sha256(cfg), "size": len(cfg)}, **(config or {})),
             dict({"mediaType": MT_LAYER, "digest": sha256(lz), "size": len(lz)}, **(layer or {}))]
    descs = [{k: v for k, v in d.items() if v is not DROP} for d in descs]
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": descs[0],
                      "layers": [descs[1]]}).encode()
    manifests = {"1": man, sha256(man): man}
    if entry is not None:
        e = dict({"mediaType": MT_MANIFEST, "digest": sha256(man), "size": len(man),
                  "platform": {"os": "linux", "architecture": "amd64"}}, **entry)
        e = {k: v for k, v in e.items() if v is not DROP}
        manifests["1"] = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [e]}).encode()
    return {sha256(cfg): cfg, sha256(lz): lz}, manifests, {"config": sha256(cfg), "layer": sha256(lz)}


def endless(which, content_length=None):
    """A blob hook answering the blobs named in which (a set the test fills
    once the digests are known) with zeros until the client hangs up, or
    ENDLESS bytes; with content_length, that length is announced."""
    def hook(h, digest):
        if digest not in which:
            return False
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header(*(("Content-Length", str(content_length)) if content_length else ("Connection", "close")))
        h.end_headers()
        h.close_connection = True
        chunk = bytes(1 << 16)
        try:
            for _ in range(ENDLESS // len(chunk)):
                h.wfile.write(chunk)
        except OSError:
            pass
        return True
    return hook


def pull(env, name, image, endless_blobs=(), content_length=None):
    """Import image from a fresh fake registry, its named blobs endless.
    Returns the process, bytes written, seconds, and the blob paths asked for."""
    which = set()
    reg = Registry(env.ns, "evil/" + name, image, blob_hook=endless(which, content_length))
    which.update(image[2][b] for b in endless_blobs)
    cache = env.tmp / "cache/banger/oci/blobs/sha256"
    before = set(os.listdir(cache)) if cache.exists() else set()
    try:
        p, wrote, took = import_measured(env, reg.ref(), name)
    finally:
        reg.close()
    assert (set(os.listdir(cache)) if cache.exists() else set()) == before
    assert_left_nothing(env, name)
    return p, wrote, took, [r["path"] for r in reg.log if "/blobs/" in r["path"]]


@pytest.mark.parametrize("case,config,layer,needle", [
    ("nosize", {"size": DROP}, None, "image config descriptor sha256:"),
    ("zerosize", {"size": 0}, None, "has an invalid size (a positive integer is required)"),
    ("negsize", None, {"size": -5}, "has an invalid size (a positive integer is required)"),
    ("hugeconfig", {"size": 1 << 30}, None, "more than the 4194304 a JSON document may have"),
    ("hugelayer", None, {"size": 1 << 40}, "add up to more than 64 MiB; image_import_max"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_descriptor_sizes_checked_before_download(env, case, config, layer, needle):
    """Whatever the sizes say, the config and the layer are endless: each
    of these must be refused before a blob is asked for. (A negative size
    was refused before these limits too; the others downloaded until the
    registry stopped.)"""
    p, wrote, took, fetched = pull(env, case, registry_image(config, layer), ("config", "layer"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert needle in p.stderr, p.stderr
    if case == "nosize":
        assert "has no size" in p.stderr, p.stderr
    assert fetched == [], fetched
    assert wrote < MIB and took < 60, (wrote, took)


def test_index_entry_without_size_refused(env):
    p, wrote, _, fetched = pull(env, "noidxsize", registry_image(entry={"size": DROP}), ("config", "layer"))
    assert p.returncode == 1 and "image index entry sha256:" in p.stderr and "has no size" in p.stderr, p.stderr
    assert fetched == [] and wrote < MIB


@pytest.mark.parametrize("announced", [False, True], ids=["streamed", "content-length"])
def test_blob_longer_than_its_descriptor_stops_at_its_size(env, announced):
    """The config's descriptor is right, the registry sends it forever (or
    announces 256 MiB): reading stops at the descriptor's size (or before
    the first byte), nothing is kept."""
    image = registry_image()
    p, wrote, took, fetched = pull(env, "long" + ("cl" if announced else ""), image, ("config",),
                                   ENDLESS if announced else None)
    assert p.returncode == 1, p.stdout + p.stderr
    size = len(image[0][image[2]["config"]])
    assert f"longer than the {size} bytes its descriptor says" in p.stderr, p.stderr
    assert fetched == [f"/v2/evil/long{'cl' if announced else ''}/blobs/{image[2]['config']}"], fetched
    assert wrote < MIB and took < 60, (wrote, took)


# ---- free space ----

@pytest.fixture(scope="module")
def small_env(tmp_path_factory):
    """A daemon whose state and cache are on a 96 MiB tmpfs: 64 MiB of it is
    the reserve an import leaves, about 30 MiB is what it may use."""
    require_root()
    top = tmp_path_factory.mktemp("image-limits-small")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs", str(top)], check=True)
    e = None
    try:
        e = make_env(top, "")
        yield e
    finally:
        if e:
            e.teardown()
        subprocess.run(["umount", str(top)], check=True)


def refused_for_space(env, name, layer, gz, needle, most):
    path = env.tmp / f"{name}.tar.gz"
    write_oci_archive(path, [layer], gz=gz)
    try:
        p, wrote, took = import_measured(env, path, name)
    finally:
        path.unlink()
    assert p.returncode == 1, p.stdout + p.stderr
    assert needle in p.stderr, p.stderr
    assert wrote < most and took < 60, (wrote, took)
    assert_left_nothing(env, name)


def test_layers_that_do_not_fit_are_not_unpacked(small_env):
    """A 40 MiB named layer (a small .tar.gz): refused before unpacking."""
    refused_for_space(small_env, "bigstage", zero_file_layer(40 * MIB, byte=1), False,
                      "not enough free space for the layers of the image archive", 4 * MIB)


def test_spool_held_to_half_the_free_space(small_env):
    """A small gzipped layer whose 24 MiB file fits in what is free, but not
    twice (spool and image): refused before the spool passes half of it."""
    refused_for_space(small_env, "bigspool", zero_file_layer(24 * MIB, byte=1), True,
                      "not enough free space to assemble the image", 20 * MIB)
