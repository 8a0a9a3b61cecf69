#!/usr/bin/env python3
"""`--on slurm` on the test cluster (scripts/setup-slurm): the makespan of a batch over
two nodes on two hosts (this one and the container node) against the same batch run
locally in the same run, and the submitting patina's peak memory and CPU for a large
batch of tiny runs.

    python3 benchmarks/slurm.py [--runs 8] [--delay 10] [--big 100] [--big-jobs 6]

Part 1: --runs runs whose agent takes about --delay seconds (the fake model answers its
first request after that long), once `--on slurm --jobs RUNS` restricted to two nodes
(patina-test-n1 on this host, patina-test-c1 in its container), once locally with `--jobs
RUNS`; the ratio is slurm/local. Both nodes share this machine's cores, so the ratio shows
the cost of going through Slurm, not a cluster's speed-up.

Part 2: --big runs answered at once (`--big 0` skips it), `--on slurm --jobs --big-jobs`:
the submitting patina's peak RSS (VmHWM) and CPU time (its own process, sampled from /proc)
and the batch's wall time, squeue polled every 2 s (the default; part 1 polls every 0.5 s). Needs root (the test cluster) and the package's patina build
(the container node mounts the package root, so the binary must live under it).

The Slurm batches and the local ones use two PATINA_HOMEs: a local run or batch moves its
repository's store to /var/lib/patina/stores (a link in the home), which the container node
cannot follow (docs/SECURITY.md: a cluster batch wants a home of its own). Each home is warmed
first: one local run in the local one, a 2-run Slurm batch answered at once in the cluster's.
"""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from batch import watch
from common import (FakeModel, Workspace, add_common_args, check_prerequisites, fmt, log, run_patina, table,
                    write_results, ROOT)

SLURM_DIR = Path(os.environ.get("PATINA_SLURM_DIR", "/var/lib/patina-test-slurm"))
TWO_NODES = "--slurm-arg=--exclude=patina-test-n2"


def start_cluster():
    out = subprocess.run([str(ROOT / "scripts" / "setup-slurm")], capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith("SLURM_CONF=")), None)
    if out.returncode != 0 or not line:
        raise SystemExit(f"scripts/setup-slurm failed: {out.stderr[-800:]}")
    return line.split("=", 1)[1]


def timed_batch(args, ws, home, fake, conf, tasks_file, extra, expected, poll="0.5"):
    cmd = [args.patina, "batch", "--agent-binary", args.agent_binary, "--base-image", args.base_image,
           "--quiet", "--json", *extra, str(tasks_file)]
    env = fake.env({"PATINA_HOME": str(home), "SLURM_CONF": conf, "PATINA_SLURM_POLL": poll})
    # Files, not pipes: a 100-run batch prints more than a pipe holds while this samples.
    out_file, err_file = ws.dir / "batch.out", ws.dir / "batch.err"
    t0 = time.monotonic()
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ws.repo, env=env, stdout=out, stderr=err, text=True)
        peak, cpu = watch(proc)
    wall = time.monotonic() - t0
    out, err = out_file.read_text(), err_file.read_text()
    record = json.loads(out) if out.strip() else {}
    runs = record.get("runs", [])
    statuses = [r.get("status") for r in runs]
    if proc.returncode != 0 or len(statuses) != expected or any(s != "succeeded" for s in statuses):
        raise RuntimeError(f"batch failed (exit {proc.returncode}): {statuses} {err[-800:]}")
    nodes = sorted({(r.get("executor") or {}).get("node") or "local" for r in runs})
    return wall, peak, cpu, nodes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.set_defaults(patina=str(ROOT / ".build" / "debug" / "patina"))
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--delay", type=float, default=10.0)
    parser.add_argument("--big", type=int, default=100)
    parser.add_argument("--big-jobs", type=int, default=6)
    args = parser.parse_args()
    check_prerequisites(args)
    if not Path(args.patina).resolve().is_relative_to(ROOT):
        raise SystemExit(f"{args.patina}: the container node sees the package root only; use a build under {ROOT}")
    conf = start_cluster()

    # The repository and the cluster's patina home where every node mounts them; the local
    # runs' home beside it (see above).
    ws = Workspace(keep=args.keep, parent=SLURM_DIR / "shared")
    local_home = ws.other_home("home-local")
    fake = FakeModel(ws.dir, {"turns": [{"text": "done after a while", "delay": args.delay}]})
    quick = FakeModel(ws.dir, {"turns": [{"text": "done"}]}, name="quick")
    tasks = ws.dir / "tasks.txt"
    tasks.write_text("".join(f"benchmark task {i}\n" for i in range(args.runs)))
    log("warm-up: one local run, 2 runs on slurm (image and hash caches) ...")
    run_patina(args, ws, quick, "warm up", home=local_home)
    warm = ws.dir / "warm.txt"
    warm.write_text("warm up 0\nwarm up 1\n")
    timed_batch(args, ws, ws.home, quick, conf, warm, ["--on", "slurm", "--jobs", "2", TWO_NODES], 2)

    log(f"{args.runs} runs on slurm (2 nodes) ...")
    s_wall, s_peak, s_cpu, s_nodes = timed_batch(args, ws, ws.home, fake, conf, tasks,
                                                 ["--on", "slurm", "--jobs", str(args.runs), TWO_NODES], args.runs)
    log(f"{args.runs} runs locally ...")
    l_wall, l_peak, l_cpu, _ = timed_batch(args, ws, local_home, fake, conf, tasks, ["--jobs", str(args.runs)], args.runs)
    rows = [["slurm, " + "+".join(s_nodes), fmt(s_wall), f"{s_wall / l_wall:.2f}x", f"{s_peak:.1f} MiB", fmt(s_cpu)],
            ["local", fmt(l_wall), "1.00x", f"{l_peak:.1f} MiB", fmt(l_cpu)]]
    results = {"runs": args.runs, "delay_s": args.delay,
               "slurm": {"makespan_s": s_wall, "nodes": s_nodes, "patina_peak_rss_mib": s_peak, "patina_cpu_s": s_cpu},
               "local": {"makespan_s": l_wall, "patina_peak_rss_mib": l_peak, "patina_cpu_s": l_cpu},
               "ratio_slurm_over_local": s_wall / l_wall}

    if args.big > 0:
        fake.stop()
        big = ws.dir / "big.txt"
        big.write_text("".join(f"tiny task {i}\n" for i in range(args.big)))
        log(f"{args.big} tiny runs on slurm, {args.big_jobs} at once ...")
        b_wall, b_peak, b_cpu, b_nodes = timed_batch(args, ws, ws.home, quick, conf, big,
                                                     ["--on", "slurm", "--jobs", str(args.big_jobs)], args.big, poll="2")
        rows.append([f"slurm, {args.big} tiny runs, " + "+".join(b_nodes), fmt(b_wall), "", f"{b_peak:.1f} MiB", fmt(b_cpu)])
        results["big"] = {"runs": args.big, "jobs": args.big_jobs, "wall_s": b_wall, "nodes": b_nodes,
                          "patina_peak_rss_mib": b_peak, "patina_cpu_s": b_cpu}
    print(table(["batch", "makespan", "vs local", "submitter peak RSS", "submitter CPU"], rows))
    write_results("slurm", results, args.results)


if __name__ == "__main__":
    main()
