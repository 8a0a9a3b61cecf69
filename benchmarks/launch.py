#!/usr/bin/env python3
"""Launch overhead of `patina yolo` against a bare `docker run` of the same agent.

With a warm image cache, for a task the agent finishes at once (the fake model
answers with final text, or with one trivial Bash call and then text), measure in
the same run, N interleaved pairs:

  patina  `patina yolo --json TASK` (firewall, probes, branch, collection: all of it)
  bare    `docker run --rm ... IMAGE bash -c 'git init; claude -p TASK ...'`, the
          same image (the run record's `image`), binary, fake model and environment

and report the median wall times, the median of the per-pair ratios, and where
patina's time goes: the median of each step of run.json `steps`, plus the sandbox
step split by docker's own container events (holder, firewall helper, probe).

    python3 benchmarks/launch.py [--pairs 7] [--kinds text,bash]

Writes benchmarks/results/launch.json.
"""

import argparse
import sys
import time

import common
from common import fmt, log, median


# The critical path of each side, from docker's own event times and the command's start
# and end: (name, label) in order; each value is the time from the previous mark.
PATINA_PATH = [
    ("to_holder", "exec -> holder created (runtime start, recovery, planning)"),
    ("holder_start", "holder create -> start (its network namespace on the bridge)"),
    ("agent_start", "holder start -> agent container start (firewall applied meanwhile)"),
    ("agent_run", "agent container start -> exit (probes, go, Claude Code)"),
    ("teardown", "agent exit -> last container removed"),
    ("to_exit", "last container removed -> patina exits"),
]
BARE_PATH = [
    ("to_create", "exec -> container created (docker CLI)"),
    ("start", "create -> start (its network namespace on the bridge)"),
    ("run", "start -> exit (Claude Code)"),
    ("teardown", "exit -> removed (--rm)"),
    ("to_exit", "removed -> docker run exits"),
]


def spans(marks, names):
    """Differences between consecutive marks (None where one is missing)."""
    out = {}
    for (name, _), a, b in zip(names, marks, marks[1:]):
        out[name] = b - a if a is not None and b is not None else None
    return {k: v for k, v in out.items() if v is not None}


def patina_path(timeline, started, ended):
    net, agent = timeline.get("network", {}), timeline.get("agent", {})
    destroyed = [t["destroy"] for t in timeline.values() if "destroy" in t]
    marks = [started, net.get("create"), net.get("start"), agent.get("start"), agent.get("die"),
             max(destroyed) if destroyed else None, ended]
    return spans(marks, PATINA_PATH)


def bare_path(events, started, ended):
    marks = [started, events.get("create"), events.get("start"), events.get("die"), events.get("destroy"), ended]
    return spans(marks, BARE_PATH)


def measure_kind(args, ws, kind, fresh_home):
    fake = common.FakeModel(ws.dir, common.SCRIPTS[kind], name=f"fake-{kind}")
    task = f"benchmark: answer at once ({kind})"

    # Warm-up: builds the images if needed and fills the hash cache of the fresh
    # PATINA_HOME; the bare run warms the image's files in the page cache.
    log(f"[{kind}] warm-up")
    first_wall, first = common.run_patina(args, ws, fake, task)
    image = first["image"]
    common.bare_agent_run(image, fake, task, agent_binary=args.agent_binary)

    pairs = []
    for i in range(args.pairs):
        order = ["patina", "bare"] if i % 2 == 0 else ["bare", "patina"]
        pair = {"order": order}
        for which in order:
            if which == "patina":
                started = time.time()
                wall, record = common.run_patina(args, ws, fake, task)
                ended = time.time()
                if record["image"] != image:
                    raise RuntimeError(f"the agent image changed between runs: {image} -> {record['image']}")
                timeline = common.container_timeline(started - 0.2, ended + 0.5, record["id"])
                pair["patina"] = {
                    "wall": wall,
                    "duration_s": record.get("duration_s"),
                    "steps": common.steps_of(record),
                    "sandbox_parts": common.sandbox_parts(timeline),
                    "path": patina_path(timeline, started, ended),
                    "num_turns": record.get("num_turns"),
                }
            else:
                name = f"patina-bench-bare-{kind}-{i}"
                started = time.time()
                wall, result = common.bare_agent_run(image, fake, task, name=name, agent_binary=args.agent_binary)
                ended = time.time()
                events = common.named_container_timeline(started - 0.2, ended + 0.5, name)
                pair["bare"] = {"wall": wall, "num_turns": result.get("num_turns"), "path": bare_path(events, started, ended)}
        pair["ratio"] = pair["patina"]["wall"] / pair["bare"]["wall"]
        pair["overhead"] = pair["patina"]["wall"] - pair["bare"]["wall"]
        log(f"[{kind}] pair {i + 1}/{args.pairs}: patina {pair['patina']['wall']:.3f} s, "
            f"bare {pair['bare']['wall']:.3f} s, ratio {pair['ratio']:.2f}")
        pairs.append(pair)
    fake.stop()

    patina_walls = [p["patina"]["wall"] for p in pairs]
    steps = {name: common.summary([p["patina"]["steps"].get(name) for p in pairs]) for name in common.STEP_NAMES}
    # "probes" is part of the agent step (the agent's container starting and proving the
    # protections before Claude Code is exec'd): not added to the sum.
    unaccounted = [p["patina"]["wall"] - sum(p["patina"]["steps"].get(n, 0) for n in common.STEP_NAMES) for p in pairs]
    for p in pairs:
        sp = p["patina"]["sandbox_parts"]
        st = p["patina"]["steps"]
        if "firewall" in st:
            sp["firewall"] = st["firewall"]
        if "probes" in st:
            sp["agent_probes"] = st["probes"]
            sp["agent_claude"] = st["agent"] - st["probes"]
    part_names = sorted({k for p in pairs for k in p["patina"]["sandbox_parts"]})
    parts = {name: common.summary([p["patina"]["sandbox_parts"].get(name) for p in pairs]) for name in part_names}
    paths = {side: {name: common.summary([p[side]["path"].get(name) for p in pairs]) for name, _ in names}
             for side, names in (("patina", PATINA_PATH), ("bare", BARE_PATH))}
    return {
        "task": task,
        "script": common.SCRIPTS[kind],
        "image": image,
        "pairs": pairs,
        "patina_wall": common.summary(patina_walls),
        "bare_wall": common.summary([p["bare"]["wall"] for p in pairs]),
        "ratio": common.summary([p["ratio"] for p in pairs]),
        "overhead": common.summary([p["overhead"] for p in pairs]),
        "steps": steps,
        "outside_steps": common.summary(unaccounted),
        "sandbox_parts": parts,
        "paths": paths,
        "agent_step_vs_bare": common.summary([p["patina"]["steps"]["agent"] / p["bare"]["wall"] for p in pairs]),
        "warmup": {"wall": first_wall, "steps": common.steps_of(first), "fresh_home": fresh_home},
    }


