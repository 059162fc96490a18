"""The registry client's anonymous bearer-token flow end to end, through the
real CLI and daemon: a registry this test serves itself (http.server, inside
the test's network namespace so its 127.0.0.1 is the daemon's) answers 401
with a Bearer challenge until the client presents the token its own /token
endpoint issues for the right service and scope. It serves an index with an
arm64 and an amd64 manifest; the importer must pick amd64 and never touch the
arm64 blobs. A server mode that corrupts a blob makes the import fail on the
digest and leave nothing; plain HTTP is only ever spoken to loopback."""
import ctypes
import gzip
import json
import os
import re
import socket
import struct
import subprocess
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lifecycle import Env, require_root
from test_oci_boot import make_tar, sha256

pytestmark = pytest.mark.slow

SERVICE = "banger-test-registry"
TOKEN = "tok-7f3a9c"
CLONE_NEWNET = 0x40000000
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def socket_in_ns(ns, host):
    """A listening TCP socket in namespace ns. setns() moves only the calling
    thread, so a throwaway thread does it; the socket stays in that namespace."""
    out = {}

    def run():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/var/run/netns/{ns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            s = socket.socket()
            s.bind((host, 0))
            s.listen(16)
            out["sock"] = s
        except BaseException as e:  # handed to the caller
            out["err"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


def build_image(text):
    """An index with an arm64 and an amd64 manifest (in that order), each with
    its own config and layer. Returns (blobs, manifests, digests)."""
    blobs, manifests, digests = {}, {}, {}
    entries = []
    for arch in ("arm64", "amd64"):
        raw = make_tar(lambda add: (add("etc", tarfile.DIRTYPE, 0o755),
                                    add("etc/hello", tarfile.REGTYPE, 0o644, f"{text} {arch}\n".encode())))
        layer = gzip.compress(raw, mtime=0)
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                             "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                               "config": {"mediaType": MT_CONFIG, "digest": sha256(config), "size": len(config)},
                               "layers": [{"mediaType": MT_LAYER, "digest": sha256(layer),
                                           "size": len(layer)}]}).encode()
        blobs[sha256(config)], blobs[sha256(layer)] = config, layer
        manifests[sha256(manifest)] = manifest
        digests[arch] = {"manifest": sha256(manifest), "config": sha256(config), "layer": sha256(layer)}
        entries.append({"mediaType": MT_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
                        "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}).encode()
    manifests["1"] = index
    digests["index"] = sha256(index)
    return blobs, manifests, digests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="application/json", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        reg = self.server.registry
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization")
        with reg.lock:
            reg.log.append({"path": url.path, "query": query, "auth": auth})
        if url.path == "/token":
            if query.get("service") != [SERVICE] or query.get("scope") != [f"repository:{reg.repo}:pull"]:
                return self.reply(403, b'{"errors":[{"code":"DENIED","message":"wrong service or scope"}]}')
            key = "access_token" if reg.access_token_key else "token"
            return self.reply(200, json.dumps({key: TOKEN, "expires_in": 300}).encode())
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", url.path)
        if not m or m[1] != reg.repo:
            return self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}')
        if auth != f"Bearer {TOKEN}":
            realm = reg.realm or f"http://127.0.0.1:{reg.port}/token"
            challenge = f'Bearer realm="{realm}",service="{reg.service}",scope="repository:{reg.repo}:pull"'
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                              headers=[("WWW-Authenticate", challenge)])
        if m[2] == "manifests" and m[3] in reg.manifests:
            body = reg.manifests[m[3]]
            return self.reply(200, body, json.loads(body)["mediaType"],
                              [("Docker-Content-Digest", sha256(body))])
        if m[2] == "blobs" and reg.blob_hook and reg.blob_hook(self, m[3]):
            return None
        if m[2] == "blobs" and m[3] in reg.blobs:
            body = reg.blobs[m[3]]
            if m[3] in reg.corrupt:  # same size, one byte off
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            return self.reply(200, body, "application/octet-stream")
        return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}')


