#!/usr/bin/env python3
"""The model proxy: the latency it adds to each request, and its memory with many runs.

    python3 benchmarks/proxy.py [--requests 50] [--events 30] [--event-delay 0.002] [--runs 8]

Latency: one `patina yolo` run whose agent, inside the real sandbox, sends
--requests streamed Messages requests to its run's proxy and as many straight to
the fake model (allowed for this run only, with --allow GATEWAY:PORT),
alternating which goes first. Each request is timed in the sandbox with bash's
$EPOCHREALTIME over /dev/tcp (HTTP/1.0, so both answers end when the connection
closes): time to the first SSE event line, and to the end of the answer. The fake
streams --events text deltas --event-delay seconds apart. The proxy's own view
(api.jsonl: first_byte_ms, latency_ms from the request read to the answer's end,
upstream included) is reported beside it.

Memory: patina's resident memory (VmRSS sampled every 0.1 s, and VmHWM) during a
batch of --runs runs at --jobs --runs in which every agent streams
--memory-requests requests through its proxy at the same time, against the same
batch whose agents only sleep (idle proxies), and one run alone with traffic.
With --baseline-patina (a patina built from before the proxy, whose agents talk to
the fake directly), the same batches run with it too, interleaved.
"""

import argparse
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path

from common import (FakeModel, GATEWAY, Workspace, add_common_args, check_prerequisites, log, run_patina, table,
                    write_results)

CLIENT = r'''
body='{"model":"claude-opus-5-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"benchmark"}]}'
proxy=${ANTHROPIC_BASE_URL#http://}
req() {  # kind host port key
  local t0=$EPOCHREALTIME first="" status="" line
  exec 3<>/dev/tcp/$2/$3 || { echo "R $1 fail"; return; }
  printf 'POST /v1/messages HTTP/1.0\r\nHost: %s:%s\r\ncontent-type: application/json\r\nx-api-key: %s\r\nanthropic-version: 2023-06-01\r\nContent-Length: %d\r\n\r\n%s' "$2" "$3" "$4" ${#body} "$body" >&3
  while IFS= read -r line <&3; do
    [ -z "$status" ] && status=${line:9:3}
    if [ -z "$first" ] && [ "${line:0:6}" = "event:" ]; then first=$EPOCHREALTIME; fi
  done
  local t1=$EPOCHREALTIME
  exec 3<&-
  echo "R $1 $t0 ${first:-0} $t1 $status"
}
for i in $(seq 1 N_REQUESTS); do
  if [ $((i % 2)) -eq 1 ]; then
    req proxy ${proxy%:*} ${proxy#*:} "$ANTHROPIC_API_KEY"; DIRECT_LINE
  else
    DIRECT_LINE; req proxy ${proxy%:*} ${proxy#*:} "$ANTHROPIC_API_KEY"
  fi
done
echo CLIENT-DONE
'''


def client(requests, fake_port=None):
    direct = f"req direct {GATEWAY} {fake_port} sk-direct" if fake_port else ":"
    return CLIENT.replace("N_REQUESTS", str(requests)).replace("DIRECT_LINE", direct).strip()


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def stats(values):
    return {"median": statistics.median(values), "p95": percentile(values, 95), "min": min(values),
            "max": max(values), "n": len(values)} if values else None


def tool_output(fake):
    out = []
    for request in fake.requests():
        if request.get("kind") == "main":
            out += [r.get("content", "") for r in request.get("new_tool_results") or []]
    return "\n".join(out)


def latency(args, ws):
    fake = FakeModel(ws.dir, {"turns": [], "side_text": "x" * 40 * args.events, "event_delay": args.event_delay},
                     name="latency")
    script = {"turns": [{"tool": "Bash", "input": {"command": client(args.requests, fake.port),
                                                    "description": "benchmark", "timeout": 600000}},
                        {"text": "Done."}],
              "side_text": "x" * 40 * args.events, "event_delay": args.event_delay}
    fake.script.write_text(json.dumps(script))
    log(f"latency: {args.requests} streamed requests through the proxy and {args.requests} direct, alternating ...")
    _, record = run_patina(args, ws, fake, "proxy latency", ["--allow", f"{GATEWAY}:{fake.port}", "--timeout", "15m"])
    text = tool_output(fake)
    if "CLIENT-DONE" not in text:
        raise RuntimeError(f"the client did not finish: {text[-800:]}")
    samples = {"proxy": [], "direct": []}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] == "R":
            kind, t0, first, t1, status = parts[1], float(parts[2]), float(parts[3]), float(parts[4]), parts[5]
            if status != "200" or first == 0:
                raise RuntimeError(f"a {kind} request failed: {line}")
            samples[kind].append({"first_ms": (first - t0) * 1000, "total_ms": (t1 - t0) * 1000})
    api = [json.loads(line) for line in (Path(record["run_dir"]) / "api.jsonl").read_text().splitlines()]
    proxy_view = [e for e in api if e.get("requested_model") == "claude-opus-5-5" and e.get("tools") == 0]
    fake.stop()
    return samples, proxy_view, record


def rss_sampler(pid, stop, out):
    peak = 0.0
    while not stop.is_set():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            break
        fields = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith(("VmRSS", "VmHWM", "Threads"))}
        rss = int(fields.get("VmRSS", 0)) / 1024
        out.setdefault("rss", []).append(rss)
        out["hwm"] = int(fields.get("VmHWM", 0)) / 1024
        out["threads"] = max(out.get("threads", 0), int(fields.get("Threads", 0)))
        time.sleep(0.1)


