#!/usr/bin/env python3
"""Turns what bench/run measured into docs/benchmarks.md and bench/results.json.

    report.py OUT-DIR DOC.md RESULTS.json

OUT-DIR holds meta.json, images/NAME.json (bench/gen.py), hf/FAMILY-IMAGE.json (hyperfine --export-json),
measure/ID.{time,stderr,access,regcpu} (one extra run per tool: /usr/bin/time -v, ferry's -vv log, the
registries' access-log lines, the registries' CPU seconds) and sha256.txt, machine-limits.json.
The "Profile notes" section of an existing DOC.md is kept.
"""
import json
import os
import re
import statistics
import sys

import report_link as link

MB = 1e6
MIB = 1 << 20
NOTES_START = "<!-- profile-notes:start -->"
NOTES_END = "<!-- profile-notes:end -->"
NOTES_PLACEHOLDER = """> **Placeholder, to be filled by the lead engineer.** Profiles of the hot paths (`perf record -g`,
> `valgrind --tool=callgrind`) for pull, push and copy of `large` and `many`: where the cycles go (sha256,
> copies, syscalls, the registry), and what was changed because of them. `bench/run` keeps this section
> when it rewrites the file."""

FAMILY_TITLES = {
    "pull": "Pull: registry → OCI layout",
    "push": "Push: OCI layout → fresh repository",
    "copy": "Copy: registry → registry (fresh repository in a second registry)",
}
TOOL_NAMES = {
    "ferry-cold": "ferry, cold cache",
    "ferry-warm": "ferry, warm cache",
    "ferry": "ferry",
    "ferry-no-cache": "ferry `--no-cache`",
    "ferry-warm-cache": "ferry, warm cache",
    "skopeo": "skopeo",
}
HTTP_LINE = re.compile(r"\bhttp (GET|HEAD|POST|PUT|PATCH|DELETE) ")
ACCESS_LINE = re.compile(r'^(src|dst) \S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) ')