class Registry:
    """blob_hook(handler, digest), when given, may answer a blob request
    itself (returning True): a registry that misbehaves on purpose."""

    def __init__(self, ns, repo, image, corrupt=(), access_token_key=False, service=SERVICE, realm=None,
                 blob_hook=None):
        self.repo, self.corrupt, self.access_token_key = repo, set(corrupt), access_token_key
        self.blob_hook = blob_hook
        self.service, self.realm = service, realm  # what the challenge advertises
        self.blobs, self.manifests, self.digests = image
        self.log, self.lock = [], threading.Lock()
        sock = socket_in_ns(ns, "127.0.0.1")
        self.port = sock.getsockname()[1]
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        self.srv.socket.close()
        self.srv.socket, self.srv.registry, self.srv.daemon_threads = sock, self, True
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def ref(self):
        return f"127.0.0.1:{self.port}/{self.repo}:1"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def tiny_kernel(path):
    """A minimal x86_64 ELF with a Linux banner (as tests/unit/test-kernel.c
    makes): enough for kernel import, which image import pairs with."""
    banner = b"Linux version 9.9.9-test (t@banger) #1 SMP\n\0"
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0, 64,
                                                            56, 1, 64, 0, 0))
    off = 64 + 56
    ph = struct.pack("<IIQQQQQQ", 1, 5, off, 0x1000000, 0x1000000, len(banner), len(banner), 0x1000)
    path.write_bytes(ehdr + ph + banner)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_root()
    e = Env(tmp_path_factory.mktemp("registry-auth"))
    # A proxy from the caller's environment would take the non-loopback pull.
    e.env = {k: v for k, v in e.env.items() if not k.lower().endswith("_proxy")}
    e.setup()
    try:
        k = e.tmp / "vmlinux"
        tiny_kernel(k)
        assert e.json("kernel", "import", "tinyk", "--from", str(k))["name"] == "tinyk"
        yield e
    finally:
        e.teardown()


def debugfs_cat(image, path):
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True,
                          check=True).stdout


def test_bearer_flow_picks_amd64(env):
    reg = Registry(env.ns, "team/app", build_image("authimg"))
    try:
        p = env.banger("image", "import", reg.ref(), "--name", "authimg")
    finally:
        reg.close()
    log, d = reg.log, reg.digests
    # Anonymous first: the tag's manifest, without credentials, answered 401.
    assert log[0]["path"] == "/v2/team/app/manifests/1" and log[0]["auth"] is None, log
    tokens = [i for i, r in enumerate(log) if r["path"] == "/token"]
    assert len(tokens) == 1, log
    t = tokens[0]
    assert log[t]["query"] == {"service": [SERVICE], "scope": ["repository:team/app:pull"]}, log[t]
    assert log[t]["auth"] is None
    after = log[t + 1:]
    assert after and all(r["auth"] == f"Bearer {TOKEN}" for r in after), log
    fetched = [r["path"] for r in after]
    amd, arm = d["amd64"], d["arm64"]
    assert fetched[0] == "/v2/team/app/manifests/1"  # the retry with the token
    assert f"/v2/team/app/manifests/{amd['manifest']}" in fetched, fetched
    for digest in (amd["config"], amd["layer"]):
        assert f"/v2/team/app/blobs/{digest}" in fetched, fetched
    assert not any(arm[k] in path for k in ("manifest", "config", "layer") for path in fetched), fetched
    img = env.json("image", "show", "authimg")
    assert img["name"] == "authimg" and img["kernel"] == "tinyk" and img["source"] == reg.ref(), img
    assert os.path.getsize(img["rootfs"]) >= 1 << 30
    # The amd64 layer's file, not the arm64 one's, is in the filesystem.
    assert debugfs_cat(img["rootfs"], "/etc/hello") == "authimg amd64\n"
    assert "authimg" in env.banger("image", "list").stdout
    assert p.returncode == 0


