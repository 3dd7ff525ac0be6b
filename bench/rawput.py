#!/usr/bin/env python3
"""The registry's raw ingest for a whole image: monolithic uploads (POST, then one PUT ?digest= with the file),
PARALLEL at a time, each worker on one kept-alive connection. No HEAD, no retries, no hashing: the least a client
can do. (Python rather than one curl per blob: starting curl costs ~15 ms of CPU, which would dominate `many`.)
With --hash, each file is also hashed (sha256, OpenSSL's, outside the GIL) as it is sent and checked at the end:
the least a client that verifies what it uploads can do.

    rawput.py [--hash] http://127.0.0.1:5000 REPOSITORY PARALLEL FILE...   (files named by their sha256 hex digest)
"""
import hashlib
import http.client
import os
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

local = threading.local()


def connection(netloc):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(netloc, blocksize=1 << 20, timeout=300)
    return conn


def hashed(f, path):
    """The file's bytes in 1 MiB pieces, hashed as they go; the digest is checked after the last."""
    h = hashlib.sha256()
    while True:
        piece = f.read(1 << 20)
        if not piece:
            break
        h.update(piece)
        yield piece
    if h.hexdigest() != os.path.basename(path):
        raise SystemExit("rawput.py: %s does not hash to its name" % path)


def upload(base, repo, path, verify):
    netloc = urllib.parse.urlsplit(base).netloc
    conn = connection(netloc)
    conn.request("POST", "/v2/%s/blobs/uploads/" % repo, body=b"", headers={"Content-Length": "0"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 202:
        raise SystemExit("rawput.py: POST %s: HTTP %d" % (repo, resp.status))
    loc = urllib.parse.urlsplit(resp.getheader("Location"))
    target = loc.path + "?" + (loc.query + "&" if loc.query else "") + "digest=sha256:" + os.path.basename(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        conn.request("PUT", target, body=hashed(f, path) if verify else f, headers={"Content-Length": str(size),
                                                      "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
    if resp.status != 201:
        raise SystemExit("rawput.py: PUT %s: HTTP %d" % (path, resp.status))


def main():
    args = sys.argv[1:]
    verify = args[:1] == ["--hash"]
    args = args[1:] if verify else args
    if len(args) < 4:
        sys.exit(__doc__)
    base, repo, parallel, files = args[0], args[1], int(args[2]), args[3:]
    with ThreadPoolExecutor(parallel) as pool:
        for f in pool.map(lambda p: upload(base, repo, p, verify), files):
            pass


if __name__ == "__main__":
    main()
