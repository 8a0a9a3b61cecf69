#!/usr/bin/env python3
"""What a round of `--rounds` costs on top of the agent's own time, against a fresh
`patina resume` of the same run doing the same work.

The task: value.txt must hold 42 (the check `grep -qx 42 value.txt`). The scripted
model writes 41 and commits (round 1: the check fails), then, in the continued
conversation, writes 42 and commits (the check passes). The model picks its turn by
the number of assistant messages, so both sides below get exactly the same turns.
In the same run, N interleaved pairs (the side that goes first alternates):

  round   `patina yolo --check CHECK --rounds 2 --json TASK`, exec to exit, minus
          the one-round run below: what round 2 adds to the command (its sandbox,
          agent, collection, check, its containers' removal and the loop's own work)
  resume  `patina yolo --check CHECK --json TASK` (one round, the check fails), then
          `patina resume --json RUN FOLLOW-UP`, exec to exit: the same second agent
          step and check, started by hand

and report the medians, the median of the per-pair ratios round / resume, and each
side's overhead: its time minus its agent step from run.json (Claude Code in its
container, the probes included), with round 2's own record (run.json `rounds`) and
the steps patina records for both.

    python3 benchmarks/rounds.py [--pairs 5]

Writes benchmarks/results/rounds.json.
"""

import argparse
import json
import subprocess
import time

import common
from common import fmt, log, median

CHECK = "grep -qx 42 value.txt"
TASK = "benchmark: set value.txt to 42"
FOLLOW_UP = "The check failed: value.txt must hold 42. Fix it and commit."


def write(value):
    return {"tool": "Bash", "input": {
        "command": f"printf '%s\\n' {value} > value.txt && git add value.txt && git commit -qm 'value {value}'",
        "description": "set the value"}}


SCRIPT = {"turns": [write(41), {"text": "Set the value."}, write(42), {"text": "Fixed the value."}]}


