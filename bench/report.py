#!/usr/bin/env python3
"""Tables of bench/run.sh: medians, same-round ratios, targets, footprint.

    report.py RESULTS FOOTPRINT CHART_TSV [STREAM_RESULTS] > tables.md

RESULTS rows: contender, size, inflight, run, client JSON, server CPU µs
per call, server peak RSS KiB. FOOTPRINT rows: server, metric, value.
Writes the chart data (payload 0: inflight, then calls/s and p99 per
contender) to CHART_TSV. STREAM_RESULTS rows (the streaming contenders):
contender, request bytes, streams, run, client JSON {"msgs_per_s",..},
server CPU µs per message, server peak RSS KiB; they make the streaming
table (messages/s per stream count, ÷ gRPC C++ streaming of the same round).
"""
import collections
import json
import math
import statistics
import sys

res_path, foot_path, chart_path = sys.argv[1:4]
stream_path = sys.argv[4] if len(sys.argv) > 4 else None

ORDER = ["echo", "cmicro", "cmicro-async", "cmicro-pool", "cmicro-wrk",
         "cmicro-before", "cmicro-async-before", "cmicro-wrk-before",
         "cmicro-proto",
         "cmicro-proto-wrk", "gomicro",
         "gomicro-wrk", "grpc", "cmicro-grpc", "cmicro-grpc-async", "nginx-wrk"]
DESC = {
    "echo": ("bench_echo server", "bench_echo client (epoll)"),
    "cmicro": ("greeter-server", "bench_greeter (cmicro client)"),
    "cmicro-async": ("greeter-server",
                     "bench_greeter --async (one loop thread, "
                     "micro_client_call_async)"),
    "cmicro-pool": ("greeter-server --no_inline", "bench_greeter"),
    "cmicro-wrk": ("greeter-server", "wrk -t1 greeter.lua"),
    "cmicro-before": ("greeter-server, pre-redesign",
                      "bench_greeter, pre-redesign"),
    "cmicro-async-before": ("greeter-server, pre-redesign",
                            "bench_greeter --async, pre-redesign"),
    "cmicro-wrk-before": ("greeter-server, pre-redesign",
                          "wrk -t1 greeter.lua"),
    "cmicro-proto": ("greeter-proto-server (protobuf)",
                     "bench_greeter --content_type application/protobuf"),
    "cmicro-proto-wrk": ("greeter-proto-server (protobuf)",
                         "wrk -t1 greeter.lua, BENCH_CODEC=protobuf"),
    "gomicro": ("Go Micro v4 server", "Go Micro v4 client"),
    "gomicro-wrk": ("Go Micro v4 server", "wrk -t1 greeter.lua"),
    "grpc": ("gRPC C++ (callback)", "gRPC C++ client (callback)"),
    "cmicro-grpc": ("greeter-proto-server --server=grpc (HTTP/2)",
                    "bench_greeter --client grpc (protobuf)"),
    "cmicro-grpc-async": ("greeter-proto-server --server=grpc (HTTP/2)",
                          "bench_greeter --client grpc --async (protobuf, "
                          "one loop thread)"),
    "nginx-wrk": ("nginx, fixed body", "wrk -t1 greeter.lua"),
}

runs = collections.defaultdict(dict)  # (c, size, k) -> run -> dict
for line in open(res_path):
    c, s, k, r, js, cpu, rss = line.rstrip("\n").split("\t")
    d = json.loads(js)
    d["cpu_us"] = float(cpu)
    d["rss_kb"] = float(rss) if rss else float("nan")
    runs[(c, int(s), int(k))][int(r)] = d


def med(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def field(key, f):
    return med([x.get(f) for x in runs.get(key, {}).values()])


def ratio(a, b, f, invert=False, table=None):
    """Median over rounds of a[f] / b[f], pairing runs of the same round."""
    table = runs if table is None else table
    ra, rb = table.get(a, {}), table.get(b, {})
    xs = []
    for r in ra:
        if r in rb and ra[r].get(f) and rb[r].get(f):
            xs.append(ra[r][f] / rb[r][f])
    return med(xs)


def fmt(x, spec="%.0f"):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) \
        else spec % x


def payload(s):
    return '"John"' if s == 0 else "%d B name" % s


