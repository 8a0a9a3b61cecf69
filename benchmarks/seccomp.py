#!/usr/bin/env python3
"""Seccomp and hardening: BPF size, probe cost at launch, workload slowdown.

1. BPF size: `patina seccomp check --json` (instructions per architecture set).
2. Probe cost at launch:
   - `patina yolo --no-firewall` runs: there the `sandbox` step is the probes alone
     (a container started exactly like the agent's runs templates/probe.sh); docker's
     events give the probe container's create->exit time;
   - direct `docker run`s, interleaved: a bare container (`IMAGE true`), the probe's
     hardened container running `true` (cap-drop ALL, no-new-privileges, patina's
     seccomp profile, read-only root, tmpfs, limits, --init, non-root), and the
     same running the run's probe.sh.
3. Workload slowdown under patina's profile (the run's config/seccomp.json) against
   Docker's default profile (and unconfined, for reference): one container per
   (round, profile), everything else identical (non-root, cap-drop ALL,
   no-new-privileges), the profile order rotating each round; each workload is
   timed inside the container, so container start-up is not counted:
     git-status    `git status` on a committed tree of ~20k files (x5)
     find-stat     `find -printf %s` over the tree (lstat every file) (x3)
     sha256sum     sha256sum of every file of the tree
     fork-exec     300 x /bin/true from bash
     syscalls      dd bs=1 (one read + one write syscall per byte), 1M bytes
     gcc           gcc -O2 -c of 12 generated C files (needs a benchmark image,
                   FROM patina's agent image + apt-get install gcc; --no-gcc skips)
   Reported: median of the per-round ratios patina / default.

    python3 benchmarks/seccomp.py [--rounds 7] [--files 20000] [--no-gcc]

Writes benchmarks/results/seccomp.json.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import common
from common import docker, fmt, log

WORKLOADS = {
    "git-status": "cd /data/tree && for i in 1 2 3 4 5; do git status --porcelain >/dev/null; done",
    "find-stat": "for i in 1 2 3; do find /data/tree -path /data/tree/.git -prune -o -type f -printf '%s\\n' >/dev/null; done",
    "sha256sum": "cd /data/tree && find . -path ./.git -prune -o -type f -print0 | xargs -0 sha256sum >/dev/null",
    "fork-exec": "for i in $(seq 300); do /bin/true; done",
    "syscalls": "dd if=/dev/zero of=/dev/null bs=1 count=1000000 2>/dev/null",
    "gcc": "mkdir -p /tmp/o && for f in /data/csrc/*.c; do gcc -O2 -c \"$f\" -o /tmp/o/x.o || exit 1; done",
}


def make_tree(root, files):
    """~`files` small files in 100-file directories, committed with git; C sources."""
    tree = root / "tree"
    per_dir = 100
    for d in range((files + per_dir - 1) // per_dir):
        sub = tree / f"d{d // 20:03d}" / f"s{d:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(min(per_dir, files - d * per_dir)):
            (sub / f"f{f:03d}.txt").write_text(f"file {d}/{f}\n" + "x" * ((d * 31 + f * 17) % 900) + "\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tree, check=True)
    # No background auto-gc repacking 20k loose objects in the middle of a workload.
    subprocess.run(["git", "config", "gc.auto", "0"], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "tree"], cwd=tree, check=True, env=env)
    subprocess.run(["git", "gc", "-q"], cwd=tree, check=True)
    csrc = root / "csrc"
    csrc.mkdir()
    for i in range(12):
        funcs = []
        for j in range(40):
            funcs.append(f"""
static int table_{j}[64];
int f{i}_{j}(int n) {{
    int acc = {j};
    for (int k = 0; k < n; k++) {{
        table_{j}[k & 63] ^= acc * {i + 3} + k;
        acc = (acc << 3) ^ (acc >> 2) ^ table_{j}[(k * 7) & 63];
        if (acc % {j + 5} == 0) acc += f{i}_{j - 1 if j else 0}_helper(k);
    }}
    return acc;
}}""")
        helpers = "\n".join(f"static int f{i}_{j}_helper(int x) {{ return x * {j + 1} + {i}; }}" for j in range(40))
        (csrc / f"unit{i:02d}.c").write_text(f"#include <stdio.h>\n#include <string.h>\n{helpers}\n" + "\n".join(funcs) + "\n")
    for path in [root, *root.rglob("*")]:
        os.lchown(path, 1000, 1000)
    return tree


def bench_image(agent_image, want_gcc):
    if not want_gcc:
        return agent_image, False
    tag = "patina-bench/gcc:" + agent_image.split(":")[-1]
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag, True
    log(f"building {tag} (FROM {agent_image} + apt-get install gcc; once)")
    dockerfile = (f"FROM {agent_image}\nUSER root\n"
                  "RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev "
                  "&& rm -rf /var/lib/apt/lists/*\nUSER agent\n")
    proc = subprocess.run(["docker", "build", "-q", "--label", common.BENCH_LABEL, "-t", tag, "-"],
                          input=dockerfile, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"could not build the gcc image; the gcc workload is skipped: {proc.stderr.strip()[-300:]}")
        return agent_image, False
    return tag, True


def hardened_args(profile, probe_dir):
    """The probe container's flags (see RunLifecycle.agentSpec / Protections.runProbes)."""
    return ["--user", "1000:1000", "--workdir", "/workspace", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={profile}",
            "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=1g",
            "--mount", f"type=bind,source={probe_dir}/workspace,target=/workspace",
            "--mount", f"type=bind,source={probe_dir}/home,target=/home/agent",
            "--mount", f"type=bind,source={probe_dir}/probe.sh,target=/patina/probe.sh,readonly",
            "--env", "HOME=/home/agent", "--pids-limit", "512", "--memory", "4g", "--memory-swap", "4g",
            "--cpus", "2", "--init"]


