#!/usr/bin/env python3
"""Soak: N runs back to back, then K more with patina killed (SIGKILL) at a random
moment of the run; after each kill the next patina command (`patina runs`) must
collect the dead run. Counts what the goal says must be zero: runs lost (never
collected, or left `running`), and containers or networks left behind; and checks
the user's repository is unchanged except for patina's branches and tags.

    python3 benchmarks/soak.py [--runs 50] [--killed 20]

Each agent commits a file, then (in the killed runs) sleeps in a command, so the
kill can land in any step: planning, image, branch, render, sandbox, agent. Another
E runs (--early-killed) are killed in their first 0.35 s, while the network holder
starts alongside planning, before the run's record exists: run directories without a
record and pending marks left over count as leftovers too.
"""

import argparse
import json
import random
import subprocess
import time

from common import (FakeModel, Workspace, add_common_args, check_prerequisites, log, run_patina, write_results, ROOT)


def docker_names(kind, label):
    cmd = ["docker", kind, "ls", "--filter", f"label={label}", "--format", "{{.Name}}" if kind == "network" else "{{.Names}}"]
    if kind == "container":
        cmd = ["docker", "ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"]
    return [line for line in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines() if line]


def repo_state(ws):
    """What must not change: the checkout and every ref that is not patina's."""
    git = lambda *a: subprocess.run(["git", "-C", str(ws.repo), *a], capture_output=True, text=True).stdout
    refs = [line for line in git("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith(("refs/heads/patina/", "refs/tags/session-"))]
    return {"status": git("status", "--porcelain"), "head": git("rev-parse", "HEAD"), "refs": refs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--killed", type=int, default=20)
    parser.add_argument("--early-killed", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    check_prerequisites(args)
    random.seed(args.seed)

    ws = Workspace(keep=args.keep)
    fake = FakeModel(ws.dir, {"turns": [
        {"tool": "Bash", "input": {"command": "echo $RANDOM > f.txt && git add f.txt && git commit -qm work", "description": "work"}},
        {"tool": "Bash", "input": {"command": "sleep 2; echo slept", "description": "think"}},
        {"text": "done"},
    ]})
    before = repo_state(ws)
    run_patina(args, ws, fake, "warm up")

    log(f"{args.runs} runs back to back ...")
    t0 = time.monotonic()
    failures = 0
    for i in range(args.runs):
        _, record = run_patina(args, ws, fake, f"soak run {i}", check=False)
        failures += (record or {}).get("status") != "succeeded"
    back_to_back = time.monotonic() - t0

    log(f"{args.killed} runs killed at a random moment ...")
    env = fake.env({"PATINA_HOME": str(ws.home), "PATINA_DATA_DIR": str(ROOT)})
    kill_after = []
    not_recovered = 0
    for i in range(args.killed + args.early_killed):
        delay = random.uniform(0.05, 4.0) if i < args.killed else random.uniform(0.0, 0.35)
        kill_after.append(round(delay, 2))
        proc = subprocess.Popen([args.patina, "yolo", "--agent-binary", args.agent_binary, "--base-image", args.base_image,
                                 "--quiet", f"killed run {i}"], cwd=ws.repo, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        # The next command collects whatever the dead patina left.
        subprocess.run([args.patina, "runs"], cwd=ws.repo, env=env, capture_output=True, text=True)

    runs = json.loads(subprocess.run([args.patina, "runs", "--json"], cwd=ws.repo, env=env,
                                     capture_output=True, text=True).stdout)
    statuses = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    left_running = [r["id"] for r in runs if r["status"] == "running"]
    # A run lost: a killed run's branch exists with no record saying where it is.
    branches = [b for b in subprocess.run(["git", "-C", str(ws.repo), "branch", "--list", "patina/*", "--format=%(refname:short)"],
                                          capture_output=True, text=True).stdout.splitlines() if b]
    recorded = {r["branch"] for r in runs}
    orphan_branches = [b for b in branches if b not in recorded]
    # This repository's containers only (patina labels them with its store's key).
    keys = [d.name for d in ws.home.glob("repos/*") if d.is_dir()]
    containers = [c for key in keys for c in docker_names("container", f"patina.repo={key}")]
    networks = [n for key in keys for n in docker_names("network", f"patina.repo={key}")]
    store_runs = [d for d in ws.home.glob("repos/*/runs/*") if d.is_dir()]
    run_dirs_without_record = [d.name for d in store_runs if not (d / "run.json").exists()]
    pending_left = [p.name for p in ws.home.glob("repos/*/pending/*")]
    running_marks_left = [p.name for p in ws.home.glob("repos/*/running/*")]
    views_mounted = [line.split()[4] for line in open("/proc/self/mountinfo")
                     if line.split()[4].startswith(str(ws.home))]
    after = repo_state(ws)

    results = {
        "runs_back_to_back": args.runs, "back_to_back_seconds": round(back_to_back, 1),
        "back_to_back_failures": failures, "killed": args.killed, "early_killed": args.early_killed, "kill_after_s": kill_after,
        "statuses": statuses, "left_running": left_running, "orphan_branches": orphan_branches,
        "containers_left": containers, "networks_left": networks,
        "run_dirs_without_record": run_dirs_without_record, "pending_left": pending_left,
        "running_marks_left": running_marks_left, "views_mounted": views_mounted,
        "repository_unchanged": before == after,
    }
    log(json.dumps(results, indent=2))
    write_results("soak", results, args.results)
    ws.close()


if __name__ == "__main__":
    main()
