#!/usr/bin/env python3
"""Cost of the egress firewall at launch, with 10 and with 200 allow-list entries.

Configurations, run round-robin (the order rotates every round) in the same run:

  no-firewall      `patina yolo --no-firewall`: the baseline
  firewall         the firewall with only what patina adds itself (ANTHROPIC_BASE_URL)
  endpoints-10/200 + N `--allow 172.17.0.1:PORT` entries; the benchmark listens on
                   every one of those ports (the self-test connects to each allowed
                   IP:port, so each must really be reachable)
  cidrs-10/200     + N `--allow 198.18.X.0/24` entries (RFC 2544 benchmarking range):
                   rules only, nothing is sent there (the self-test skips blocks)

Per configuration: the whole launch (wall), the `sandbox` step, the firewall's
cost = (sandbox + probes steps) - the same of the no-firewall run of the same round
(the self-test runs in the agent's container, in its probes step)
(median of the per-round differences), its share of the whole launch, and the
parts from firewall.txt (apply ms, self-test ms) and docker's container events
(network holder up, firewall helper create->exit).

    python3 benchmarks/firewall.py [--rounds 5] [--sizes 10,200] [--kinds endpoints,cidrs]

Writes benchmarks/results/firewall.json.
"""

import argparse
import re
import selectors
import socket
import threading
import time
from pathlib import Path

import common
from common import fmt, log


class Listeners:
    """N TCP listeners on the docker bridge gateway that accept and close."""

    def __init__(self, count, host=common.GATEWAY):
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.accepted = 0
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            s.listen(64)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.ports = [s.getsockname()[1] for s in self.socks]
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.2):
                try:
                    conn, _ = key.fileobj.accept()
                    conn.close()
                    self.accepted += 1
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.thread.join()
        for s in self.socks:
            self.sel.unregister(s)
            s.close()


def cidr_entries(count):
    # 198.18.0.0/15 is reserved for benchmarking (RFC 2544): 512 /24 blocks.
    return [f"198.{18 + i // 256}.{i % 256}.0/24" for i in range(count)]


REPORT_RE = {
    "apply_ms": re.compile(r"applied in (\d+) ms"),
    "selftest_ms": re.compile(r"^self-test: .* in (\d+) ms", re.M),
    "selftest_checks": re.compile(r"^self-test: passed (\d+)/(\d+) checks", re.M),
    "rules": re.compile(r"(\d+) IPv4 \+ (\d+) IPv6 rules"),
    "entries": re.compile(r"firewall: (\d+) allow-list entries"),
}