def report(kind, r):
    pw = r["patina_wall"]["median"]
    lines = [f"== {kind}: {r['task']!r}",
             f"patina {fmt(pw)}   bare docker run {fmt(r['bare_wall']['median'])}   "
             f"ratio {fmt(r['ratio']['median'], 'x')} (min {r['ratio']['min']:.2f}, max {r['ratio']['max']:.2f})   "
             f"overhead {fmt(r['overhead']['median'])}   (median of {r['ratio']['n']} interleaved pairs)"]
    rows = []
    for name in common.STEP_NAMES:
        s = r["steps"].get(name)
        if s:
            rows.append([name, fmt(s["median"]), fmt(s["median"] / pw, "%")])
    parts = r["sandbox_parts"]
    for name, label in [("firewall", "firewall: applied in the holder, while the agent's container starts"),
                        ("agent_probes", "agent: docker run -> go (container start, probes, checks)"),
                        ("agent_claude", "agent: Claude Code, until its container exits")]:
        s = parts.get(name)
        if s:
            rows.append(["  " + label, fmt(s["median"]), fmt(s["median"] / pw, "%")])
    o = r["outside_steps"]["median"]
    rows.append(["outside steps (exec, plan, record; steps overlap)", fmt(o), fmt(o / pw, "%")])
    lines.append(common.table(["patina step (median)", "time", "of patina wall"], rows))
    # The two critical paths side by side, from docker's events.
    for side, names, title in (("patina", PATINA_PATH, "patina's path (docker events)"),
                               ("bare", BARE_PATH, "bare docker run's path")):
        path = r.get("paths", {}).get(side, {})
        rows = [[label, fmt(path[name]["median"])] for name, label in names if path.get(name)]
        if rows:
            lines.append(common.table([title + ", median", "time"], rows))
    a = r["sandbox_parts"].get("agent_container")
    lines.append(f"agent step / bare run: {fmt(r['agent_step_vs_bare']['median'], 'x')}"
                 + (f"   (agent container create->exit {fmt(a['median'])})" if a else ""))
    f = r["warmup"]
    lines.append(f"warm-up run{' (fresh PATINA_HOME: the claude binary is hashed for the image tag)' if f['fresh_home'] else ''}: "
                 f"{fmt(f['wall'])}, image step {fmt(f['steps'].get('image'))}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=7, help="interleaved patina/bare pairs per task kind")
    parser.add_argument("--kinds", default="text,bash",
                        help="comma-separated task kinds: text (final answer at once), bash (one trivial Bash, then text)")
    common.add_common_args(parser)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in common.SCRIPTS:
            sys.exit(f"unknown kind {k!r}; choose from {', '.join(common.SCRIPTS)}")
    common.check_prerequisites(args)

    ws = common.Workspace(keep=args.keep)
    results = {}
    try:
        for n, kind in enumerate(kinds):
            results[kind] = measure_kind(args, ws, kind, fresh_home=(n == 0))
    finally:
        common.remove_bench_containers()
    print()
    for kind, r in results.items():
        print(report(kind, r))
        print()
    common.write_results("launch", {"pairs": args.pairs, "kinds": results}, args.results)


if __name__ == "__main__":
    main()
