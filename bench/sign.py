#!/usr/bin/env python3
"""Sign images in a registry as `cosign sign --key` does, for bench/verify.

    sign.py HOST KEY.pem REPO:TAG...

For each image: the simple-signing payload naming its manifest digest, an ECDSA P-256 signature over it
(openssl), and the `sha256-<hex>.sig` manifest (one layer: the payload, the signature in the
`dev.cosignproject.cosign/signature` annotation), pushed over the distribution API (plain HTTP).
"""
import base64
import hashlib
import json
import subprocess
import sys
import urllib.request

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.headers, r.read()


def put_blob(host, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers, _ = request("POST", f"http://{host}/v2/{repo}/blobs/uploads/", b"")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return {"mediaType": "", "digest": digest, "size": len(data)}


def sign(host, key, image):
    repo, tag = image.rsplit(":", 1)
    headers, _ = request("HEAD", f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST})
    digest = headers["Docker-Content-Digest"]
    payload = json.dumps({
        "critical": {
            "identity": {"docker-reference": f"{host}/{repo}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }, separators=(",", ":")).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=payload, capture_output=True,
                         check=True).stdout
    layer = put_blob(host, repo, payload)
    layer["mediaType"] = SIMPLESIGNING
    layer["annotations"] = {"dev.cosignproject.cosign/signature": base64.b64encode(sig).decode()}
    config = put_blob(host, repo, b"{}")
    config["mediaType"] = CONFIG
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]}).encode()
    sig_tag = digest.replace(":", "-") + ".sig"
    request("PUT", f"http://{host}/v2/{repo}/manifests/{sig_tag}", manifest, {"Content-Type": MANIFEST})


if __name__ == "__main__":
    host, key = sys.argv[1:3]
    for image in sys.argv[3:]:
        sign(host, key, image)
