#!/usr/bin/env python3
"""Batch scheduling: makespan of N runs whose agent takes a fixed time, at
several --jobs, against the ideal (waves x one run's time, measured in the same
run), and patina's own peak memory and CPU for the whole batch.

    python3 benchmarks/batch.py [--runs 16] [--jobs 1,4,8] [--delay 20]

The fake model answers the agent's first request after --delay seconds, so
every run's agent takes about that long; one `patina yolo` run of the same task
is timed first (the single-run time). patina's peak RSS (VmHWM) and CPU time
(utime+stime, its own process only, not docker's) are sampled from /proc.
"""

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

from common import (FakeModel, Workspace, add_common_args, check_prerequisites, fmt, log, run_patina, table,
                    write_results, ROOT)


def proc_stats(pid):
    """(peak RSS in MiB, CPU seconds) of one live process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if hwm is None:  # exited, not yet reaped
        return None
    ticks = int(stat[11]) + int(stat[12])  # utime + stime
    return hwm / 1024, ticks / 100.0


def watch(proc):
    """Until `proc` exits: its peak RSS in MiB and CPU seconds, sampled every 0.2 s."""
    peak, cpu = 0.0, 0.0
    while proc.poll() is None:
        stats = proc_stats(proc.pid)
        if stats:
            peak, cpu = max(peak, stats[0]), stats[1]
        time.sleep(0.2)
    return peak, cpu


def run_batch(args, ws, fake, jobs, tasks_file):
    cmd = [args.patina, "batch", "--agent-binary", args.agent_binary, "--base-image", args.base_image,
           "--jobs", str(jobs), "--quiet", "--json", str(tasks_file)]
    env = fake.env({"PATINA_HOME": str(ws.home)})
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ws.repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, cpu = watch(proc)
    wall = time.monotonic() - t0
    out, err = proc.communicate()
    record = json.loads(out) if out.strip() else {}
    statuses = [r.get("status") for r in record.get("runs", [])]
    if proc.returncode != 0 or len(statuses) != args.runs or any(s != "succeeded" for s in statuses):
        raise RuntimeError(f"batch failed (exit {proc.returncode}): {statuses} {err[-800:]}")
    return wall, peak, cpu, record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--jobs", default="1,4,8")
    parser.add_argument("--delay", type=float, default=20.0)
    args = parser.parse_args()
    check_prerequisites(args)

    ws = Workspace(keep=args.keep)
    fake = FakeModel(ws.dir, {"turns": [{"text": "done after a while", "delay": args.delay}]})
    tasks_file = ws.dir / "tasks.txt"
    tasks_file.write_text("".join(f"benchmark task {i}\n" for i in range(args.runs)))

    log("warm-up run (image cache) ...")
    run_patina(args, ws, fake, "warm up")
    single, _ = run_patina(args, ws, fake, "one run alone")
    log(f"one run alone: {single:.2f} s")

    rows, samples = [], []
    for jobs in [int(j) for j in args.jobs.split(",")]:
        log(f"batch of {args.runs} runs at --jobs {jobs} ...")
        wall, peak, cpu, record = run_batch(args, ws, fake, jobs, tasks_file)
        waves = math.ceil(args.runs / jobs)
        ideal = waves * single
        samples.append({"jobs": jobs, "makespan_s": wall, "ideal_s": ideal, "waves": waves,
                        "ratio": wall / ideal, "patina_peak_rss_mib": peak, "patina_cpu_s": cpu,
                        "run_durations_s": [r.get("duration_s") for r in record.get("runs", [])]})
        rows.append([str(jobs), str(waves), fmt(wall), fmt(ideal), f"{wall / ideal:.2f}x", f"{peak:.1f} MiB", fmt(cpu)])
    print(table(["jobs", "waves", "makespan", "ideal", "ratio", "patina peak RSS", "patina CPU"], rows))
    write_results("batch", {"runs": args.runs, "delay_s": args.delay, "single_run_s": single, "samples": samples},
                  args.results)


if __name__ == "__main__":
    main()
