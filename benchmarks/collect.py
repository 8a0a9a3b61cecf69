#!/usr/bin/env python3
"""Branch, render and collect on a big repository, against what they wrap.

    python3 benchmarks/collect.py [--files 40000] [--small 1000] [--rounds 3]

Repositories of --files and --small small files live on /dev/shm (on these
machines' disks the same `git worktree add` varies 10x from run to run). The agent
commits one new file. Reported per repository size, median of --rounds runs:
patina's branch, render and collect steps (from run.json), and in the same run the
baselines `git worktree add` (what the branch step wraps) and `git status` in a
fresh worktree (what finding one change costs git). Ratios: collect at --files over
collect at --small (proportional to the change, the goal is ~1x), branch over
`git worktree add`.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import (FakeModel, Workspace, add_common_args, check_prerequisites, log, median, run_patina, steps_of,
                    table, write_results)


def populate(repo, files):
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x.invalid", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x.invalid")
    for i in range(files):
        d = repo / f"d{i // 500:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"{files} files"], cwd=repo, check=True, env=env)


def baselines(repo, rounds):
    adds, statuses = [], []
    for i in range(rounds):
        target = repo.parent / f"baseline-{i}"
        t0 = time.monotonic()
        subprocess.run(["git", "worktree", "add", "-q", "-b", f"baseline-{i}", str(target)], cwd=repo, check=True)
        adds.append(time.monotonic() - t0)
        t0 = time.monotonic()
        subprocess.run(["git", "status", "--porcelain"], cwd=target, check=True, capture_output=True)
        statuses.append(time.monotonic() - t0)
        subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=repo, check=True)
        subprocess.run(["git", "branch", "-q", "-D", f"baseline-{i}"], cwd=repo, check=True)
    return median(adds), median(statuses)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--files", type=int, default=40000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    check_prerequisites(args)
    tempfile.tempdir = "/dev/shm"

    results, rows = {}, []
    for size in (args.small, args.files):
        ws = Workspace(keep=args.keep)
        log(f"{size} files: populating {ws.repo} ...")
        populate(ws.repo, size)
        fake = FakeModel(ws.dir, {"turns": [
            {"tool": "Bash", "input": {"command": "echo new > new-file.txt && git add new-file.txt && git commit -qm one", "description": "one change"}},
            {"text": "done"}]})
        run_patina(args, ws, fake, "warm up")
        steps = []
        for i in range(args.rounds):
            _, record = run_patina(args, ws, fake, f"one change {i}")
            assert record["files_changed"] == [{"path": "new-file.txt", "additions": 1, "deletions": 0, "status": "added"}], record["files_changed"]
            steps.append(steps_of(record))
        add, status = baselines(ws.repo, args.rounds)
        m = {name: median([s.get(name, 0.0) for s in steps]) for name in ("branch", "render", "collect")}
        results[str(size)] = {"steps_median_s": m, "git_worktree_add_s": add, "git_status_s": status}
        rows.append([str(size), f"{m['branch']:.3f}", f"{add:.3f}", f"{m['branch'] / add:.2f}x",
                     f"{m['render']:.3f}", f"{m['collect']:.3f}", f"{status:.3f}"])
        ws.close()
    big, small = results[str(args.files)], results[str(args.small)]
    results["collect_ratio_big_over_small"] = big["steps_median_s"]["collect"] / small["steps_median_s"]["collect"]
    results["branch_over_worktree_add_big"] = big["steps_median_s"]["branch"] / big["git_worktree_add_s"]
    print(table(["files", "branch s", "git worktree add s", "ratio", "render s", "collect s", "git status s"], rows))
    print(f"collect at {args.files} files / at {args.small}: {results['collect_ratio_big_over_small']:.2f}x")
    write_results("collect", results, args.results)


if __name__ == "__main__":
    main()
