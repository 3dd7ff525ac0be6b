#!/usr/bin/env python3
"""The registry's raw ingest for a whole image: monolithic uploads (POST, then one PUT ?digest= with the file),
PARALLEL at a time, each worker on one kept-alive connection. No HEAD, no retries, no hashing: the least a client
can do. (Python rather than one curl per blob: starting curl costs ~15 ms of CPU, which would dominate `many`.)

    rawput.py http://127.0.0.1:5000 REPOSITORY PARALLEL FILE...   (files named by their sha256 hex digest)
"""
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


def upload(base, repo, path):
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
        conn.request("PUT", target, body=f, headers={"Content-Length": str(size),
                                                      "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
    if resp.status != 201:
        raise SystemExit("rawput.py: PUT %s: HTTP %d" % (path, resp.status))


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    base, repo, parallel, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    with ThreadPoolExecutor(parallel) as pool:
        for f in pool.map(lambda p: upload(base, repo, p), files):
            pass


if __name__ == "__main__":
    main()
