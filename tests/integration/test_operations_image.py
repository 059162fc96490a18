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
import hashlib
import http.server
import json
import os
import threading
import tarfile
import time

import pytest

from lifecycle import require_root
from opslib import cancel, interrupt, operations, reaped, start_until
from test_image_limits import (assert_left_nothing, image_config, make_env, small_layer, write_oci_archive,
                               zero_file_layer)
from test_oci_boot import make_tar, sha256
from test_registry_auth import MT_CONFIG, MT_LAYER, MT_MANIFEST, Registry, socket_in_ns

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


def import_moving(env, name, source=None, stage=None, args=None, kind="image.import"):
    """Start `image import` (or args) and wait until its operation counts
    bytes (in that stage, when given); name: its target."""
    args = args or ["image", "import", str(source or env.archive), "--name", name]

    def moving():
        ops = [o for o in operations(env) if o["kind"] == kind and o["target"] == name]
        return ops[0] if ops and ops[0]["bytes"] > 0 and (stage is None or ops[0]["stage"] == stage) else None

    return start_until(env, args, moving, "the import's progress")


def test_cancel_import_mid_way_from_second_client(env):
    cli, op = import_moving(env, "bigc")
    with reaped(cli):
        assert op["stage"] in ("unpack", "layers", "write"), op
        assert op["total"] == 0 or op["bytes"] < op["total"], op
        cancel(env, cli, op)
    assert_left_nothing(env, "bigc")
    assert operations(env) == []


def test_ctrl_c_cancels_the_import(env):
    cli, op = import_moving(env, "bigi")
    with reaped(cli):
        interrupt(env, cli, op)
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
        with reaped(cli):
            assert 0 < op["bytes"] < len(image[0][layer]), op
            cancel(env, cli, op)
        # The transfer stopped: the daemon hung up long before the end.
        time.sleep(1)
        assert sent[0] < len(image[0][layer]), sent
    finally:
        reg.close()
    assert_left_nothing(env, "slowreg")
    assert (set(os.listdir(blobs)) if blobs.exists() else set()) == before
    assert operations(env) == []


class Trickle(http.server.BaseHTTPRequestHandler):
    """Serves the server's one file in 100 pieces, 0.1 s apart (about 10 s)."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.server.body
        step = max(1, len(body) // 100)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.server.sent += len(body[i:i + step])
                time.sleep(0.1)
        except OSError:
            pass
        self.close_connection = True


def serve_slowly(ns, body):
    sock = socket_in_ns(ns, "127.0.0.1")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", sock.getsockname()[1]), Trickle, bind_and_activate=False)
    srv.socket.close()
    srv.socket, srv.daemon_threads, srv.body, srv.sent = sock, True, body, 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_cancel_pull_mid_transfer(env):
    """`image pull URL --sha256 HEX` of a bundle made here, served slowly,
    cancelled while it downloads: no image, no staging directory."""
    small = env.tmp / "small.tar.gz"
    write_oci_archive(small, [small_layer("pull me")])
    env.json("image", "import", str(small), "--name", "pullme")
    bundle = env.tmp / "pullme.tar.zst"
    env.banger("image", "bundle", "pullme", "-o", str(bundle))
    env.banger("image", "delete", "pullme")
    body = bundle.read_bytes()
    srv = serve_slowly(env.ns, body)
    url = f"http://127.0.0.1:{srv.server_address[1]}/pullme.tar.zst"
    pull = ["image", "pull", url, "--sha256", hashlib.sha256(body).hexdigest()]
    try:
        cli, op = import_moving(env, url, stage="download", args=pull, kind="image.pull")
        with reaped(cli):
            assert 0 < op["bytes"] < len(body), op
            cancel(env, cli, op)
        time.sleep(1)
        assert srv.sent < len(body), srv.sent  # the daemon hung up mid-way
        assert_left_nothing(env, "pullme")
        assert [p.name for p in (env.state / "images").iterdir() if p.name.startswith(".pull-")] == []
        assert operations(env) == []
        # Not cancelled, the same pull registers the image (the window was real work).
        env.json(*pull)
        assert env.json("image", "show", "pullme")["name"] == "pullme"
    finally:
        srv.shutdown()
        srv.server_close()


def test_cancel_kernel_import_mid_copy(env):
    """kernel import with a 4 GiB initrd (a sparse file: read as zeros,
    hashed and written chunk by chunk, seconds of work): cancelled once its
    copy counts bytes, it leaves no kernel, no kernel directory and no
    temporary one."""
    kernels = env.state / "kernels"
    before = sorted(os.listdir(kernels))
    big = env.tmp / "big-initrd"
    with open(big, "wb") as f:
        f.truncate(4 << 30)
    try:
        cli, op = import_moving(env, "bigk", stage="copy", kind="kernel.import",
                                args=["kernel", "import", "bigk", "--from", str(env.tmp / "vmlinux"),
                                      "--initrd", str(big)])
        with reaped(cli):
            assert op["cancellable"] is True and 0 < op["bytes"] < op["total"] == 4 << 30, op
            p, _, _ = cancel(env, cli, op)
            assert p.stdout.strip() == f"cancelling operation {op['id']} (kernel.import bigk)", p.stdout
    finally:
        big.unlink()
    assert env.banger("kernel", "show", "bigk", check=False).returncode != 0
    assert sorted(os.listdir(kernels)) == before
    assert operations(env) == []
