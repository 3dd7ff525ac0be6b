#!/usr/bin/env python3
"""Deterministic benchmark images, written as OCI image layouts.

    gen.py OUT NAME        writes OUT/NAME/ (an OCI layout) and OUT/NAME.json (what bench/run needs to know)

Every layer is a real gzip'd tar holding one file. The gzip stream uses stored (level-0) deflate blocks, so
producing it costs a copy and a CRC instead of real compression, and the blob's bytes are the file's bytes:
random for most images (incompressible), text-like for `compressible`. Layers are written in 1 MiB chunks, so
memory stays small whatever the size. The same NAME always gives the same bytes, and no two images (or
layers) share a blob.
"""
import hashlib
import json
import os
import random
import sys
import tarfile
import zlib

MB = 1000 * 1000
CHUNK = 1 << 20

# name: (platforms, layers per platform, layer bytes per platform, content)
SPECS = {
    "medium": (["linux/amd64"], 8, 300 * MB, "random"),
    "large": (["linux/amd64"], 12, 1500 * MB, "random"),
    "many": (["linux/amd64"], 60, 60 * MB, "random"),
    "multi": (["linux/amd64", "linux/arm64"], 4, 100 * MB, "random"),
    "compressible": (["linux/amd64"], 8, 300 * MB, "text"),
    "huge": (["linux/amd64"], 1, 2000 * MB, "random"),  # one 2 GB layer: an AI model in an image
}
# A fleet: FLEET_SIZE small images (config and two layers each, nothing shared) in one layout, each under
# its own name, pulled in one run.
FLEET = "fleet"
FLEET_SIZE = 30
FLEET_SPEC = (2, 512 * 1000, "random")
# Two versions of a set of images on one shared base, for `bench/delta` (export --since, push of the delta).
DELTA = "delta"
DELTA_SPEC = {"images": 10, "base": [40 * MB, 20 * MB], "own": 5 * MB, "rebuilt": 4, "added": 1}
TAG = "v1"
REF_HOST = "bench.local"  # the name recorded in the layout; bench/run pushes it under other names

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def seed_of(*parts):
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def dumps(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


class Layout:
    def __init__(self, root):
        self.root = root
        self.blobs_dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs_dir, exist_ok=True)
        self.blobs = []
        self.made = {}  # (seed, size, content) -> (descriptor, diff_id) of a layer already written

    def put_bytes(self, data, media_type, kind):
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.blobs_dir, digest)
        with open(path, "wb") as f:
            f.write(data)
        return self._record(digest, len(data), media_type, kind, path)

    def _record(self, digest, size, media_type, kind, path):
        self.blobs.append({"digest": "sha256:" + digest, "size": size, "mediaType": media_type,
                           "kind": kind, "path": path})
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": size}

    def put_stream(self, chunks, media_type, kind):
        """Writes the chunks to a temp file, names it by its digest. Returns (descriptor, diff_id)."""
        tmp = os.path.join(self.blobs_dir, ".partial")
        blob_hash, diff_hash = hashlib.sha256(), hashlib.sha256()
        gz = zlib.compressobj(0, zlib.DEFLATED, 31)  # gzip wrapper, stored blocks, mtime 0
        size = 0
        with open(tmp, "wb") as f:
            def out(b):
                nonlocal size
                if b:
                    blob_hash.update(b)
                    f.write(b)
                    size += len(b)
            for chunk in chunks:
                diff_hash.update(chunk)
                out(gz.compress(chunk))
            out(gz.flush())
        digest = blob_hash.hexdigest()
        path = os.path.join(self.blobs_dir, digest)
        os.replace(tmp, path)
        return self._record(digest, size, media_type, kind, path), "sha256:" + diff_hash.hexdigest()


def random_content(seed, size):
    rng = random.Random(seed)
    left = size
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def text_content(seed, size):
    """Log-like lines from a small vocabulary: compresses about 3-4x with gzip, like text or source files."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(1500)]
    lines, n = [], 0
    while n < 2 * CHUNK:
        line = "%05d %s %s\n" % (rng.randrange(100000), rng.choice(("INFO", "WARN", "DEBUG")),
                                  " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 14))))
        lines.append(line)
        n += len(line)
    base = "".join(lines).encode()
    left, i = size, 0
    while left:
        n = min(CHUNK, left)
        off = rng.randrange(len(base) - n)
        head = b"chunk %d\n" % i
        yield (head + base[off:off + n])[:n]
        left -= n
        i += 1


def tar_of(name, content, size):
    """One regular file NAME of SIZE bytes as a tar stream (ustar header, data, padding, end blocks)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uname, info.gname = size, 0o644, 0, "root", "root"
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    yield header
    yield from content
    total = len(header) + size
    pad = (-size) % 512 + 1024  # fill the last block, then two zero blocks
    total += pad
    pad += (-total) % tarfile.RECORDSIZE
    yield bytes(pad)