def test_corrupt_blob_fails_on_digest_and_leaves_nothing(env):
    image = build_image("badimg")  # other bytes than authimg: nothing cached
    layer = image[2]["amd64"]["layer"]
    reg = Registry(env.ns, "team/bad", image, corrupt={layer}, access_token_key=True)
    try:
        p = env.banger("image", "import", reg.ref(), "--name", "authbad", check=False)
    finally:
        reg.close()
    assert p.returncode != 0
    assert "digest" in p.stderr, p.stderr
    # The token came as "access_token" and was used: the corrupt layer was fetched with it.
    assert any(r["path"] == f"/v2/team/bad/blobs/{layer}" and r["auth"] == f"Bearer {TOKEN}" for r in reg.log)
    assert env.banger("image", "show", "authbad", check=False).returncode != 0
    assert "authbad" not in env.banger("image", "list").stdout
    assert not (env.state / "images/authbad").exists()
    cached = env.tmp / "cache/banger/oci/blobs/sha256"
    assert cached.is_dir() and not (cached / layer[7:]).exists()
    assert not [f for f in cached.iterdir() if not re.fullmatch(r"[0-9a-f]{64}", f.name)]


def test_http_scheme_reference_refused_without_connecting(env):
    """References carry no scheme: plain HTTP is implied for loopback only.
    A URL-style http:// reference is refused before any request is made."""
    reg = Registry(env.ns, "team/app", build_image("authimg"))
    try:
        p = env.banger("image", "import", f"http://127.0.0.1:{reg.port}/team/app:1", "--name", "httpimg",
                       check=False)
    finally:
        reg.close()
    assert p.returncode != 0 and "URL scheme" in p.stderr, p.stderr
    assert reg.log == []
    assert env.banger("image", "show", "httpimg", check=False).returncode != 0


def test_non_loopback_registry_gets_tls_never_plain_http(env):
    """A registry on the namespace's non-loopback address (198.18.0.1, on
    the veth) is spoken to over HTTPS only: the first bytes on the wire are a
    TLS handshake record, never an HTTP request line."""
    sock = socket_in_ns(env.ns, "198.18.0.1")
    sock.settimeout(60)
    port, got = sock.getsockname()[1], []

    def accept():
        try:
            c, _ = sock.accept()
            c.settimeout(10)
            got.append(c.recv(16))
            c.close()
        except OSError as e:
            got.append(e)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        p = env.banger("image", "import", f"198.18.0.1:{port}/team/app:1", "--name", "remoteimg", check=False)
        t.join(15)
    finally:
        sock.close()
    assert p.returncode != 0
    assert len(got) == 1 and isinstance(got[0], bytes), got
    assert got[0][:1] == b"\x16" and not got[0].startswith(b"GET"), got  # TLS handshake record
    assert env.banger("image", "show", "remoteimg", check=False).returncode != 0


def test_token_refused_for_wrong_service_fails_the_import(env):
    """The client asks for what the challenge names; a token endpoint that
    refuses it fails the import (no retry without a token, no image)."""
    reg = Registry(env.ns, "team/app", build_image("authimg"), service="not-" + SERVICE)
    try:
        p = env.banger("image", "import", reg.ref(), "--name", "denied", check=False)
    finally:
        reg.close()
    assert p.returncode != 0 and "token request failed with HTTP 403" in p.stderr, p.stderr
    assert [r["path"] for r in reg.log] == ["/v2/team/app/manifests/1", "/token"], reg.log
    assert reg.log[1]["query"]["service"] == ["not-" + SERVICE]
    assert env.banger("image", "show", "denied", check=False).returncode != 0


def test_plain_http_token_realm_off_loopback_refused_without_connecting(env):
    """A loopback registry may speak plain HTTP, but a challenge that sends
    the token request to a non-loopback http:// realm is refused before any
    connection to it is made."""
    sock = socket_in_ns(env.ns, "198.18.0.1")
    realm = f"http://198.18.0.1:{sock.getsockname()[1]}/token"
    reg = Registry(env.ns, "team/app", build_image("authimg"), realm=realm)
    try:
        p = env.banger("image", "import", reg.ref(), "--name", "offrealm", check=False)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing in the accept queue
            sock.accept()
    finally:
        sock.close()
        reg.close()
    assert p.returncode != 0 and "realm" in p.stderr, p.stderr
    assert [r["path"] for r in reg.log] == ["/v2/team/app/manifests/1"], reg.log
    assert env.banger("image", "show", "offrealm", check=False).returncode != 0