out = []
p = out.append
if runs:
    p("| contender | server | load generator | payload | in flight | calls/s "
      "| p50 µs | p99 µs | p99.9 µs | server CPU µs/call | errors "
      "| calls/s ÷ echo | p50 ÷ echo |")
    p("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = sorted({s for (_, s, _) in runs})
    for s in sizes:
        for c in ORDER:
            for k in sorted({k for (cc, ss, k) in runs if cc == c and ss == s}):
                key = (c, s, k)
                errs = sum(int(x.get("errors", 0)) for x in runs[key].values())
                p("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %d | %s "
                  "| %s |" % (c, DESC[c][0], DESC[c][1], payload(s), k,
                              fmt(field(key, "calls_per_s")),
                              fmt(field(key, "p50_us"), "%.1f"),
                              fmt(field(key, "p99_us"), "%.1f"),
                              fmt(field(key, "p999_us"), "%.1f"),
                              fmt(field(key, "cpu_us"), "%.1f"), errs,
                              fmt(ratio(key, ("echo", s, k), "calls_per_s"),
                                  "%.2f"),
                              fmt(ratio(key, ("echo", s, k), "p50_us"), "%.2f")))
    p("")

# Footprint.
foot = collections.defaultdict(list)
for line in open(foot_path):
    srv, m, v = line.rstrip("\n").split("\t", 2)
    foot[(srv, m)].append(v)


def fnum(srv, m):
    xs = []
    for v in foot.get((srv, m), []):
        try:
            xs.append(float(v.split()[0]))
        except (ValueError, IndexError):
            pass
    return med(xs)


load_rss = collections.defaultdict(list)
for (c, s, k), rr in runs.items():
    srv = {"cmicro-wrk": "cmicro", "cmicro-async": "cmicro",
           "cmicro-async-before": "cmicro-before",
           "cmicro-wrk-before": "cmicro-before",
           "gomicro-wrk": "gomicro", "cmicro-proto-wrk": "cmicro-proto",
           "cmicro-grpc-async": "cmicro-grpc",
           "nginx-wrk": "nginx"}.get(c, c)
    if s == 0:
        load_rss[srv].extend(x["rss_kb"] for x in rr.values())
SRV_NAME = {"echo": "bench_echo server", "cmicro": "greeter-server",
            "cmicro-before": "greeter-server, pre-redesign",
            "cmicro-pool": "greeter-server --no_inline",
            "cmicro-proto": "greeter-proto-server",
            "gomicro": "Go Micro v4 server", "grpc": "gRPC C++ server",
            "cmicro-grpc": "greeter-proto-server --server=grpc",
            "nginx": "nginx (1 process)",
            "floor-empty": "floor: empty C program (glibc, ld.so)",
            "floor-deps": "floor: libuv + cJSON + http_parser + zlib, "
                          "listening, 2 threads (no cmicro)"}
p("| server | RSS at rest KiB | private (USS) at rest KiB | peak RSS under "
  "load KiB | bytes per idle connection | exec → serving ms | binary B "
  "(stripped) |")
p("|---|---:|---:|---:|---:|---:|---:|")
for srv in ["echo", "cmicro", "cmicro-before", "cmicro-pool",
            "cmicro-proto", "gomicro", "grpc", "cmicro-grpc", "nginx",
            "floor-empty",
            "floor-deps"]:
    if not foot.get((srv, "rss_rest")):
        continue
    b = foot.get((srv, "bin"), [""])[0].split()
    binsz = "%s (%s)" % (b[0], b[1]) if len(b) == 2 else "–"
    if srv == "cmicro":
        lib = foot.get(("cmicro", "lib"), [""])[0].split()
        if len(lib) == 2:
            binsz += " + libcmicro.so %s (%s)" % (lib[0], lib[1])
    if srv == "cmicro-pool":
        binsz = "same"
    if srv in ("cmicro-proto", "cmicro-grpc") and len(b) == 2:
        binsz += " + libcmicro.so"
    p("| %s | %s | %s | %s | %s | %s | %s |" % (
        SRV_NAME[srv], fmt(fnum(srv, "rss_rest")), fmt(fnum(srv, "uss_rest")),
        fmt(max(load_rss[srv]) if load_rss[srv] else float("nan")),
        fmt(fnum(srv, "idle_conn_b")), fmt(fnum(srv, "startup_ms"), "%.1f"),
        binsz))
p("")

# Targets of issue 6.
if runs:
    K = 64
    tg = []
    r_go = ratio(("cmicro-wrk", 0, K), ("gomicro-wrk", 0, K), "calls_per_s")
    tg.append(("server under wrk, 64 connections ÷ Go Micro v4", ">= 5x",
               fmt(r_go, "%.2fx"), r_go >= 5))
    r_ng = ratio(("cmicro-wrk", 0, K), ("nginx-wrk", 0, K), "calls_per_s")
    tg.append(("server under wrk, 64 connections ÷ nginx", ">= 70 %",
               fmt(r_ng * 100, "%.0f %%"), r_ng >= 0.70))
    r_gr = ratio(("cmicro", 0, K), ("grpc", 0, K), "calls_per_s")
    tg.append(("cmicro client+server, 64 in flight ÷ gRPC C++", ">= 1.5x",
               fmt(r_gr, "%.2fx"), r_gr >= 1.5))
    r_ga = ratio(("cmicro-async", 0, K), ("grpc", 0, K), "calls_per_s")
    tg.append(("cmicro async client (one loop thread)+server, 64 in flight ÷ "
               "gRPC C++", ">= 1.5x", fmt(r_ga, "%.2fx"), r_ga >= 1.5))
    r_gg = ratio(("cmicro-grpc", 0, K), ("grpc", 0, K), "calls_per_s")
    tg.append(("gRPC: cmicro client+server over HTTP/2, 64 in flight ÷ "
               "gRPC C++", ">= 1.5x", fmt(r_gg, "%.2fx"), r_gg >= 1.5))
    r_gga = ratio(("cmicro-grpc-async", 0, K), ("grpc", 0, K), "calls_per_s")
    tg.append(("gRPC: cmicro async client+server over HTTP/2, 64 in flight "
               "÷ gRPC C++", ">= 1.5x", fmt(r_gga, "%.2fx"), r_gga >= 1.5))
    r_p50 = ratio(("cmicro", 0, 1), ("echo", 0, 1), "p50_us")
    tg.append(("1 in flight p50 ÷ raw echo p50", "<= 1.5x",
               fmt(r_p50, "%.2fx"), r_p50 <= 1.5))
    rest = fnum("cmicro", "rss_rest")
    tg.append(("idle greeter-server RSS", "< 2048 KiB", fmt(rest, "%.0f KiB"),
               rest < 2048))
    idle = fnum("cmicro", "idle_conn_b")
    tg.append(("memory per idle connection", "< 4096 B", fmt(idle, "%.0f B"),
               idle < 4096))
    st = fnum("cmicro", "startup_ms")
    tg.append(("exec → serving", "< 10 ms", fmt(st, "%.1f ms"), st < 10))
    p("| target (issue 6) | goal | measured (median of same-round ratios) "
      "| met |")
    p("|---|---|---:|---|")
    for name, goal, v, ok in tg:
        p("| %s | %s | %s | %s |" % (name, goal, v, "yes" if ok else "**no**"))


# Before/after the I/O-core redesign (issue 10): every unary row of the
# pre-redesign build next to the same row now, same round; the redesign
# may not lose more than 5 % on any.
PAIRS = [("cmicro", "cmicro-before"), ("cmicro-async", "cmicro-async-before"),
         ("cmicro-wrk", "cmicro-wrk-before")]
brows = []
for after, before in PAIRS:
    for (c, s_, k) in sorted(runs):
        if c != after or (before, s_, k) not in runs:
            continue
        rc = ratio((after, s_, k), (before, s_, k), "calls_per_s")
        rp = ratio((after, s_, k), (before, s_, k), "p50_us")
        brows.append((after, s_, k, field((before, s_, k), "calls_per_s"),
                      field((after, s_, k), "calls_per_s"), rc, rp))
if brows:
    p("")
    p("| row | payload | in flight | calls/s before | calls/s after "
      "| after ÷ before (calls/s) | after ÷ before (p50) | within 5 % |")
    p("|---|---|---:|---:|---:|---:|---:|---|")
    for after, s_, k, b, a, rc, rp in brows:
        ok = not math.isnan(rc) and rc >= 0.95
        p("| %s | %s | %d | %s | %s | %s | %s | %s |" % (
            after, payload(s_), k, fmt(b), fmt(a), fmt(rc, "%.3f"),
            fmt(rp, "%.3f"), "yes" if ok else "**no**"))

# Streaming (bench/run.sh streaming contenders): messages/s per number of
# streams, and the ratio to gRPC C++ streaming of the same round.
SORDER = ["cmicro-stream", "cmicro-stream-async", "cmicro-grpc-stream",
          "cmicro-grpc-stream-async", "gomicro-stream", "grpc-stream"]
SDESC = {
    "cmicro-stream": ("greeter-server",
                      "bench_stream (one micro_client; a sender and a "
                      "receiver thread per stream)"),
    "cmicro-stream-async": ("greeter-server",
                            "bench_stream --async 128 (one loop thread, "
                            "the asynchronous API, 128 in flight per "
                            "stream)"),
    "cmicro-grpc-stream": ("greeter-proto-server --server=grpc",
                           "bench_stream --client grpc (protobuf; a sender "
                           "and a receiver thread per stream)"),
    "cmicro-grpc-stream-async": ("greeter-proto-server --server=grpc",
                                 "bench_stream --client grpc --async 128 "
                                 "(one loop thread)"),
    "gomicro-stream": ("Go Micro v4 server",
                       "Go Micro v4 client (bench/go/streamclient; a "
                       "connection per stream, 256 messages in flight)"),
    "grpc-stream": ("gRPC C++ (callback)",
                    "gRPC C++ callback client, one channel"),
}
sruns = collections.defaultdict(dict)  # (c, size, streams) -> run -> dict
if stream_path:
    for line in open(stream_path):
        c, sz, k, r, js, cpu, rss = line.rstrip("\n").split("\t")
        d = json.loads(js)
        d["cpu_us"] = float(cpu)
        d["rss_kb"] = float(rss) if rss else float("nan")
        sruns[(c, int(sz), int(k))][int(r)] = d
if sruns:
    ks = sorted({k for (_, _, k) in sruns})
    head = "| contender | server | load generator | request B |"
    rule = "|---|---|---|---:|"
    for k in ks:
        head += " msgs/s, %d stream%s | ÷ gRPC C++ |" % (
            k, "" if k == 1 else "s")
        rule += "---:|---:|"
    head += (" server CPU µs/msg, %d streams | server peak RSS KiB, %d"
             " streams | errors |" % (ks[-1], ks[-1]))
    rule += "---:|---:|---:|"
    p("")
    p(head)
    p(rule)
    for sz in sorted({sz for (_, sz, _) in sruns}):
        for c in SORDER:
            if not any(cc == c and ss == sz for (cc, ss, _) in sruns):
                continue
            row = "| %s | %s | %s | %d |" % (c, SDESC[c][0], SDESC[c][1], sz)
            errs = 0
            for k in ks:
                key = (c, sz, k)
                rr = sruns.get(key, {})
                errs += sum(int(x.get("errors", 0)) for x in rr.values())
                m = med([x.get("msgs_per_s") for x in rr.values()])
                q = ratio(key, ("grpc-stream", sz, k), "msgs_per_s",
                          table=sruns)
                row += " %s | %s |" % (fmt(m), fmt(q, "%.2f"))
            cpu = med([x.get("cpu_us")
                       for x in sruns.get((c, sz, ks[-1]), {}).values()])
            rss = med([x.get("rss_kb")
                       for x in sruns.get((c, sz, ks[-1]), {}).values()])
            row += " %s | %s | %d |" % (fmt(cpu, "%.1f"), fmt(rss, "%.0f"),
                                        errs)
            p(row)

print("\n".join(out))

# Chart data: payload 0, one column pair per contender.
cs = [c for c in ORDER if any(cc == c and s == 0 for (cc, s, _) in runs)]
ks = sorted({k for (c, s, k) in runs if s == 0 and c in cs})
with open(chart_path, "w") as f:
    f.write("inflight\t" + "\t".join("%s\t%s_p99" % (c, c) for c in cs)
            + "\n")
    for k in ks:
        row = [str(k)]
        for c in cs:
            key = (c, 0, k)
            if key in runs and k in {kk for (_, _, kk) in runs}:
                row += [fmt(field(key, "calls_per_s"), "%.0f").replace(
                    "–", "NaN"),
                    fmt(field(key, "p99_us"), "%.1f").replace("–", "NaN")]
            else:
                row += ["NaN", "NaN"]
        f.write("\t".join(row) + "\n")