def image(layout, name, platform, layers, layer_bytes, content, seeds=None, sizes=None):
    """One image; `seeds` and `sizes` (per layer) override the ones derived from the name: the same seed and
    size give the same layer blob, so images can share layers."""
    os_name, arch = platform.split("/")[:2]
    gen = random_content if content == "random" else text_content
    if sizes is None:
        sizes = [layer_bytes // layers + (1 if i < layer_bytes % layers else 0) for i in range(layers)]
    layers = len(sizes)
    descs, diff_ids = [], []
    for i, size in enumerate(sizes):
        seed = seeds[i] if seeds else seed_of(name, platform, i)
        key = (seed, size, content)
        if key not in layout.made:
            layout.made[key] = layout.put_stream(tar_of("data/layer-%02d.bin" % i, gen(seed, size), size),
                                                 OCI_LAYER_GZIP, "layer")
        desc, diff_id = layout.made[key]
        descs.append(desc)
        diff_ids.append(diff_id)
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"], "Labels": {"ferry.bench": name}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench/gen.py layer %d" % i}
                    for i in range(layers)],
    }
    config_desc = layout.put_bytes(dumps(config), OCI_CONFIG, "config")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": descs}
    return layout.put_bytes(dumps(manifest), OCI_MANIFEST, "manifest")


def write_index(root, entries):
    with open(os.path.join(root, "oci-layout"), "wb") as f:
        f.write(dumps({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(root, "index.json"), "wb") as f:
        f.write(dumps({"schemaVersion": 2, "manifests": [dict(top, annotations={REF_NAME: ref})
                                                          for top, ref in entries]}))


def blob_totals(layout):
    return {
        "bytes": sum(b["size"] for b in layout.blobs),
        "layerBytes": sum(b["size"] for b in layout.blobs if b["kind"] == "layer"),
        "blobs": layout.blobs,
    }


def fleet(out):
    """FLEET_SIZE images named bench/fleet-NN:v1 in one layout."""
    root = os.path.join(out, FLEET)
    layout = Layout(root)
    layers, layer_bytes, content = FLEET_SPEC
    entries, members = [], []
    for n in range(FLEET_SIZE):
        name = "%s-%02d" % (FLEET, n)
        top = image(layout, name, "linux/amd64", layers, layer_bytes, content)
        ref = "%s/bench/%s:%s" % (REF_HOST, name, TAG)
        entries.append((top, ref))
        members.append({"ref": ref, "repository": "bench/" + name, "digest": top["digest"]})
    write_index(root, entries)
    summary = {
        "name": FLEET, "layout": root, "platforms": ["linux/amd64"], "content": content,
        "images": members, "layers": layers * FLEET_SIZE, **blob_totals(layout),
    }
    with open(os.path.join(out, FLEET + ".json"), "w") as f:
        json.dump(summary, f, indent=1)


def delta(out):
    """Two versions of a set of images on one shared base (OUT/delta-v1, OUT/delta-v2): v2 rebuilds the own
    layer of the first DELTA_SPEC["rebuilt"] images, keeps the others, and adds DELTA_SPEC["added"] images."""
    spec = DELTA_SPEC
    summary = {"name": DELTA, "spec": spec, "versions": {}}
    for version in (1, 2):
        root = os.path.join(out, "%s-v%d" % (DELTA, version))
        layout = Layout(root)
        count = spec["images"] + (spec["added"] if version == 2 else 0)
        entries, members = [], []
        for n in range(count):
            name = "%s-%02d" % (DELTA, n)
            own = 2 if version == 2 and n < spec["rebuilt"] else 1
            seeds = [seed_of(DELTA, "base", i) for i in range(len(spec["base"]))] + [seed_of(name, own)]
            top = image(layout, name, "linux/amd64", 0, 0, "random", seeds=seeds,
                        sizes=spec["base"] + [spec["own"]])
            ref = "%s/bench/%s:v%d" % (REF_HOST, name, version)
            entries.append((top, ref))
            members.append({"ref": ref, "repository": "bench/" + name, "tag": "v%d" % version,
                            "digest": top["digest"]})
        write_index(root, entries)
        unique = {b["digest"]: b["size"] for b in layout.blobs}
        summary["versions"][str(version)] = {"layout": root, "images": members, "bytes": sum(unique.values()),
                                             "blobs": len(unique)}
    with open(os.path.join(out, DELTA + ".json"), "w") as f:
        json.dump(summary, f, indent=1)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in list(SPECS) + [FLEET, DELTA]:
        sys.exit("usage: gen.py OUT NAME   (NAME: %s, %s, %s)" % (", ".join(SPECS), FLEET, DELTA))
    out, name = os.path.abspath(sys.argv[1]), sys.argv[2]
    if name == FLEET:
        return fleet(out)
    if name == DELTA:
        return delta(out)
    platforms, layers, layer_bytes, content = SPECS[name]
    root = os.path.join(out, name)
    layout = Layout(root)
    manifests = []
    for platform in platforms:
        desc = image(layout, name, platform, layers, layer_bytes, content)
        os_name, arch = platform.split("/")[:2]
        manifests.append(dict(desc, platform={"architecture": arch, "os": os_name}))
    if len(manifests) == 1:
        top = manifests[0]
        del top["platform"]
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        top = layout.put_bytes(dumps(index), OCI_INDEX, "index")
    ref = "%s/bench/%s:%s" % (REF_HOST, name, TAG)
    write_index(root, [(top, ref)])
    summary = {
        "name": name, "ref": ref, "repository": "bench/" + name, "tag": TAG, "layout": root,
        "platforms": platforms, "content": content, "layers": layers * len(platforms),
        "digest": top["digest"], "mediaType": top["mediaType"], **blob_totals(layout),
    }
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
