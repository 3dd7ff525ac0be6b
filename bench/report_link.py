"""The link and fleet suites of bench/run (through bench's link emulator, `ferry-link`), the bound each case
is held against, issue 17's targets, and the profile data. Used by report.py.

The bound of a case is what an ideal client needs on the emulated link at the default concurrency C (6):

    bound = RTT × (1 + rounds) + bytes ÷ min(link rate, C × connection rate)

1 round trip for the TCP handshakes (made in parallel); `rounds` the round trips the protocol needs, C requests
at a time: pull = 1 (the manifest) + ⌈blobs ÷ C⌉; push = 2 × ⌈blobs ÷ C⌉ (POST opens an upload session, PUT
?digest= carries the blob; an existence HEAD is not counted) + 1 (the manifest PUT); a fleet of N images =
max(2, ⌈(N manifests + blobs) ÷ C⌉) (one budget across images, blobs requested as soon as their manifest is
parsed). Bytes are every blob's, manifests included; C connections may split one blob into ranges, so a
single layer can use C × the connection rate. The emulator is an ideal link (no loss, no slow start), so the
bound is optimistic for every client.
"""
import math
import os
import statistics

MB = 1e6
MIB = 1 << 20
TOOLS = {"ferry": "ferry", "skopeo": "skopeo", "skopeo-sync": "`skopeo sync`"}
FAMILIES = {"pull": "pull", "push": "push", "fleet": "fleet pull"}
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def bytes_per_s(text):
    for unit in sorted(RATE_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * RATE_UNITS[unit] / 8
    raise ValueError("rate " + text)


def profiles(out):
    path = os.path.join(out, "link-profiles.txt")
    if not os.path.exists(path):
        return []
    result = []
    for line in open(path):
        name, delay, rate, link_rate = line.split()
        result.append({"name": name, "rtt_s": 2 * int(delay) / 1000, "rate": rate, "link_rate": link_rate,
                       "rate_Bps": bytes_per_s(rate), "link_rate_Bps": bytes_per_s(link_rate)})
    return result


def peak_rss_kib(out, case_id):
    path = os.path.join(out, "rss", case_id + ".txt")
    if not os.path.exists(path):
        return None
    values = [int(v) for v in open(path).read().split() if v.isdigit()]
    return max(values) if values else None


def bound(family, img, prof, concurrency):
    """(seconds, round trips) for the case; see the module's docstring."""
    blobs = sum(1 for b in img["blobs"] if b["kind"] in ("layer", "config"))
    manifests = len(img["blobs"]) - blobs
    if family == "pull":
        rounds = 1 + math.ceil(blobs / concurrency)
    elif family == "push":
        rounds = 2 * math.ceil(blobs / concurrency) + 1
    else:
        rounds = max(2, math.ceil((manifests + blobs) / concurrency))
    bandwidth = min(prof["link_rate_Bps"], concurrency * prof["rate_Bps"])
    return prof["rtt_s"] * (1 + rounds) + img["bytes"] / bandwidth, 1 + rounds


def cases(out, images, hyperfine):
    meta_concurrency = 6
    result = []
    for prof in profiles(out):
        for family in FAMILIES:
            for name, img in images.items():
                case_id = "link-%s-%s-%s" % (prof["name"], family, name)
                h = hyperfine(out, case_id)
                if not h:
                    continue
                seconds, rtts = bound(family, img, prof, meta_concurrency)
                for tool, t in h.items():
                    rival = h.get("skopeo-sync" if family == "fleet" else "skopeo")
                    result.append({
                        "profile": prof["name"], "rtt_s": prof["rtt_s"], "rate": prof["rate"],
                        "link_rate": prof["link_rate"], "family": family, "image": name, "tool": tool,
                        "bytes": img["bytes"], "bound_s": seconds, "bound_round_trips": rtts, **t,
                        "over_bound": t["median_s"] / seconds,
                        "speedup_vs_skopeo": h["skopeo"]["median_s"] / t["median_s"]
                        if tool == "ferry" and "skopeo" in h else None,
                        "speedup_vs_skopeo_sync": h["skopeo-sync"]["median_s"] / t["median_s"]
                        if tool == "ferry" and "skopeo-sync" in h else None,
                        "ferry_over_rival": t["median_s"] / rival["median_s"] if tool == "ferry" and rival else None,
                        "peak_rss_kib": peak_rss_kib(out, "%s-%s" % (case_id, tool)),
                    })
    return result


def fleet_sync_cases(out, hyperfine):
    """`ferry sync` against `skopeo sync` on the fleet (same YAML, one process each), per path."""
    result = []
    paths = [("loopback", "loopback", 0)] + [(p["name"], "link " + p["name"], p["rtt_s"]) for p in profiles(out)]
    for name, label, rtt in paths:
        h = hyperfine(out, "fleetsync-" + name)
        if not h or "ferry-sync" not in h or "skopeo-sync" not in h:
            continue
        load_path = os.path.join(out, "fleetsync-%s.load" % name)
        load = [l.strip() for l in open(load_path)] if os.path.exists(load_path) else []
        result.append({
            "path": label, "rtt_s": rtt, "ferry_sync": h["ferry-sync"], "skopeo_sync": h["skopeo-sync"],
            "skopeo_over_ferry": h["skopeo-sync"]["median_s"] / h["ferry-sync"]["median_s"],
            "load": load,
            "peak_rss_kib": {t: peak_rss_kib(out, "fleetsync-%s-%s" % (name, t)) for t in ("ferry-sync", "skopeo-sync")},
        })
    return result


def fleet_sync_section(p, cases, images, fmt):
    if not cases:
        return
    fleet = images.get("fleet", {})
    p("## Fleet: `ferry sync` vs `skopeo sync`")
    p("")
    p("The same sync file (%s images of the fleet, one tag each) read by both tools, one process each, into an"
      " empty directory: `ferry sync -f FILE oci:DIR --no-cache` (an OCI layout) and `skopeo sync --src yaml"
      " --dest dir FILE DIR` (skopeo's directories). **ratio** = `skopeo sync`'s median ÷ `ferry sync`'s. The"
      " load average (1, 5, 15 min) is read before and after each pair of cases: other builds shared the"
      " machine." % len(fleet.get("images", [])))
    p("")
    p("| path | ferry sync median s (min) | skopeo sync median s (min) | ratio | peak RSS MiB ferry / skopeo |"
      " load before → after |")
    p("|---|---|---|---|---|---|")
    for c in cases:
        rss = c["peak_rss_kib"]
        p("| %s%s | %s (%s) | %s (%s) | %.2f× | %s / %s | %s |" % (
            c["path"], " (%d ms RTT)" % round(c["rtt_s"] * 1000) if c["rtt_s"] else "",
            fmt(c["ferry_sync"]["median_s"], 3), fmt(c["ferry_sync"]["min_s"], 3),
            fmt(c["skopeo_sync"]["median_s"], 3), fmt(c["skopeo_sync"]["min_s"], 3), c["skopeo_over_ferry"],
            "—" if rss["ferry-sync"] is None else fmt(rss["ferry-sync"] / 1024, 1),
            "—" if rss["skopeo-sync"] is None else fmt(rss["skopeo-sync"] / 1024, 1),
            " → ".join(c["load"]) or "—"))
    p("")


def delta_section(p, delta, fmt):
    """bench/delta's results (bench/delta.json), when that script has been run."""
    if not delta:
        return
    spec = delta["spec"]
    p("## Deltas: `export --since` and the push that completes it")
    p("")
    p("`bench/delta` (%s): %d images on one shared base of %s MB, each with its own %s MB layer; v2 rebuilds %d"
      " of them and adds %d. v2 exported whole and as a delta on the v1 archive; each pushed (`ferry push"
      " oci-archive:…`) onto a fresh registry holding v1, %d runs each (median, min). After the runs, %d"
      " images of the delta's far side were identical by digest to a direct push of v2. Load average %s before,"
      " %s after, on %d cores shared with other builds."
      % (delta["ferry"], spec["images"], fmt(sum(spec["base"]) / MB, 0), fmt(spec["own"] / MB, 0),
         spec["rebuilt"], spec["added"], delta["push"]["delta"]["runs"], delta["identical_images"],
         delta["load_before"], delta["load_after"], delta["cores"]))
    p("")
    p("| | whole v2 | delta on v1 | delta ÷ whole |")
    p("|---|---|---|---|")
    p("| archive bytes | %s MB | %s MB | %.3f |" % (
        fmt(delta["full_archive_bytes"] / MB, 1), fmt(delta["delta_archive_bytes"] / MB, 1),
        delta["delta_archive_bytes"] / delta["full_archive_bytes"]))
    for what, label in (("export", "export, s"), ("push", "push onto v1, s")):
        f, d = delta[what]["full"], delta[what]["delta"]
        p("| %s | %s (%s) | %s (%s) | %.2f |" % (label, fmt(f["median_s"], 3), fmt(f["min_s"], 3),
                                                fmt(d["median_s"], 3), fmt(d["min_s"], 3),
                                                d["median_s"] / f["median_s"]))
    p("")


def find(cases, **keys):
    return next((c for c in cases if all(c.get(k) == v for k, v in keys.items())), None)


def goals(meta, limits, loop_cases, link_cases):
    """Issue 17's 'done when', each with what this run measured (None: not measured in this run)."""
    g = []

    def add(target, value, met, note=""):
        g.append({"target": target, "value": value, "met": met, "note": note})

    many = find(link_cases, profile="1gbit", family="pull", image="many", tool="ferry")
    add("50 ms RTT: pull many ≥ 2× skopeo", many and many["speedup_vs_skopeo"],
        many and many["speedup_vs_skopeo"] >= 2, "×")
    add("50 ms RTT: pull many within 1.3× of the round-trip bound", many and many["over_bound"],
        many and many["over_bound"] <= 1.3, "× bound")
    fleet = find(link_cases, family="fleet", tool="ferry")
    add("50 ms RTT: 30-image fleet ≥ 8× `skopeo sync`", fleet and fleet["speedup_vs_skopeo_sync"],
        fleet and fleet["speedup_vs_skopeo_sync"] and fleet["speedup_vs_skopeo_sync"] >= 8, "×")
    huge = find(link_cases, profile="100mbit", family="pull", image="huge", tool="ferry")
    add("50 ms RTT, 100 Mbit/s per connection: 2 GB single-layer pull ≥ 3× skopeo",
        huge and huge["speedup_vs_skopeo"], huge and huge["speedup_vs_skopeo"] >= 3, "×")
    cold_over = []
    for c in loop_cases:
        if c["family"] == "pull" and c["tool"] == "ferry-cold":
            nc = find(loop_cases, family="pull", image=c["image"], tool="ferry-no-cache")
            if nc:
                cold_over.append((c["median_s"] / nc["median_s"], c["image"]))
    worst = max(cold_over) if cold_over else None
    add("loopback: cold pull (cache on) within 15 %% of `--no-cache` (worst image: %s)" % (worst[1] if worst else "—"),
        worst and worst[0], worst and worst[0] <= 1.15, "× `--no-cache`")
    lim_many = limits.get("images", {}).get("many") if limits else None
    for tool in ("ferry-cold", "ferry-no-cache"):
        c = find(loop_cases, family="pull", image="many", tool=tool)
        for limit, what in (("curl-get-files", "to files"), ("curl-get", "to /dev/null")):
            curl = lim_many and lim_many["timings"].get(limit)
            v = c and curl and c["median_s"] / curl["median_s"]
            add("loopback: pull many (%s) within 10 %% of curl's parallel GET %s" % (tool.replace("ferry-", ""), what),
                v, v and v <= 1.10, "× curl")
    pushes = [c for c in loop_cases if c["family"] == "push" and c["tool"] == "ferry" and c["fraction_of_limit"]]
    worst_push = min(pushes, key=lambda c: c["fraction_of_limit"]) if pushes else None
    add("loopback: push ≥ 95 %% of the raw upload rate (worst image: %s)" % (worst_push["image"] if worst_push else "—"),
        worst_push and 100 * worst_push["fraction_of_limit"], worst_push and worst_push["fraction_of_limit"] >= 0.95,
        "%")
    # The same against a raw upload that hashes what it sends: ferry checks every blob before the registry
    # may keep it, and on 2 cores that sha256 takes CPU the registry needs.
    hashed = []
    for c in pushes:
        lim = (limits or {}).get("images", {}).get(c["image"], {}).get("raw_put_hash_MBps")
        if lim:
            hashed.append((c["MBps"] / lim, c["image"]))
    worst_hashed = min(hashed) if hashed else None
    add("loopback: push ≥ 95 %% of a raw upload that hashes what it sends (worst image: %s)"
        % (worst_hashed[1] if worst_hashed else "—"),
        worst_hashed and 100 * worst_hashed[0], worst_hashed and worst_hashed[0] >= 0.95, "%")
    warm = [c for c in loop_cases if c.get("speedup_vs_cold")]
    worst_warm = min(warm, key=lambda c: c["speedup_vs_cold"]) if warm else None
    add("loopback: warm pull ≥ 20× cold (worst image: %s)" % (worst_warm["image"] if worst_warm else "—"),
        worst_warm and worst_warm["speedup_vs_cold"], worst_warm and worst_warm["speedup_vs_cold"] >= 20, "×")
    rss = [(c["measured_run"]["peak_rss_kib"], "%s %s %s" % (c["family"], c["image"], c["tool"]))
           for c in loop_cases if c["tool"].startswith("ferry") and "peak_rss_kib" in c.get("measured_run", {})]
    rss += [(c["peak_rss_kib"], "%s %s %s %s" % (c["profile"], c["family"], c["image"], c["tool"]))
            for c in link_cases if c["tool"] == "ferry" and c["peak_rss_kib"]]
    top = max(rss) if rss else None
    add("peak RSS ≤ 64 MiB in every ferry case (largest: %s)" % (top[1] if top else "—"),
        top and top[0] / 1024, top and top[0] / 1024 <= 64, "MiB")
    return g


def section(p, meta, images, link_cases, goals_list, fmt):
    if link_cases:
        p("## Through an emulated link")
        p("")
        p("`ferry-link` (crates/ferry-test, `[[bin]]`) sits between the tools and the source registry: a TCP proxy"
          " that delays every byte by half the round trip in each direction (plus one round trip before a new"
          " connection's first byte, its handshake) and paces each connection and the whole link with token"
          " buckets. **× skopeo** = skopeo's median ÷ ferry's (for the fleet: ÷ `skopeo sync`'s); **÷ bound** ="
          " the tool's median ÷ the bound (1.00 = as fast as an ideal client). Bound = RTT × (1 + round trips"
          " the protocol needs at concurrency %d) + bytes ÷ min(link rate, %d × connection rate); see Method."
          % (meta["concurrency"], meta["concurrency"]))
        p("")
        p("| RTT, per connection / link | case | image | tool | median s | min s | × skopeo | bound s (RTTs) |"
          " ÷ bound | peak RSS MiB |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        for c in link_cases:
            sp = c["speedup_vs_skopeo_sync"] if c["family"] == "fleet" else c["speedup_vs_skopeo"]
            p("| %d ms, %s / %s | %s | %s | %s | %s | %s | %s | %s (%d) | %s | %s |" % (
                round(c["rtt_s"] * 1000), c["rate"], c["link_rate"], FAMILIES[c["family"]], c["image"],
                TOOLS.get(c["tool"], c["tool"]), fmt(c["median_s"], 3), fmt(c["min_s"], 3),
                "—" if sp is None else "%.2f×" % sp, fmt(c["bound_s"], 3), c["bound_round_trips"],
                "%.2f" % c["over_bound"], "—" if c["peak_rss_kib"] is None else fmt(c["peak_rss_kib"] / 1024, 1)))
        p("")
    if goals_list:
        p("## Issue 17's targets in this run")
        p("")
        p("| target | measured | met |")
        p("|---|---|---|")
        for g in goals_list:
            value = "not measured" if g["value"] is None else "%s %s" % (fmt(g["value"], 2), g["note"])
            met = "—" if g["value"] is None else ("yes" if g["met"] else "**no**")
            p("| %s | %s | %s |" % (g["target"], value, met))
        p("")


def profile_section(p, out, meta):
    d = os.path.join(out, "profile")
    if not os.path.exists(os.path.join(d, "pull.stat")):
        return
    blobs = int(open(os.path.join(d, "blobs")).read().strip())
    p("## Profile data (cold pull and push of %s, %d blobs)" % (meta.get("profile_image") or "?", blobs))
    p("")
    p("Recorded by `bench/run --suites profile` (perf stat, `perf report --no-children --sort dso,symbol`, "
      "`strace -c -f`, the registry's access log); the interpretation is in the profile notes below.")
    p("")
    for kind in ("pull", "push"):
        p("### %s" % kind)
        p("")
        p("```")
        for part in ("requests", "stat", "strace", "perf.txt"):
            path = os.path.join(d, "%s.%s" % (kind, part))
            if os.path.exists(path):
                lines = [l.rstrip() for l in open(path) if l.strip() and not l.startswith("#")]
                p("# %s" % {"requests": "requests by method (registry access log)", "stat": "perf stat",
                             "strace": "strace -c -f (top 15)", "perf.txt": "perf: dso, symbol (≥ 1 %)"}[part])
                p("\n".join(lines[: 18 if part == "strace" else 40]))
        p("```")
        p("")


def method(p, meta):
    if "link" not in meta.get("suites", []) and "fleet" not in meta.get("suites", []):
        return
    p("- **Link** (`ferry-link`, one process per profile, in front of the source registry): each direction of"
      " each connection is paced by its own token bucket (the per-connection rate) and by one shared by all"
      " connections (the link rate), then delayed by half the RTT; bytes in flight per connection and"
      " direction are capped at twice the bandwidth-delay product, so memory stays bounded and a receiver"
      " that stops reading stops the sender. A new connection's first byte waits one more round trip (the"
      " handshake). No loss, no slow start: an ideal link.")
    p("- **Link cases**: `ferry pull REF -o DIR --cache DIR` (cold cache: both removed before each run) against"
      " `skopeo copy docker://REF oci:DIR:v1`; `ferry push` against `skopeo copy oci:… docker://…` into fresh"
      " repositories. The 2 GB push is not run at a per-connection cap below the link rate: one blob's upload"
      " is one session of ordered requests for any client, so both tools take size ÷ connection rate.")
    p("- **Fleet**: %s" % "30 images of a config and two 512 kB layers, nothing shared; `ferry pull -f LIST"
      " -o DIR --cache DIR` (one run, one budget) against 30 `skopeo copy` runs one after the other into one"
      " layout, and `skopeo sync --src yaml --dest dir` (one process, images one after the other).")
    p("- **Bound**: " + __doc__.split("\n\n")[1].replace("\n", " ").strip())
    p("- **Peak RSS** in the link cases is the largest `/usr/bin/time` maximum resident set over the timed runs"
      " (each run is wrapped by it).")
