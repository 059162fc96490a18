"""Cancelling an image import mid-way, through the real CLI and daemon: an
OCI archive whose one layer is a large file (written as data, not holes), so
the import spends seconds in its unpack, layers and write loops; a second
client cancels it once bytes are moving, and Ctrl-C on the importing client
does the same. And an import from a registry (the fake one of
test_registry_auth.py, served in the test's namespace) whose layer comes
slowly, cancelled mid-transfer. Nothing may be left: no image, no image
directory, nothing in the cache's staging area or blobs, and no operation
listed."""
import gzip
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest

from lifecycle import BANGER, require_root
from test_image_limits import assert_left_nothing, image_config, make_env, write_oci_archive, zero_file_layer
from test_oci_boot import make_tar, sha256
from test_registry_auth import MT_CONFIG, MT_LAYER, MT_MANIFEST, Registry

pytestmark = pytest.mark.slow

MIB = 1 << 20
LAYER = 384 * MIB


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = None
    try:
        e = make_env(tmp_path_factory.mktemp("operations-image"), 'image_import_max = "2G"\n')
        e.archive = e.tmp / "big.tar.gz"
        write_oci_archive(e.archive, [zero_file_layer(LAYER, byte=1)])
        yield e
    finally:
        if e:
            e.teardown()


def operations(env):
    return env.json("operations")["operations"]


def import_moving(env, name, source=None, stage=None):
    """Start `image import` and wait until its operation counts bytes (in
    that stage, when given)."""
    cli = subprocess.Popen(["ip", "netns", "exec", env.ns, str(BANGER), "image", "import",
                            str(source or env.archive), "--name", name], env=env.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ops = [o for o in operations(env) if o["kind"] == "image.import" and o["target"] == name]
        if ops and ops[0]["bytes"] > 0 and (stage is None or ops[0]["stage"] == stage):
            return cli, ops[0]
        if cli.poll() is not None:
            break
        time.sleep(0.05)
    cli.kill()
    raise AssertionError(("the import never showed progress", cli.communicate()))


def test_cancel_import_mid_way_from_second_client(env):
    cli, op = import_moving(env, "bigc")
    try:
        assert op["stage"] in ("unpack", "layers", "write"), op
        assert op["total"] == 0 or op["bytes"] < op["total"], op
        env.banger("operations", "cancel", str(op["id"]))
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 3, (cli.returncode, out, err, env.daemon_log()[-3000:])
    assert f"operation {op['id']} (image.import) was cancelled" in err, err
    assert_left_nothing(env, "bigc")
    assert operations(env) == []


def test_ctrl_c_cancels_the_import(env):
    cli, op = import_moving(env, "bigi")
    try:
        os.kill(cli.pid, signal.SIGINT)
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 128 + signal.SIGINT, (cli.returncode, out, err, env.daemon_log()[-3000:])
    assert f"cancelling operation {op['id']}, rolling back" in err, err
    assert_left_nothing(env, "bigi")
    assert operations(env) == []


def test_an_import_not_cancelled_still_works(env):
    """The same archive imports when nobody cancels (the windows above are
    real work, not a failure)."""
    env.json("image", "import", str(env.archive), "--name", "bigok")
    assert env.json("image", "show", "bigok")["name"] == "bigok"
    assert operations(env) == []


def slow_registry_image():
    """A one-layer image whose gzipped layer is 4 MiB of random data (it
    does not compress), under tag 1."""
    raw = make_tar(lambda add: (add("etc", tarfile.DIRTYPE, 0o755),
                                add("etc/noise", tarfile.REGTYPE, 0o644, os.urandom(4 * MIB))))
    lz, cfg = gzip.compress(raw, mtime=0), image_config([raw])
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER, "digest": sha256(lz), "size": len(lz)}]}).encode()
    return {sha256(cfg): cfg, sha256(lz): lz}, {"1": man, sha256(man): man}, {"layer": sha256(lz)}


def trickle(blobs, digest, sent):
    """A blob hook sending that blob 32 KiB every 0.1 s (about 13 s for the
    layer); sent[0] counts the bytes that went out."""
    def hook(h, d):
        if d != digest:
            return False
        body = blobs[d]
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for i in range(0, len(body), 32 * 1024):
                h.wfile.write(body[i:i + 32 * 1024])
                sent[0] += len(body[i:i + 32 * 1024])
                time.sleep(0.1)
        except OSError:
            pass
        h.close_connection = True
        return True
    return hook


def test_cancel_registry_import_mid_transfer(env):
    image = slow_registry_image()
    layer = image[2]["layer"]
    sent = [0]
    reg = Registry(env.ns, "team/slow", image, blob_hook=trickle(image[0], layer, sent))
    blobs = env.tmp / "cache/banger/oci/blobs/sha256"
    before = set(os.listdir(blobs)) if blobs.exists() else set()
    try:
        cli, op = import_moving(env, "slowreg", reg.ref(), "download")
        try:
            assert 0 < op["bytes"] < len(image[0][layer]), op
            env.banger("operations", "cancel", str(op["id"]))
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
        assert cli.returncode == 3, (cli.returncode, out, err, env.daemon_log()[-3000:])
        assert f"operation {op['id']} (image.import) was cancelled" in err, err
        # The transfer stopped: the daemon hung up long before the end.
        time.sleep(1)
        assert sent[0] < len(image[0][layer]), sent
    finally:
        reg.close()
    assert_left_nothing(env, "slowreg")
    assert (set(os.listdir(blobs)) if blobs.exists() else set()) == before
    assert operations(env) == []
