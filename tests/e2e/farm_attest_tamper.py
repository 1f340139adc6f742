#!/usr/bin/env python3
"""Forges attestations in an OCI archive the way a tenant could, for
farm_attest_test.sh: every blob it writes is well-formed and named by its
digest, so only `stagefarm attest verify` can tell.

  farm_attest_tamper.py MODE IN.tar OUT.tar [ARG]
  payload   change the builder id inside the signed envelope, keep the
            signature
  unsigned  change the builder id in the unsigned statement beside it
  resign    change the builder id, sign again with the key ARG (PEM), and
            store the same statement beside the envelope
  swap      put the attestation manifest of ARG (another image's OCI
            archive) in place of this image's
"""
import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile

DSSE = "application/vnd.dsse.envelope.v1+json"
INTOTO = "application/vnd.in-toto+json"


def read(path):
    blobs, names = {}, []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.isfile():
                blobs[m.name] = t.extractfile(m).read()
                names.append(m.name)
    return blobs, names


def blob(blobs, digest):
    return blobs["blobs/sha256/" + digest.split(":", 1)[1]]


def put(blobs, data):
    d = hashlib.sha256(data).hexdigest()
    blobs["blobs/sha256/" + d] = data
    return "sha256:" + d, len(data)


def find_index(blobs):
    """The image index holding attestation manifests, and its chain."""
    top = json.loads(blobs["index.json"])
    for i, desc in enumerate(top["manifests"]):
        doc = json.loads(blob(blobs, desc["digest"]))
        if "manifests" in doc:
            return top, i, doc
    raise SystemExit("no image index in the archive")


def att_manifest(blobs, index):
    for i, m in enumerate(index["manifests"]):
        ann = m.get("annotations", {})
        if ann.get("vnd.docker.reference.type") == "attestation-manifest":
            return i, json.loads(blob(blobs, m["digest"]))
    raise SystemExit("no attestation manifest")


def pae(ptype, payload):
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(payload),
                                    payload)


def main():
    mode, src, dst = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    blobs, names = read(src)
    top, ti, index = find_index(blobs)
    ai, manifest = att_manifest(blobs, index)
    if mode == "swap":
        oblobs, _ = read(arg)
        _, _, oindex = find_index(oblobs)
        oai, _ = att_manifest(oblobs, oindex)
        for k, v in oblobs.items():
            blobs.setdefault(k, v)
        desc = dict(oindex["manifests"][oai])
        desc["annotations"] = dict(index["manifests"][ai]["annotations"])
        index["manifests"][ai] = desc
    else:
        new_payload = None
        for layer in sorted(manifest["layers"],
                            key=lambda l: l["mediaType"] != DSSE):
            data = blob(blobs, layer["digest"])
            if layer["mediaType"] == DSSE and mode in ("payload", "resign"):
                env = json.loads(data)
                st = json.loads(base64.b64decode(env["payload"]))
                st["predicate"]["runDetails"]["builder"]["id"] = "forged"
                payload = json.dumps(st).encode()
                env["payload"] = base64.b64encode(payload).decode()
                if mode == "resign":
                    with tempfile.NamedTemporaryFile() as f:
                        f.write(pae(env["payloadType"], payload))
                        f.flush()
                        sig = subprocess.run(
                            ["openssl", "pkeyutl", "-sign", "-inkey", arg,
                             "-rawin", "-in", f.name],
                            check=True, capture_output=True).stdout
                    env["signatures"][0]["sig"] = base64.b64encode(sig).decode()
                data = json.dumps(env).encode()
                new_payload = payload
            elif layer["mediaType"] == INTOTO and mode == "resign" and \
                    "slsa" in layer["annotations"]["in-toto.io/predicate-type"]:
                data = new_payload  # a thorough forger changes both
            elif layer["mediaType"] == INTOTO and mode == "unsigned" and \
                    "slsa" in layer["annotations"]["in-toto.io/predicate-type"]:
                st = json.loads(data)
                st["predicate"]["runDetails"]["builder"]["id"] = "forged"
                data = json.dumps(st).encode()
            else:
                continue
            layer["digest"], layer["size"] = put(blobs, data)
        d, n = put(blobs, json.dumps(manifest).encode())
        index["manifests"][ai]["digest"], index["manifests"][ai]["size"] = d, n
    d, n = put(blobs, json.dumps(index).encode())
    top["manifests"][ti]["digest"], top["manifests"][ti]["size"] = d, n
    blobs["index.json"] = json.dumps(top).encode()
    with tarfile.open(dst, "w") as t:
        for name in sorted(set(names) | set(blobs)):
            info = tarfile.TarInfo(name)
            info.size = len(blobs[name])
            t.addfile(info, io.BytesIO(blobs[name]))


main()
