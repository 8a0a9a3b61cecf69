#!/usr/bin/env python3
"""What N parallel runs on a big repository cost in disk, with and without --sparse.

    python3 benchmarks/disk.py [--files 40000] [--rounds 3]

One repository of small files (500 to a directory, 80 directories at 40,000 files) and the
runs' PATINA_HOME on /dev/shm. Per round, interleaved (the order alternating): one full
`patina yolo` run and one with `--sparse d000` (one directory of 80, plus the top level's
files); the agent commits one new file in d000. For each: the worktree's allocated bytes
(`du -s -B1`: tmpfs and ext4 take a page or a block per file, whatever its size), its file
count, its apparent size, and the run's branch step against a plain `git worktree add`
measured in the same round. Reported: medians, and sparse over full (disk and branch).
Reflink copies would let runs share unchanged blocks; neither filesystem here has them
(`cp --reflink=always` fails on tmpfs and ext4), so they are not offered.
"""

import argparse
import subprocess
import tempfile
import time

from common import (FakeModel, Workspace, add_common_args, check_prerequisites, log, median, run_patina, steps_of,
                    table, write_results)
from collect import populate


def usage(path):
    allocated = int(subprocess.run(["du", "-s", "-B1", str(path)], check=True, capture_output=True, text=True).stdout.split()[0])
    apparent = int(subprocess.run(["du", "-s", "-B1", "--apparent-size", str(path)], check=True, capture_output=True,
                                  text=True).stdout.split()[0])
    files = int(subprocess.run(["sh", "-c", f"find '{path}' -type f | wc -l"], check=True, capture_output=True,
                               text=True).stdout.strip())
    return allocated, apparent, files


def worktree_add(repo, i):
    target = repo.parent / f"baseline-{i}"
    t0 = time.monotonic()
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(target)], cwd=repo, check=True)
    seconds = time.monotonic() - t0
    allocated, _, _ = usage(target)
    subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=repo, check=True)
    return seconds, allocated


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--files", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    check_prerequisites(args)
    tempfile.tempdir = "/dev/shm"

    ws = Workspace(keep=args.keep)
    log(f"{args.files} files: populating {ws.repo} ...")
    populate(ws.repo, args.files)
    fake = FakeModel(ws.dir, {"turns": [
        {"tool": "Bash", "input": {"command": "echo new > d000/new-file.txt && git add -A && git commit -qm one",
                                   "description": "one change"}},
        {"text": "done"}]})
    run_patina(args, ws, fake, "warm up")
    samples = []
    for i in range(args.rounds):
        sample = {}
        kinds = [("full", []), ("sparse", ["--sparse", "d000"])]
        for kind, extra in (kinds if i % 2 == 0 else kinds[::-1]):
            _, record = run_patina(args, ws, fake, f"{kind} {i}", extra)
            assert record["files_changed"] == [{"path": "d000/new-file.txt", "additions": 1, "deletions": 0,
                                                "status": "added"}], record["files_changed"]
            allocated, apparent, files = usage(record["worktree"])
            sample[kind] = {"branch_s": steps_of(record)["branch"], "allocated_bytes": allocated,
                            "apparent_bytes": apparent, "files": files}
        sample["git_worktree_add_s"], sample["git_worktree_bytes"] = worktree_add(ws.repo, i)
        samples.append(sample)
        log(f"  round {i}: full {sample['full']['allocated_bytes'] / 1e6:.1f} MB {sample['full']['branch_s']:.3f} s, "
            f"sparse {sample['sparse']['allocated_bytes'] / 1e6:.2f} MB {sample['sparse']['branch_s']:.3f} s, "
            f"git worktree add {sample['git_worktree_add_s']:.3f} s")

    m = {kind: {k: median([s[kind][k] for s in samples]) for k in samples[0][kind]} for kind in ("full", "sparse")}
    git_add = median([s["git_worktree_add_s"] for s in samples])
    git_bytes = median([s["git_worktree_bytes"] for s in samples])
    results = {"files": args.files, "medians": m, "git_worktree_add_s": git_add, "git_worktree_bytes": git_bytes,
               "sparse_over_full_disk": m["sparse"]["allocated_bytes"] / m["full"]["allocated_bytes"],
               "sparse_over_full_branch": m["sparse"]["branch_s"] / m["full"]["branch_s"],
               "full_over_git_branch": m["full"]["branch_s"] / git_add, "samples": samples}
    rows = [[kind, f"{m[kind]['files']:.0f}", f"{m[kind]['apparent_bytes'] / 1e6:.2f}", f"{m[kind]['allocated_bytes'] / 1e6:.1f}",
             f"{m[kind]['branch_s']:.3f}", f"{10 * m[kind]['allocated_bytes'] / 1e6:.0f}"] for kind in ("full", "sparse")]
    rows.append(["git worktree add", "", "", f"{git_bytes / 1e6:.1f}", f"{git_add:.3f}", f"{10 * git_bytes / 1e6:.0f}"])
    print(table(["worktree", "files", "apparent MB", "allocated MB", "branch s", "10 runs MB"], rows))
    print(f"sparse / full: disk {results['sparse_over_full_disk']:.3f}x, branch {results['sparse_over_full_branch']:.2f}x")
    write_results("disk", results, args.results)


if __name__ == "__main__":
    main()