def parse_firewall_report(run_dir):
    path = Path(run_dir) / "firewall.txt"
    if not path.exists():
        return {}
    text = path.read_text()
    out = {}
    if m := REPORT_RE["apply_ms"].search(text):
        out["apply_ms"] = int(m.group(1))
    if m := REPORT_RE["selftest_ms"].search(text):
        out["selftest_ms"] = int(m.group(1))
    if m := REPORT_RE["selftest_checks"].search(text):
        out["selftest_checks"] = int(m.group(2))
    if m := REPORT_RE["rules"].search(text):
        out["rules_v4"], out["rules_v6"] = int(m.group(1)), int(m.group(2))
    if m := REPORT_RE["entries"].search(text):
        out["entries"] = int(m.group(1))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds; every configuration runs once per round")
    parser.add_argument("--sizes", default="10,200", help="allow-list sizes")
    parser.add_argument("--kinds", default="endpoints,cidrs", help="entry kinds: endpoints (IP:port, probed), cidrs")
    common.add_common_args(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    common.check_prerequisites(args)

    ws = common.Workspace(keep=args.keep)
    fake = common.FakeModel(ws.dir, common.SCRIPTS["text"], name="fake")
    listeners = Listeners(max(sizes) if "endpoints" in kinds else 0)
    configs = {"no-firewall": ["--no-firewall"], "firewall": []}
    for kind in kinds:
        for n in sizes:
            entries = [f"{common.GATEWAY}:{p}" for p in listeners.ports[:n]] if kind == "endpoints" else cidr_entries(n)
            configs[f"{kind}-{n}"] = [a for e in entries for a in ("--allow", e)]
    task = "benchmark: answer at once"
    names = list(configs)
    runs = {name: [] for name in names}
    try:
        log("warm-up")
        common.run_patina(args, ws, fake, task)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                since = time.time() - 0.2
                wall, record = common.run_patina(args, ws, fake, task, configs[name])
                until = time.time() + 0.5
                steps = common.steps_of(record)
                item = {"round": r, "wall": wall, "steps": steps,
                        "parts": common.sandbox_parts(common.container_timeline(since, until, record["id"])),
                        "report": parse_firewall_report(record["run_dir"]),
                        "firewall": record.get("firewall"), "allow_list_len": len(record.get("allow_list") or [])}
                runs[name].append(item)
                log(f"round {r + 1}/{args.rounds} {name:14} wall {wall:.3f} s  sandbox {steps['sandbox']:.3f} s  "
                    + " ".join(f"{k}={v}" for k, v in item["report"].items()))
    finally:
        listeners.close()
        fake.stop()
        common.remove_bench_containers()

    base = {item["round"]: item for item in runs["no-firewall"]}
    results = {}
    for name in names:
        items = runs[name]
        def guarded(i):
            return i["steps"]["sandbox"] + i["steps"].get("probes", 0)
        cost = [guarded(i) - guarded(base[i["round"]]) for i in items]
        share = [c / i["wall"] for c, i in zip(cost, items)]
        launch_diff = [i["wall"] - base[i["round"]]["wall"] for i in items]
        results[name] = {
            "args_count": len(configs[name]) // 2,
            "runs": items,
            "wall": common.summary([i["wall"] for i in items]),
            "sandbox": common.summary([i["steps"]["sandbox"] for i in items]),
            "firewall_cost": common.summary(cost) if name != "no-firewall" else None,
            "firewall_share": common.summary(share) if name != "no-firewall" else None,
            "launch_diff": common.summary(launch_diff) if name != "no-firewall" else None,
            "apply_ms": common.summary([i["report"].get("apply_ms") for i in items]),
            "selftest_ms": common.summary([i["report"].get("selftest_ms") for i in items]),
            "holder": common.summary([i["parts"].get("holder") for i in items]),
            "probes": common.summary([i["steps"].get("probes") for i in items]),
            "rules_v4": items[0]["report"].get("rules_v4"),
            "rules_v6": items[0]["report"].get("rules_v6"),
            "entries": items[0]["report"].get("entries", 0),
            "selftest_checks": items[0]["report"].get("selftest_checks"),
        }

    def m(s, unit="s"):
        return fmt(s["median"], unit) if s and s.get("median") is not None else "-"

    rows = []
    for name in names:
        r = results[name]
        rules = f"{r['rules_v4']}+{r['rules_v6']}" if r["rules_v4"] is not None else "-"
        rows.append([name, r["entries"], rules, r["selftest_checks"] or "-", m(r["wall"]), m(r["sandbox"]),
                     m(r["firewall_cost"]), m(r["firewall_share"], "%"), m(r["launch_diff"]),
                     m(r["holder"], "ms"),
                     f"{r['apply_ms']['median']:.0f} ms" if r["apply_ms"] else "-",
                     f"{r['selftest_ms']['median']:.0f} ms" if r["selftest_ms"] else "-",
                     m(r["probes"], "ms")])
    print()
    print(f"medians of {args.rounds} rounds (configurations interleaved); firewall cost = sandbox + probes steps - the same steps of "
          "the same round's --no-firewall run")
    print(common.table(["config", "entries", "rules v4+v6", "checks", "launch", "sandbox", "fw cost", "of launch", "launch +",
                        "holder up", "apply", "self-test", "probes"], rows))
    print("entries include the one patina adds for ANTHROPIC_BASE_URL; launch + = launch - the same round's "
          "--no-firewall launch (also counts removing the holder at collect)")
    print(f"listener connections accepted (self-test reach checks): {listeners.accepted}")
    common.write_results("firewall", {"rounds": args.rounds, "sizes": sizes, "kinds": kinds,
                                      "listener_connections": listeners.accepted, "configs": results}, args.results)


if __name__ == "__main__":
    main()