def load(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def hyperfine(out, name):
    data = load(os.path.join(out, "hf", name + ".json"))
    if data is None:
        return {}
    results = {}
    for r in data["results"]:
        times = r["times"]
        results[r["command"]] = {
            "median_s": r.get("median", statistics.median(times)),
            "min_s": r.get("min", min(times)),
            "mean_s": r["mean"],
            "stddev_s": r.get("stddev"),
            "runs": len(times),
            "times_s": times,
        }
    return results


def measurement(out, mid):
    base = os.path.join(out, "measure", mid)
    if not os.path.exists(base + ".time"):
        return None
    m = {}
    with open(base + ".time") as f:
        for line in f:
            key, _, value = line.strip().rpartition(": ")
            if key == "Maximum resident set size (kbytes)":
                m["peak_rss_kib"] = int(value)
            elif key == "User time (seconds)":
                m["cpu_user_s"] = float(value)
            elif key == "System time (seconds)":
                m["cpu_sys_s"] = float(value)
            elif key.startswith("Elapsed (wall clock) time"):
                parts = [float(p) for p in value.split(":")]
                m["wall_s"] = sum(p * 60 ** (len(parts) - 1 - i) for i, p in enumerate(parts))
    with open(base + ".regcpu") as f:
        fields = f.read().split()
        m["registry_cpu_s"] = float(fields[0])
        if len(fields) > 1:
            m["machine_busy_cpu_s"] = float(fields[1])  # every process, from /proc/stat
    by_method = {}
    with open(base + ".access") as f:
        for line in f:
            hit = ACCESS_LINE.match(line)
            if hit:
                by_method[hit.group(2)] = by_method.get(hit.group(2), 0) + 1
    m["registry_requests"] = sum(by_method.values())
    m["registry_requests_by_method"] = dict(sorted(by_method.items()))
    if "ferry" in mid:
        with open(base + ".stderr", errors="replace") as f:
            m["ferry_logged_requests"] = sum(1 for line in f if HTTP_LINE.search(line))
    return m


def fmt(v, digits=2):
    if v is None:
        return "—"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return ("%." + str(digits) + "f") % v


def pct(v):
    return "—" if v is None else "%.0f %%" % (100 * v)


def ratio(v):
    return "—" if v is None else "%.2f×" % v


def rate(mbps):
    return "—" if mbps is None else fmt(mbps)


def loopback(out, meta, images):
    """The loopback suite's limits and cases, from what bench/run left in OUT-DIR."""

    # ------------------------------------------------------------------ limits
    sha = {}
    if not os.path.exists(os.path.join(out, "sha256.txt")):
        return {}, []  # no loopback suite in this run
    with open(os.path.join(out, "sha256.txt")) as f:
        for line in f:
            k, v = line.split()
            sha[k] = float(v)
    machine = load(os.path.join(out, "machine-limits.json"))
    hm = hyperfine(out, "limits-machine")
    limits = {
        "sha256_1core_MBps": sha.get("sha256_1core_bps", 0) / MB or None,
        "sha256_allcores_MBps": sha.get("sha256_allcores_bps", 0) / MB or None,
        "disk_write_fdatasync_MBps": machine["dd_bytes"] / MB / hm["disk-write"]["median_s"],
        "curl_get_one_blob_MBps": machine["bytes"] / MB / hm["curl-get-1"]["median_s"],
        "curl_put_one_blob_MBps": machine["bytes"] / MB / hm["curl-put-1"]["median_s"],
        "one_blob": {"image": machine["image"], "bytes": machine["bytes"]},
        "disk_write_bytes": machine["dd_bytes"],
        "timings": hm,
        "images": {},
    }
    for name, img in images.items():
        h = hyperfine(out, "limits-" + name)
        moved = sum(b["size"] for b in img["blobs"] if b["kind"] in ("layer", "config"))
        limits["images"][name] = {
            "bytes": moved,
            "curl_get_MBps": moved / MB / h["curl-get"]["median_s"] if h else None,
            "curl_get_files_MBps":
                moved / MB / h["curl-get-files"]["median_s"] if h and "curl-get-files" in h else None,
            "raw_put_MBps": moved / MB / h["raw-put"]["median_s"] if h else None,
            "raw_put_hash_MBps":
                moved / MB / h["raw-put-hash"]["median_s"] if h and "raw-put-hash" in h else None,
            "timings": h,
        }

    # ------------------------------------------------------------------- cases
    cases = []
    for family in ("pull", "push", "copy"):
        for name, img in images.items():
            h = hyperfine(out, "%s-%s" % (family, name))
            if not h:
                continue
            lim = limits["images"][name]
            if family == "pull":
                limit_name, limit = "curl GET, %d parallel" % meta["concurrency"], lim["curl_get_MBps"]
            elif family == "push":
                limit_name, limit = "raw upload, %d parallel" % meta["concurrency"], lim["raw_put_MBps"]
            else:
                candidates = [v for v in (lim["curl_get_MBps"], lim["raw_put_MBps"]) if v]
                limit_name, limit = "the slower of raw GET and raw upload", min(candidates) if candidates else None
            skopeo = h.get("skopeo")
            for tool, t in h.items():
                mbps = img["bytes"] / MB / t["median_s"]
                ferry = tool.startswith("ferry")
                byte_bound = tool not in ("ferry-warm",)
                case = {
                    "family": family, "image": name, "tool": tool, "bytes": img["bytes"], **t,
                    "MBps": mbps,
                    "speedup_vs_skopeo": skopeo["median_s"] / t["median_s"] if ferry and skopeo else None,
                    "limit": limit_name if byte_bound else None,
                    "fraction_of_limit": mbps / limit if limit and byte_bound else None,
                    "fraction_of_sha256_1core":
                        mbps / limits["sha256_1core_MBps"]
                        if family == "pull" and byte_bound and limits["sha256_1core_MBps"] else None,
                }
                if tool == "ferry-warm" and "ferry-cold" in h:
                    case["speedup_vs_cold"] = h["ferry-cold"]["median_s"] / t["median_s"]
                m = measurement(out, "%s-%s-%s" % (family, name, tool))
                if m:
                    case["measured_run"] = m
                cases.append(case)
    return limits, cases


def main():
    out, doc_path, json_path = sys.argv[1:4]
    meta = load(os.path.join(out, "meta.json"))
    images = {n: load(os.path.join(out, "images", n + ".json")) for n in meta["images"]}
    every_image = {n: load(os.path.join(out, "images", n + ".json")) for n in meta.get("generated", meta["images"])}
    cores = meta["cores"]
    limits, cases = loopback(out, meta, images)
    link_cases = link.cases(out, every_image, hyperfine)
    fleet_sync = link.fleet_sync_cases(out, hyperfine)
    goals = link.goals(meta, limits, cases, link_cases)

    serve = {}
    for name, img in images.items():
        h = hyperfine(out, "serve-" + name)
        if not h:
            continue
        rss = {}
        rss_path = os.path.join(out, "serve-%s.rss" % name)
        if os.path.exists(rss_path):
            with open(rss_path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if v.strip():
                        rss[k] = int(v)
        first = load(os.path.join(out, "serve-%s-first.json" % name), {})
        serve[name] = {"bytes": img["bytes"], "timings": h, "server_peak_rss_kib": rss,
                       "ferry_serve_first_curl_s": first.get("first_curl_s"),
                       "clients": meta.get("serve_clients")}

    results = {"meta": meta, "images": {n: {k: v for k, v in i.items() if k not in ("blobs", "layout")}
                                        for n, i in images.items()},
               "limits": limits, "cases": cases, "link_cases": link_cases, "goals": goals, "serve": serve,
               "fleet_sync": fleet_sync}
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")

    # -------------------------------------------------------------------- doc
    notes = NOTES_PLACEHOLDER
    if os.path.exists(doc_path):
        old = open(doc_path).read()
        if NOTES_START in old and NOTES_END in old:
            notes = old.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0].strip("\n")
    w = []
    p = w.append
    v = meta["versions"]
    p("# Benchmarks")
    p("")
    if meta["quick"] or meta["runs"] < 3:
        p("> **Smoke-test numbers** (`bench/run%s`: %d run per case, images: %s). Not the published benchmark:"
          % (" --quick" if meta["quick"] else "", meta["runs"], ", ".join(meta["images"])))
        p("> run `bench/run` on a quiet machine for those.")
        p("")
    p("Generated by `bench/run` on %s at ferry commit `%s`. Machine: %d cores (%s), %.0f GiB RAM, Linux %s, "
      "work directory on %s; load average before the run %s, after %s. The run took %d min %d s."
      % (meta["date"][:10], meta["commit"], cores, meta["cpu"] or "unknown CPU", meta["memory_gib"],
         meta["kernel"], meta["filesystem"], meta["load_before"], meta["load_after"],
         meta["elapsed_s"] // 60, meta["elapsed_s"] % 60))
    p("")
    p("Versions: %s; %s; registry %s; %s; %s; %s."
      % (v["ferry"], v["skopeo"], v["registry"].replace("docker-registry ", ""), v["hyperfine"], v["curl"],
         v["openssl"]))
    p("")
    p("Each case ran %d time%s under hyperfine (median and min shown), then once more under `/usr/bin/time -v`"
      " for peak RSS and CPU time, with ferry at `-vv` to count its requests. MB = 10⁶ bytes; MB/s is the"
      " image's bytes (every blob) over the median time. **speed-up** = skopeo's median ÷ ferry's (> 1: ferry"
      " faster). **of limit** = ferry's MB/s ÷ the raw limit named in the table's caption."
      % (meta["runs"], "" if meta["runs"] == 1 else "s"))
    p("")

    p("## Images")
    p("")
    p("| image | platforms | layers | bytes (all blobs) | content |")
    p("|---|---|---|---|---|")
    for n, i in every_image.items():
        p("| %s | %s | %d | %s MB | %s |" % (n, ", ".join(i["platforms"]) + (" (%d images)" % len(i["images"])
                                                                               if "images" in i else ""),
                                            i["layers"], fmt(i["bytes"] / MB),
                                            "text-like" if i["content"] == "text" else "random"))
    p("")

    if limits:
        limits_section(p, meta, limits)
    loopback_section(p, meta, limits, cases)
    serve_section(p, meta, serve)
    link.section(p, meta, every_image, link_cases, goals, fmt)
    link.fleet_sync_section(p, fleet_sync, every_image, fmt)
    link.delta_section(p, load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "delta.json")), fmt)
    link.profile_section(p, out, meta)

    p("## Profile notes")
    p("")
    p(NOTES_START)
    p(notes)
    p(NOTES_END)
    p("")
    method_section(p, meta)
    os.makedirs(os.path.dirname(os.path.abspath(doc_path)), exist_ok=True)
    with open(doc_path, "w") as f:
        f.write("\n".join(w))


def limits_section(p, meta, limits):
    cores = meta["cores"]
    p("## Limits of this machine")
    p("")
    p("| limit | MB/s |")
    p("|---|---|")
    p("| sha256, one core (`openssl speed -evp sha256`, 1 MiB blocks) | %s |" % rate(limits["sha256_1core_MBps"]))
    p("| sha256, all %d cores (`-multi %d`) | %s |" % (cores, cores, rate(limits["sha256_allcores_MBps"])))
    p("| disk write, %d MiB with `dd conv=fdatasync` | %s |"
      % (limits["disk_write_bytes"] // MIB, rate(limits["disk_write_fdatasync_MBps"])))
    p("| one blob GET, curl → /dev/null (%s MB blob of %s) | %s |"
      % (fmt(limits["one_blob"]["bytes"] / MB), limits["one_blob"]["image"], rate(limits["curl_get_one_blob_MBps"])))
    p("| one blob monolithic upload, curl POST + PUT ?digest= (same blob, fresh repository) | %s |"
      % rate(limits["curl_put_one_blob_MBps"]))
    for n, l in limits["images"].items():
        p("| every blob of %s, curl GET, %d in parallel | %s |" % (n, meta["concurrency"], rate(l["curl_get_MBps"])))
        if l.get("curl_get_files_MBps"):
            p("| every blob of %s, curl GET to a file each (not hashed, not synced), %d in parallel | %s |"
              % (n, meta["concurrency"], rate(l["curl_get_files_MBps"])))
        p("| every blob of %s, raw upload (`bench/rawput.py`: POST + one PUT ?digest=), %d in parallel,"
          " fresh repository | %s |" % (n, meta["concurrency"], rate(l["raw_put_MBps"])))
        if l.get("raw_put_hash_MBps"):
            p("| every blob of %s, raw upload hashing what it sends (`rawput.py --hash`: sha256 as ferry checks it),"
              " %d in parallel, fresh repository | %s |" % (n, meta["concurrency"], rate(l["raw_put_hash_MBps"])))
    p("")


def loopback_section(p, meta, limits, cases):
    cores = meta["cores"]
    for family in ("pull", "push", "copy"):
        rows = [c for c in cases if c["family"] == family]
        if not rows:
            continue
        p("## " + FAMILY_TITLES[family])
        p("")
        limit_caption = {"pull": "curl GET of every blob, %d in parallel" % meta["concurrency"],
                         "push": "raw upload of every blob (POST + one PUT ?digest=), %d in parallel"
                                 % meta["concurrency"],
                         "copy": "the slower of the raw GET and the raw upload"}[family]
        p("Limit: %s, same image, same registry.%s" % (
            limit_caption, " The last column but one is the fraction of one core's sha256 throughput."
            if family == "pull" else ""))
        p("")
        head = ["image", "tool", "median s", "min s", "MB/s", "speed-up", "of limit"]
        if family == "pull":
            head.append("of sha256")
        head += ["peak RSS MiB", "CPU s tool / registry", "requests"]
        p("| " + " | ".join(head) + " |")
        p("|" + "---|" * len(head))
        for c in rows:
            m = c.get("measured_run") or {}
            cpu = "—"
            if "cpu_user_s" in m:
                cpu = "%s / %s" % (fmt(m["cpu_user_s"] + m["cpu_sys_s"]), fmt(m["registry_cpu_s"]))
            req = "—"
            if "registry_requests" in m:
                methods = ", ".join("%d %s" % (k, meth) for meth, k in m["registry_requests_by_method"].items())
                req = "%d (%s)" % (m["registry_requests"], methods)
                if "ferry_logged_requests" in m and m["ferry_logged_requests"] != m["registry_requests"]:
                    req += "; ferry logged %d" % m["ferry_logged_requests"]
            speed = ratio(c["speedup_vs_skopeo"])
            if c.get("speedup_vs_cold"):
                speed += " (%s vs cold)" % ratio(c["speedup_vs_cold"])
            row = [c["image"], TOOL_NAMES.get(c["tool"], c["tool"]), fmt(c["median_s"], 3), fmt(c["min_s"], 3),
                   rate(c["MBps"]), speed, pct(c["fraction_of_limit"])]
            if family == "pull":
                row.append(pct(c["fraction_of_sha256_1core"]))
            row += [fmt(m["peak_rss_kib"] / 1024, 1) if "peak_rss_kib" in m else "—", cpu, req]
            p("| " + " | ".join(row) + " |")
        p("")

    if not cases:
        return
    p("## What bounds each case")
    p("")
    p("Generated from the measured run of each case: CPU seconds of the tool and of the registries against the"
      " %d cores × wall time available, and MB/s against the limits above." % cores)
    p("")
    for c in cases:
        m = c.get("measured_run")
        if not c["tool"].startswith("ferry") or not m or "wall_s" not in m:
            continue
        tool_cpu = m["cpu_user_s"] + m["cpu_sys_s"]
        budget = cores * max(m["wall_s"], 1e-3)
        busy = (tool_cpu + m["registry_cpu_s"]) / budget
        # ferry fsyncs what it adds to its cache: a cold pull writes every byte through fdatasync
        syncs = c["family"] == "pull" and c["tool"] == "ferry-cold"
        disk = c["MBps"] / limits["disk_write_fdatasync_MBps"]
        no_cache = next((d for d in cases if d["family"] == "pull" and d["image"] == c["image"]
                         and d["tool"] == "ferry-no-cache"), None) if syncs else None
        sync_share = 1 - no_cache["median_s"] / c["median_s"] if no_cache else None
        parts = []
        if c["tool"] == "ferry-warm":
            n = m.get("registry_requests", 0)
            parts.append("no blob bytes move (hard links from the cache): %s s, %d request%s"
                         % (fmt(c["median_s"], 3), n, "" if n == 1 else "s"))
        else:
            if c["fraction_of_limit"] is not None:
                parts.append("%s of %s" % (pct(c["fraction_of_limit"]), c["limit"]))
            if c.get("fraction_of_sha256_1core") is not None:
                parts.append("%s of one core's sha256" % pct(c["fraction_of_sha256_1core"]))
            if syncs:
                parts.append("%s of the disk's synced write rate" % pct(disk))
        others = None
        if "machine_busy_cpu_s" in m:
            others = max(0.0, m["machine_busy_cpu_s"] - tool_cpu - m["registry_cpu_s"]) / budget
        if c["tool"] != "ferry-warm":
            parts.append("CPU %s s ferry + %s s registry = %s of %d cores"
                         % (fmt(tool_cpu), fmt(m["registry_cpu_s"]), pct(busy), cores))
            if busy >= 0.85:
                verdict = "CPU-bound: the machine's cores are saturated (the registry's share is %s)" % pct(
                    m["registry_cpu_s"] / max(tool_cpu + m["registry_cpu_s"], 1e-9))
            elif c["fraction_of_limit"] is not None and c["fraction_of_limit"] >= 0.8:
                verdict = "at the raw limit of the registry"
            elif sync_share is not None and sync_share >= 0.25:
                verdict = ("the synced writes into the cache: the same pull with `--no-cache` takes %s s,"
                           " %s less" % (fmt(no_cache["median_s"], 3), pct(sync_share)))
            elif syncs and disk >= 0.6:
                verdict = "most likely the synced writes into the cache"
            else:
                verdict = "neither the CPUs nor the raw limit are saturated: waiting (latency, serialization)"
            if others is not None and others >= 0.15:
                verdict += (" — but other processes used %s of the cores during the measured run, so this"
                            " reading is not trustworthy" % pct(others))
            parts.append("→ " + verdict)
        p("- **%s %s, %s**: %s." % (c["family"], c["image"], TOOL_NAMES.get(c["tool"], c["tool"]),
                                    "; ".join(parts)))
    p("")


def serve_section(p, meta, serve):
    for name, sv in serve.items():
        h, n = sv["timings"], sv["clients"] or 0
        p("## Serve: `ferry serve` vs the CNCF registry (%s)" % name)
        p("")
        p("The same image served by `ferry serve LAYOUT` (the generated layout, read in place) and by a fresh"
          " `docker-registry` seeded with skopeo; both on 127.0.0.1, plain HTTP. **ratio** = the registry's"
          " median ÷ ferry serve's (> 1: ferry serve faster). MB/s counts every byte the clients received.")
        p("")
        p("| clients | ferry serve median s | registry median s | ratio | ferry serve MB/s | registry MB/s |")
        p("|---|---|---|---|---|---|")
        for key, label, copies in (("pull", "`ferry pull --no-cache`", 1),
                                   ("curl", "curl, every blob, %d in parallel" % meta["concurrency"], 1),
                                   ("pulls", "%d `ferry pull --no-cache` at once" % n, n)):
            f, r = h.get("ferry-serve-" + key), h.get("registry-" + key)
            if not f or not r:
                continue
            mb = sv["bytes"] * copies / MB
            p("| %s | %s | %s | %s | %s | %s |" % (label, fmt(f["median_s"], 3), fmt(r["median_s"], 3),
                                                    ratio(r["median_s"] / f["median_s"]),
                                                    rate(mb / f["median_s"]), rate(mb / r["median_s"])))
        p("")
        rss = sv["server_peak_rss_kib"]
        if rss:
            p("Peak RSS of the servers over all of it (VmHWM): ferry serve %s MiB, docker-registry %s MiB."
              % (fmt(rss.get("ferry-serve", 0) / 1024, 1), fmt(rss.get("registry", 0) / 1024, 1)))
        if sv["ferry_serve_first_curl_s"] is not None:
            p("ferry serve hashes every blob before it first serves it (and remembers the file's stamp): the"
              " first curl pass, before the timed runs, took %s s." % fmt(sv["ferry_serve_first_curl_s"], 3))
        p("")


def method_section(p, meta):
    cores = meta["cores"]
    p("## Method")
    p("")
    p("- **Registry**: the CNCF distribution registry (`docker-registry` from Debian), filesystem storage in a"
      " temporary directory, plain HTTP on 127.0.0.1, log level error with the access log on (one line per"
      " request: the request counts above). A second instance is the destination of copies, so no copy can"
      " turn into a cross-repository mount.")
    p("- **Images** (`bench/gen.py`): deterministic, no two blobs shared. Every layer is a real gzip'd tar of one"
      " file, written with stored (level-0) deflate blocks, so the blob's bytes are the file's bytes: random"
      " (incompressible) for most images, log-like text for `compressible` (gzip -1 shrinks it about 2.4×)."
      " The registry never looks inside a layer and neither tool recompresses on these paths, so"
      " `compressible` only shows that nothing depends on the content. Configs and manifests are real OCI"
      " ones. The images are seeded with `skopeo copy oci:… docker://…` (not ferry) and their digests checked.")
    p("- **pull**: `ferry pull REF -o DIR --cache DIR --plain-http` (cold: the cache and the output removed"
      " before each run; warm: only the output removed, so blobs are hard-linked from the cache) against"
      " `skopeo copy docker://REF oci:DIR:v1`. `multi` is pulled whole (`--all-platforms`, `--all`).")
    p("- **push**: `ferry push LAYOUT --registry HOST/pushf --plain-http --no-checksum` against `skopeo copy"
      " oci:LAYOUT:REF docker://HOST/pushs/…`. Before every run the destination repository's directory is"
      " removed from the registry's storage, so the registry answers every HEAD with 404 and takes every"
      " byte again. The blob files themselves stay in storage (they are shared by content); the registry still"
      " receives, hashes and writes each upload and only skips the final rename.")
    p("- **pull `--no-cache`**: the same without the cache, so nothing is fsynced: the difference to the cold"
      " pull is the price of keeping a durable, verified cache.")
    p("- **copy**: `ferry copy SRC DEST --plain-http` with `--no-cache`, and with a cache warmed by an untimed"
      " `ferry pull` beforehand, against `skopeo copy docker://SRC docker://DEST`; fresh destination"
      " repositories as for push.")
    p("- skopeo's blob-info cache (`blob-info-cache-v1.*`) is removed before each skopeo run, so it cannot skip"
      " or mount blobs from memory of earlier runs.")
    p("- Every input is in the page cache (the machine has %.0f GiB); outputs are written to the same"
      " filesystem and not synced, except where a tool syncs itself (ferry fsyncs the blobs it adds to its"
      " cache: compare the `dd conv=fdatasync` limit)." % meta["memory_gib"])
    p("- The limits are what the machine and the registry do without any client logic, moving the same"
      " blobs at the same parallelism as ferry's default `--oci-concurrency` (%d): `curl --parallel` for GET"
      " (one process, to /dev/null), `bench/rawput.py` for uploads (POST, then one PUT ?digest= with the"
      " whole file, one kept-alive connection per worker, no HEAD, no hashing; Python rather than one curl"
      " per blob, whose ~15 ms start-up would dominate `many`), plus a single blob each way with curl"
      " (`bench/rawput`); `openssl speed` for sha256, `dd` for the disk. The tools and the registry share the same %d cores, so a tool's own CPU"
      " use slows the registry down. A limit is what a plain client gets, not a proof of a ceiling: ferry"
      " can exceed 100 %% of one (its chunked uploads, for example, are not curl's monolithic PUT), which"
      " means it is at the registry's own speed. Two limits do part of a tool's work, since a pull must keep"
      " what it fetches and ferry checks what it sends: curl GET to a file per blob (written, not hashed, not"
      " synced), and `rawput.py --hash` (the raw upload, hashing each file with OpenSSL's sha256 as it is"
      " sent)." % (meta["concurrency"], cores))
    p("- `large` and `compressible` are not copied, and `compressible` is not pushed, to keep the whole run"
      " well under 15 minutes on 2 cores; their pull cases cover them.")
    p("- Raw data: `bench/results.json` (every run's time, the limits, each measured run's RSS, CPU and"
      " requests by method).")
    link.method(p, meta)
    p("")


if __name__ == "__main__":
    main()
