#!/usr/bin/env python3
"""A registry that misbehaves, for the pull tests: it serves manifests and
blobs that do not match their digests, a manifest list without linux/amd64
and an oversized manifest. Listens on 127.0.0.1, port 0; prints
"listening on 127.0.0.1:PORT"."""
import hashlib
import http.server
import json

GOOD_LAYER = b"layer bytes " * 1000
BAD_LAYER = bytes(b ^ 1 for b in GOOD_LAYER)  # same size, other bytes


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


CONFIG = json.dumps({
    "architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [digest(GOOD_LAYER)]},
}).encode()


def manifest(layer):
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}],
    }).encode()


GOOD_MANIFEST = manifest(GOOD_LAYER)
OTHER_MANIFEST = manifest(b"other")
ARM_ONLY = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": digest(GOOD_MANIFEST), "size": len(GOOD_MANIFEST),
                   "platform": {"os": "linux", "architecture": "arm64"}}],
}).encode()

MANIFESTS = {
    # layer blob served with other bytes than its digest
    "/v2/bad/layer/manifests/1": GOOD_MANIFEST,
    # asked for by digest, answers with another manifest
    "/v2/bad/lies/manifests/" + digest(GOOD_MANIFEST): OTHER_MANIFEST,
    "/v2/bad/list/manifests/1": ARM_ONLY,
    "/v2/bad/huge/manifests/1": b"{" + b" " * (5 << 20) + b"}",
}
BLOBS = {digest(CONFIG): CONFIG, digest(GOOD_LAYER): BAD_LAYER}


class Handler(http.server.BaseHTTPRequestHandler):
    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/":
            return self.send(200, b"{}")
        if self.path in MANIFESTS:
            body = MANIFESTS[self.path]
            ctype = json.loads(body).get("mediaType", "application/json") \
                if len(body) < 1 << 20 else "application/json"
            return self.send(200, body, ctype)
        for d, body in BLOBS.items():
            if self.path.endswith("/blobs/" + d):
                return self.send(200, body, "application/octet-stream")
        self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
print("manifest %s" % digest(GOOD_MANIFEST), flush=True)
server.serve_forever()
