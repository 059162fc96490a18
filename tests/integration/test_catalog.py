"""Bundles and catalogs end to end through the real CLI and daemon: the small
test guest's image and kernel written as bundles (a tar.zst that GNU tar
reads, the rootfs kept sparse, a manifest whose sha256s are the files'), and
the catalog of a directory of bundles signed with Debian's real minisign."""
import hashlib
import json
import os
import subprocess

import pytest

from lifecycle import env_with_test_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = env_with_test_image(tmp_path_factory, "catalog")
    try:
        yield e
    finally:
        e.teardown()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tar_list(bundle):
    p = subprocess.run(["tar", "--zstd", "-tvf", str(bundle)], capture_output=True, text=True, check=True)
    return [l.split()[-1] if "->" not in l else l.split()[-3] for l in p.stdout.splitlines()]


def unpack(bundle, dest):
    dest.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(bundle), "-C", str(dest)], check=True)
    return json.loads((dest / "manifest.json").read_text())


@pytest.fixture(scope="module")
def bundles(env):
    out = env.tmp / "pub"
    out.mkdir()
    img = env.json("image", "bundle", "test", "-o", str(out / "test.tar.zst"), "--version", "1.0",
                   "--description", "the test guest")
    assert img == {"name": "test", "version": "1.0", "output": str(out / "test.tar.zst")}, img
    k = env.json("kernel", "bundle", "testk", "-o", str(out / "testk.tar.zst"))
    assert k["name"] == "testk" and k["version"] == env.manifest["KERNEL_RELEASE"], k
    return out


def test_image_bundle_holds_manifest_rootfs_and_kernel(env, bundles, tmp_path):
    names = tar_list(bundles / "test.tar.zst")
    assert names[0] == "manifest.json", names
    assert {"rootfs.ext4", "kernel/bzImage", "kernel/initrd"} <= set(names), names
    m = unpack(bundles / "test.tar.zst", tmp_path / "x")
    assert m["format"] == 1 and m["kind"] == "image" and m["name"] == "test" and m["version"] == "1.0"
    assert m["description"] == "the test guest" and m["architecture"] == "x86_64"
    assert m["kernel"] == {"name": "testk", "version": env.manifest["KERNEL_RELEASE"]}
    assert m["banger_version"]
    files = {f["path"]: f for f in m["files"]}
    src = env.image_dir / "rootfs.ext4"
    assert files["rootfs.ext4"]["size"] == os.path.getsize(src)
    for path, f in files.items():
        if f["type"] == "file":
            assert sha256_file(tmp_path / "x" / path) == f["sha256"], path
    assert files["rootfs.ext4"]["sha256"] == sha256_file(src)
    # The holes stayed holes: GNU tar unpacks a member sparse only when the
    # archive says it is, and then it allocates what the source had.
    unpacked = os.stat(tmp_path / "x/rootfs.ext4")
    assert unpacked.st_size == os.path.getsize(src)
    assert unpacked.st_blocks * 512 < os.stat(src).st_blocks * 512 + (1 << 20), unpacked
    assert unpacked.st_blocks * 512 < unpacked.st_size / 2, unpacked


def test_kernel_bundle_holds_the_kernel_alone(env, bundles, tmp_path):
    names = tar_list(bundles / "testk.tar.zst")
    assert names[0] == "manifest.json" and "rootfs.ext4" not in names, names
    m = unpack(bundles / "testk.tar.zst", tmp_path / "k")
    assert m["kind"] == "kernel" and m["name"] == "testk"
    k = env.json("kernel", "show", "testk")
    assert sha256_file(tmp_path / "k/kernel/bzImage") == k["sha256"]


def test_bundle_of_unknown_image_fails_and_writes_nothing(env, tmp_path):
    p = env.banger("image", "bundle", "nosuch", "-o", str(tmp_path / "n.tar.zst"), check=False)
    assert p.returncode == 1 and "no image named 'nosuch'" in p.stderr, p.stderr
    p = env.banger("kernel", "bundle", "testk", "-o", str(tmp_path / "n.tar.zst"), "--version", "../x", check=False)
    assert p.returncode != 0 and "version" in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == []


def test_catalog_build_lists_the_bundles(env, bundles):
    p = env.banger("catalog", "build", str(bundles), "--base-url", "http://example.invalid/b")
    c = json.loads(p.stdout)
    assert c["format"] == 1
    [img], [k] = c["images"], c["kernels"]
    assert img["name"] == "test" and img["version"] == "1.0" and img["description"] == "the test guest"
    assert img["url"] == "http://example.invalid/b/test.tar.zst"
    assert img["size"] == os.path.getsize(bundles / "test.tar.zst")
    assert img["sha256"] == sha256_file(bundles / "test.tar.zst")
    assert img["kernel"] == {"name": "testk", "version": env.manifest["KERNEL_RELEASE"]}
    assert k["name"] == "testk" and "kernel" not in k and k["url"] == "http://example.invalid/b/testk.tar.zst"
    # Without --base-url: relative to the catalog; -o writes the file.
    env.banger("catalog", "build", str(bundles), "-o", str(bundles / "catalog.json"))
    c = json.loads((bundles / "catalog.json").read_text())
    assert [i["url"] for i in c["images"]] == ["test.tar.zst"]