def batch_memory(args, ws, fake, runs, label, patina):
    tasks = ws.dir / f"{label}.txt"
    tasks.write_text("".join(f"memory {label} {i}\n" for i in range(runs)))
    cmd = [patina, "batch", "--agent-binary", args.agent_binary, "--base-image", args.base_image,
           "--jobs", str(runs), "--quiet", "--json", str(tasks)]
    proc = subprocess.Popen(cmd, cwd=ws.repo, env=fake.env({"PATINA_HOME": str(ws.home)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, out = threading.Event(), {}
    sampler = threading.Thread(target=rss_sampler, args=(proc.pid, stop, out))
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    record = json.loads(stdout) if stdout.strip() else {}
    statuses = [r.get("status") for r in record.get("runs", [])]
    if proc.returncode != 0 or statuses.count("succeeded") != runs:
        raise RuntimeError(f"batch {label} failed (exit {proc.returncode}): {statuses} {stderr[-800:]}")
    requests = sum(r.get("requests") or 0 for r in record.get("runs", []))
    return {"label": label, "runs": runs, "peak_rss_mib": max(out.get("rss", [0])), "hwm_mib": out.get("hwm"),
            "max_threads": out.get("threads"), "proxied_requests": requests}


def memory(args, ws):
    loaded = FakeModel(ws.dir, {"turns": [{"tool": "Bash", "input": {"command": client(args.memory_requests),
                                                                      "description": "traffic", "timeout": 600000}},
                                          {"text": "Done."}],
                                "side_text": "x" * 40 * args.events, "event_delay": args.event_delay}, name="loaded")
    idle = FakeModel(ws.dir, {"turns": [{"tool": "Bash", "input": {"command": f"sleep {args.idle_seconds}",
                                                                    "description": "wait"}},
                                        {"text": "Done."}]}, name="idle")
    rows = []
    binaries = [("patina", args.patina)] + ([("before the proxy", args.baseline_patina)] if args.baseline_patina else [])
    for fake, runs, label in [(loaded, 1, "1 run, streaming"), (idle, args.runs, f"{args.runs} runs, idle"),
                              (loaded, args.runs, f"{args.runs} runs, all streaming")]:
        for name, patina in binaries:
            full = f"{name}: {label}"
            log(f"memory: {full} ...")
            rows.append(batch_memory(args, ws, fake, runs, full.replace(" ", "-").replace(",", "").replace(":", ""), patina))
            rows[-1]["label"] = full
            rows[-1]["binary"] = name
    loaded.stop()
    idle.stop()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--requests", type=int, default=50, help="streamed requests each way for the latency")
    parser.add_argument("--events", type=int, default=30, help="text deltas in each streamed answer")
    parser.add_argument("--event-delay", type=float, default=0.002, help="seconds between the fake's events")
    parser.add_argument("--runs", type=int, default=8, help="runs at once for the memory figure")
    parser.add_argument("--memory-requests", type=int, default=50, help="streamed requests per run for the memory figure")
    parser.add_argument("--idle-seconds", type=float, default=15, help="how long idle agents wait")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--baseline-patina", default=None,
                        help="a patina built from before the proxy, for the memory baseline")
    args = parser.parse_args()
    check_prerequisites(args)

    ws = Workspace(keep=args.keep)
    warm = FakeModel(ws.dir, {"turns": [{"text": "Done."}]}, name="warm")
    log("warm-up run (image cache) ...")
    run_patina(args, ws, warm, "warm up")
    warm.stop()

    samples, proxy_view, record = latency(args, ws)
    rows = []
    result = {"requests": args.requests, "events": args.events, "event_delay_s": args.event_delay}
    for metric in ("first_ms", "total_ms"):
        p = stats([s[metric] for s in samples["proxy"]])
        d = stats([s[metric] for s in samples["direct"]])
        result[metric] = {"proxy": p, "direct": d,
                          "added_median_ms": p["median"] - d["median"], "added_p95_ms": p["p95"] - d["p95"]}
        name = "first SSE event" if metric == "first_ms" else "whole answer"
        rows.append([name, f"{d['median']:.2f} ms", f"{p['median']:.2f} ms", f"{p['median'] - d['median']:+.2f} ms",
                     f"{d['p95']:.2f} ms", f"{p['p95']:.2f} ms", f"{p['p95'] - d['p95']:+.2f} ms"])
    print(table(["per request", "direct median", "proxy median", "added", "direct p95", "proxy p95", "added"], rows))
    inside = {k: stats([e[k] for e in proxy_view if e.get(k) is not None]) for k in ("first_byte_ms", "latency_ms")}
    result["proxy_view"] = inside
    if inside["latency_ms"]:
        print(f"\nthe proxy's own view (api.jsonl, {inside['latency_ms']['n']} requests, upstream included): "
              f"first byte median {inside['first_byte_ms']['median']:.2f} ms, p95 {inside['first_byte_ms']['p95']:.2f} ms; "
              f"whole answer median {inside['latency_ms']['median']:.2f} ms, p95 {inside['latency_ms']['p95']:.2f} ms")
    result["samples"] = samples

    if not args.skip_memory:
        mem = memory(args, ws)
        print()
        print(table(["batch", "patina peak RSS", "VmHWM", "threads (max)", "proxied requests"],
                    [[m["label"], f"{m['peak_rss_mib']:.1f} MiB", f"{m['hwm_mib']:.1f} MiB", str(m["max_threads"]),
                      str(m["proxied_requests"])] for m in mem]))
        result["memory"] = mem
    write_results("proxy", result, args.results)


if __name__ == "__main__":
    main()
