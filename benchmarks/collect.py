#!/usr/bin/env python3
"""Branch, render and collect at 1,000, 10,000 and 40,000 files, against what they wrap.

    python3 benchmarks/collect.py [--sizes 1000,10000,40000] [--rounds 5]

Each repository (small files, 500 to a directory) and the run's PATINA_HOME live on
/dev/shm (on these machines' disks the same `git worktree add` varies 10x from run to
run). The agent commits one new file. Per size and round, interleaved (the order
alternating from round to round):

- patina: one `patina yolo` run; its branch, render and collect steps from run.json
  `steps` (the collect step's detail splits it into containers / git / ownership);
- git: `git worktree add -b NAME PATH` (what the branch step wraps), then in that fresh
  worktree one new file and `git status --porcelain` + `git add -A` + `git commit`
  (what finding, staging and committing one change costs git).

Reported: medians; each step over its git equivalent (the ratio of the medians and the
median of the per-round ratios), and collect at the largest size over collect at the
smallest (proportional to the change, the goal is under 2x).
"""

import argparse
import os
import re
import subprocess
import tempfile
import time

from common import (FakeModel, Workspace, add_common_args, check_prerequisites, log, median, run_patina, steps_of,
                    table, write_results)

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x.invalid",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x.invalid")


def populate(repo, files):
    for i in range(files):
        d = repo / f"d{i // 500:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"{files} files"], cwd=repo, check=True, env=GIT_ENV)


def git_round(repo, i):
    """`git worktree add`, then status + add -A + commit of one new file in it."""
    target = repo.parent / f"baseline-{i}"
    t0 = time.monotonic()
    subprocess.run(["git", "worktree", "add", "-q", "-b", f"baseline-{i}", str(target)], cwd=repo, check=True)
    add = time.monotonic() - t0
    (target / "new-file.txt").write_text("new\n")
    t0 = time.monotonic()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=target, check=True, capture_output=True, text=True)
    subprocess.run(["git", "add", "-A"], cwd=target, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "one"], cwd=target, check=True, env=GIT_ENV)
    commit = time.monotonic() - t0
    assert status.stdout == "?? new-file.txt\n", status.stdout
    subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=repo, check=True)
    subprocess.run(["git", "branch", "-q", "-D", f"baseline-{i}"], cwd=repo, check=True)
    return add, commit


def collect_parts(record):
    """The collect step's own split, from its detail: "containers 0.123 s" and so on."""
    for step in record.get("steps", []):
        if step["name"] == "collect" and step.get("detail"):
            return {k: float(v) for k, v in re.findall(r"(\w+) (\d+\.\d+) s", step["detail"])}
    return {}


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--sizes", default="1000,10000,40000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    check_prerequisites(args)
    tempfile.tempdir = "/dev/shm"
    sizes = [int(s) for s in args.sizes.split(",")]

    results, rows = {"sizes": {}}, []
    for size in sizes:
        ws = Workspace(keep=args.keep)
        log(f"{size} files: populating {ws.repo} ...")
        populate(ws.repo, size)
        fake = FakeModel(ws.dir, {"turns": [
            {"tool": "Bash", "input": {"command": "echo new > new-file.txt && git add new-file.txt && git commit -qm one", "description": "one change"}},
            {"text": "done"}]})
        run_patina(args, ws, fake, "warm up")
        git_round(ws.repo, "warm")
        samples = []
        for i in range(args.rounds):
            def patina():
                _, record = run_patina(args, ws, fake, f"one change {i}")
                assert record["files_changed"] == [{"path": "new-file.txt", "additions": 1, "deletions": 0, "status": "added"}], record["files_changed"]
                return {**{k: v for k, v in steps_of(record).items() if k in ("branch", "render", "collect")},
                        "collect_parts": collect_parts(record)}
            if i % 2 == 0:
                p = patina()
                add, commit = git_round(ws.repo, i)
            else:
                add, commit = git_round(ws.repo, i)
                p = patina()
            samples.append({**p, "git_worktree_add": add, "git_status_add_commit": commit})
            log(f"  round {i}: branch {p['branch']:.3f} s / worktree add {add:.3f} s, render {p['render']:.3f} s, "
                f"collect {p['collect']:.3f} s / status+add+commit {commit:.3f} s {p['collect_parts']}")
        m = {k: median([s[k] for s in samples]) for k in ("branch", "render", "collect", "git_worktree_add", "git_status_add_commit")}
        parts = {k: median([s["collect_parts"].get(k) for s in samples]) for k in samples[0]["collect_parts"]}
        entry = {
            "medians_s": m, "collect_parts_median_s": parts,
            "branch_over_worktree_add": ratio(m["branch"], m["git_worktree_add"]),
            "branch_over_worktree_add_median_of_rounds": median([ratio(s["branch"], s["git_worktree_add"]) for s in samples]),
            "collect_over_status_add_commit": ratio(m["collect"], m["git_status_add_commit"]),
            "collect_git_part_over_status_add_commit": ratio(parts.get("git"), m["git_status_add_commit"]),
            "samples": samples,
        }
        results["sizes"][str(size)] = entry
        rows.append([str(size), f"{m['branch']:.3f}", f"{m['git_worktree_add']:.3f}", f"{entry['branch_over_worktree_add']:.2f}x",
                     f"{m['render']:.3f}", f"{m['collect']:.3f}",
                     " ".join(f"{k} {v:.3f}" for k, v in parts.items() if v is not None) or "-",
                     f"{m['git_status_add_commit']:.3f}", f"{entry['collect_over_status_add_commit']:.2f}x"])
        ws.close()
    big, small = results["sizes"][str(sizes[-1])], results["sizes"][str(sizes[0])]
    results["collect_largest_over_smallest"] = big["medians_s"]["collect"] / small["medians_s"]["collect"]
    print(table(["files", "branch s", "worktree add s", "ratio", "render s", "collect s", "collect parts s",
                 "status+add+commit s", "ratio"], rows))
    print(f"collect at {sizes[-1]} files / at {sizes[0]}: {results['collect_largest_over_smallest']:.2f}x")
    write_results("collect", results, args.results)


if __name__ == "__main__":
    main()