def timed_docker_run(argv):
    t0 = time.monotonic()
    proc = subprocess.run(["docker", "run", "--rm", "--label", common.BENCH_LABEL, *argv], capture_output=True, text=True)
    wall = time.monotonic() - t0
    return wall, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (workloads and docker runs)")
    parser.add_argument("--launches", type=int, default=5, help="patina --no-firewall runs for the probe step")
    parser.add_argument("--files", type=int, default=20000, help="files in the git tree")
    parser.add_argument("--no-gcc", action="store_true", help="skip the gcc workload (no benchmark image build)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated workloads")
    common.add_common_args(parser)
    args = parser.parse_args()
    common.check_prerequisites(args)
    results = {}

    # 1. BPF size
    t0 = time.monotonic()
    proc = subprocess.run([args.patina, "seccomp", "check", "--json"], capture_output=True, text=True)
    check_wall = time.monotonic() - t0
    check = json.loads(proc.stdout)
    sets = [{"architectures": s["architectures"], "instructions": s["instructions"], "rules": s["rules"]}
            for s in check["compile"]["sets"]]
    probe_checks = check.get("probe", {}).get("checks", [])
    results["bpf"] = {"sets": sets, "check_exit": proc.returncode, "check_wall": check_wall,
                      "host_probe_checks": len(probe_checks),
                      "host_probe_ok": sum(1 for c in probe_checks if c.get("ok"))}

    ws = common.Workspace(keep=args.keep)
    fake = common.FakeModel(ws.dir, common.SCRIPTS["text"], name="fake")
    try:
        # 2a. Probe step at launch (--no-firewall: the sandbox step is the probes alone)
        task = "benchmark: answer at once"
        log("warm-up")
        _, record = common.run_patina(args, ws, fake, task, ["--no-firewall"])
        agent_image = record["image"]
        run_dir = Path(record["run_dir"])
        profile = run_dir / "config" / "seccomp.json"
        keep_profile = ws.dir / "seccomp.json"
        keep_profile.write_bytes(profile.read_bytes())
        (ws.dir / "probe.sh").write_bytes((run_dir / "config" / "probe.sh").read_bytes())
        launches = []
        for i in range(args.launches):
            since = time.time() - 0.2
            wall, rec = common.run_patina(args, ws, fake, task, ["--no-firewall"])
            parts = common.sandbox_parts(common.container_timeline(since, time.time() + 0.5, rec["id"]))
            steps = common.steps_of(rec)
            launches.append({"wall": wall, "probes": steps.get("probes"), "agent_container": parts.get("agent_container")})
            log(f"launch {i + 1}/{args.launches}: wall {wall:.3f} s, probes step {steps.get('probes', 0):.3f} s")
        results["launch_probes"] = {
            "runs": launches,
            "wall": common.summary([x["wall"] for x in launches]),
            "probes_step": common.summary([x["probes"] for x in launches]),
        }

        # 2b. Direct docker runs: bare vs hardened vs hardened + probe.sh
        probe_dir = ws.dir / "probe"
        for d in ("workspace", "home"):
            (probe_dir / d).mkdir(parents=True)
            os.chown(probe_dir / d, 1000, 1000)
        (probe_dir / "probe.sh").write_bytes((ws.dir / "probe.sh").read_bytes())
        variants = {
            "bare": [agent_image, "true"],
            "hardened-true": hardened_args(keep_profile, probe_dir) + [agent_image, "true"],
            "hardened-probe.sh": hardened_args(keep_profile, probe_dir) + [agent_image, "bash", "/patina/probe.sh"],
        }
        timed_docker_run(variants["bare"])  # warm
        direct = {k: [] for k in variants}
        names = list(variants)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[:r % 3]:
                wall, proc = timed_docker_run(variants[name])
                if proc.returncode != 0 or "FAIL" in proc.stdout:
                    raise RuntimeError(f"{name} container failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
                direct[name].append(wall)
        results["docker_runs"] = {k: common.summary(v) for k, v in direct.items()}
        results["docker_runs"]["probe_script_cost"] = common.summary(
            [p - h for p, h in zip(direct["hardened-probe.sh"], direct["hardened-true"])])
        results["docker_runs"]["hardening_cost"] = common.summary(
            [h - b for h, b in zip(direct["hardened-true"], direct["bare"])])
        log("docker runs: " + ", ".join(f"{k} {common.median(v):.3f} s" for k, v in direct.items()))
    finally:
        fake.stop()

    # 3. Workloads under patina's profile vs Docker's default (and unconfined)
    image, have_gcc = bench_image(agent_image, not args.no_gcc)
    workloads = [w for w in args.workloads.split(",") if w and (w != "gcc" or have_gcc)]
    data = ws.dir / "data"
    data.mkdir()
    log(f"generating {args.files} files")
    make_tree(data, args.files)
    script = "set -e\n" + "".join(
        f"s=$EPOCHREALTIME; {WORKLOADS[w]}; e=$EPOCHREALTIME; echo \"TIME {w} $s $e\"\n" for w in workloads)
    common_args = ["--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                   "--tmpfs", "/tmp:rw,size=1g", "--env", "HOME=/tmp",
                   "--mount", f"type=bind,source={data},target=/data"]
    profiles = {
        "patina": ["--security-opt", f"seccomp={keep_profile}"],
        "default": [],
        "unconfined": ["--security-opt", "seccomp=unconfined"],
    }
    pnames = list(profiles)

    def run_workloads(pname):
        wall, proc = timed_docker_run(common_args + profiles[pname] + [image, "bash", "-c", script])
        if proc.returncode != 0:
            raise RuntimeError(f"workloads failed under {pname}: {proc.stderr[-800:]}")
        times = {}
        for line in proc.stdout.splitlines():
            if line.startswith("TIME "):
                _, w, s, e = line.split()
                times[w] = float(e) - float(s)
        return times

    try:
        log("workload warm-up")
        for pname in pnames:
            run_workloads(pname)
        samples = {p: [] for p in pnames}
        for r in range(args.rounds):
            for pname in pnames[r % 3:] + pnames[:r % 3]:
                samples[pname].append(run_workloads(pname))
            log(f"workload round {r + 1}/{args.rounds}: " + "; ".join(
                f"{w} " + "/".join(f"{samples[p][-1][w]:.3f}" for p in pnames) for w in workloads))
    finally:
        common.remove_bench_containers()
    wl = {}
    for w in workloads:
        per = {p: [s[w] for s in samples[p]] for p in pnames}
        wl[w] = {
            "command": WORKLOADS[w],
            **{p: common.summary(per[p]) for p in pnames},
            "ratio_patina_default": common.summary([a / b for a, b in zip(per["patina"], per["default"])]),
            "ratio_patina_unconfined": common.summary([a / b for a, b in zip(per["patina"], per["unconfined"])]),
            "ratio_default_unconfined": common.summary([a / b for a, b in zip(per["default"], per["unconfined"])]),
        }
    results["workloads"] = wl
    results["workload_image"] = image
    results["files"] = args.files

    # Report
    print()
    print("BPF program (patina seccomp check): " + "; ".join(
        f"{'/'.join(s['architectures'])}: {s['instructions']} instructions ({s['rules']} rules)" for s in sets)
        + f"; host probe {results['bpf']['host_probe_ok']}/{results['bpf']['host_probe_checks']} ok")
    lp = results["launch_probes"]
    print(f"probes at launch (patina --no-firewall, {args.launches} runs): the agent's container started and proven"
          f" {fmt(lp['probes_step']['median'])} = {fmt(lp['probes_step']['median'] / lp['wall']['median'], '%')}"
          f" of {fmt(lp['wall']['median'])}")
    dr = results["docker_runs"]
    print(common.table(["docker run (median)", "wall"], [
        ["bare: IMAGE true", fmt(dr["bare"]["median"])],
        ["hardened (probe flags): true", fmt(dr["hardened-true"]["median"])],
        ["hardened: bash probe.sh", fmt(dr["hardened-probe.sh"]["median"])],
        ["  probe.sh itself (paired diff)", fmt(dr["probe_script_cost"]["median"])],
        ["  hardening flags (paired diff)", fmt(dr["hardening_cost"]["median"])],
    ]))
    print()
    rows = []
    for w in workloads:
        x = wl[w]
        rows.append([w, fmt(x["patina"]["median"]), fmt(x["default"]["median"]), fmt(x["unconfined"]["median"]),
                     fmt(x["ratio_patina_default"]["median"], "x"), fmt(x["ratio_patina_unconfined"]["median"], "x"),
                     fmt(x["ratio_default_unconfined"]["median"], "x")])
    print(f"workloads, median of {args.rounds} interleaved rounds (timed inside the container; image {image})")
    print(common.table(["workload", "patina", "docker default", "unconfined", "patina/default",
                        "patina/unconf.", "default/unconf."], rows))
    common.write_results("seccomp", results, args.results)


if __name__ == "__main__":
    main()