def run_cmd(args, ws, fake, argv):
    """One patina command with --json; (host wall seconds, exit status, record)."""
    env = fake.env({"PATINA_HOME": str(ws.home)})
    t0 = time.monotonic()
    proc = subprocess.run([args.patina, *argv], cwd=ws.repo, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    try:
        record = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"patina {argv[0]} printed no record (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return wall, proc.returncode, record


def image_flags(args):
    return ["--agent-binary", args.agent_binary, "--base-image", args.base_image, "--quiet"]


def round_side(args, ws, fake, one_round):
    wall, status, r = run_cmd(args, ws, fake, ["yolo", *image_flags(args), "--json", "--check", CHECK, "--rounds", "2", TASK])
    rounds = r.get("rounds") or []
    if status != 0 or r.get("passed_at_round") != 2 or len(rounds) != 2:
        raise RuntimeError(f"the rounds run did not pass at round 2 (exit {status}): {r.get('reason')} {r.get('stop_reason')}")
    steps = {}
    for step in r.get("steps", []):
        if step["name"].startswith("round 2 "):
            name = step["name"][len("round 2 "):]
            steps[name] = steps.get(name, 0.0) + step["seconds"]
    added = wall - one_round
    return {"wall": wall, "added": added, "round2_record": rounds[1]["duration_s"], "steps": steps,
            "overhead": added - steps.get("agent", 0.0)}


def resume_side(args, ws, fake):
    first_wall, status, first = run_cmd(args, ws, fake, ["yolo", *image_flags(args), "--json", "--check", CHECK, TASK])
    if first.get("status") != "check_failed":
        raise RuntimeError(f"the one-round run did not end check_failed (exit {status}): {first.get('reason')}")
    wall, status, r = run_cmd(args, ws, fake, ["resume", *image_flags(args), "--json", first["id"], FOLLOW_UP])
    if status != 0 or r.get("status") != "succeeded" or not (r.get("check") or {}).get("passed"):
        raise RuntimeError(f"the resume did not pass the check (exit {status}): {r.get('reason')}")
    steps = common.steps_of(r)
    return {"wall": wall, "one_round": first_wall, "steps": steps, "overhead": wall - steps.get("agent", 0.0)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved round/resume pairs")
    common.add_common_args(parser)
    args = parser.parse_args()
    common.check_prerequisites(args)

    ws = common.Workspace(keep=args.keep)
    (ws.repo / "value.txt").write_text("0\n")
    subprocess.run(["git", "add", "value.txt"], cwd=ws.repo, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "value"],
                   cwd=ws.repo, check=True)
    fake = common.FakeModel(ws.dir, SCRIPT, name="fake-rounds")
    pairs = []
    try:
        log("warm-up")
        warm = resume_side(args, ws, fake)
        round_side(args, ws, fake, warm["one_round"])
        for n in range(args.pairs):
            # The one-round run (the resume side's first command) is the rounds run's baseline:
            # the side that goes first alternates.
            pair = {}
            if n % 2 == 0:
                pair["resume"] = resume_side(args, ws, fake)
                pair["round"] = round_side(args, ws, fake, pair["resume"]["one_round"])
            else:
                pair["round"] = round_side(args, ws, fake, 0.0)
                pair["resume"] = resume_side(args, ws, fake)
                pair["round"]["added"] -= pair["resume"]["one_round"]
                pair["round"]["overhead"] -= pair["resume"]["one_round"]
            pair["ratio"] = pair["round"]["added"] / pair["resume"]["wall"]
            pair["overhead_ratio"] = pair["round"]["overhead"] / pair["resume"]["overhead"]
            log(f"pair {n + 1}/{args.pairs}: round 2 adds {fmt(pair['round']['added'])} (its record {fmt(pair['round']['round2_record'])}), "
                f"resume {fmt(pair['resume']['wall'])}, ratio {fmt(pair['ratio'], 'x')}")
            pairs.append(pair)
    finally:
        common.remove_bench_containers()

    def med(side, key):
        return median([p[side][key] for p in pairs])

    def med_step(side, name):
        return median([p[side]["steps"].get(name) for p in pairs])

    names = []
    for p in pairs:
        for side in ("round", "resume"):
            for name in p[side]["steps"]:
                if name not in names:
                    names.append(name)
    print()
    print(common.table(["", "round 2 of a --rounds run", "fresh patina resume", "ratio (median of pairs)"], [
        ["wall added (round: 2-round run - 1-round run)", fmt(med("round", "added")), fmt(med("resume", "wall")),
         fmt(median([p["ratio"] for p in pairs]), "x")],
        ["  minus the agent step = overhead", fmt(med("round", "overhead")), fmt(med("resume", "overhead")),
         fmt(median([p["overhead_ratio"] for p in pairs]), "x")],
        ["round 2's own record (run.json rounds)", fmt(med("round", "round2_record")), "-", ""],
        ["the 1-round run / the 2-round run", fmt(med("resume", "one_round")), fmt(med("round", "wall")), ""],
    ] + [[f"  step {name}", fmt(med_step("round", name)), fmt(med_step("resume", name)), ""] for name in names]))
    print(f"\n{len(pairs)} pairs; ratio min {fmt(min(p['ratio'] for p in pairs), 'x')}, max {fmt(max(p['ratio'] for p in pairs), 'x')}")
    common.write_results("rounds", {"pairs": pairs, "summary": {
        "round_added": common.summary([p["round"]["added"] for p in pairs]),
        "round2_record": common.summary([p["round"]["round2_record"] for p in pairs]),
        "resume": common.summary([p["resume"]["wall"] for p in pairs]),
        "ratio": common.summary([p["ratio"] for p in pairs]),
        "overhead_round": common.summary([p["round"]["overhead"] for p in pairs]),
        "overhead_resume": common.summary([p["resume"]["overhead"] for p in pairs]),
        "overhead_ratio": common.summary([p["overhead_ratio"] for p in pairs]),
    }}, args.results)


if __name__ == "__main__":
    main()
