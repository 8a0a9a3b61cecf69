"""Shared helpers for patina's benchmarks (Python 3 standard library only).

Everything a benchmark starts is its own: a temporary git repository, a private
PATINA_HOME, the scripted fake of the Anthropic API (on the docker bridge
gateway), listeners, docker containers labelled `patina-bench=1`. All of it is
removed when the benchmark ends. No traffic leaves this machine.
"""

import atexit
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
FAKE_MODEL = ROOT / "Tests" / "Fixtures" / "fake_anthropic.py"
DEFAULT_PATINA = ROOT / ".build-bench" / "release" / "patina"
DEFAULT_AGENT_BINARY = ROOT / ".cache" / "claude" / "claude"
DEFAULT_BASE_IMAGE = "patina-test/bookworm:minbase"
GATEWAY = "172.17.0.1"
BENCH_LABEL = "patina-bench=1"

STEP_NAMES = ["protections", "image", "branch", "render", "sandbox", "agent", "collect"]

# Scripts for the fake model: a task the agent finishes at once.
SCRIPTS = {
    # one turn: the final answer
    "text": {"turns": [{"text": "Done."}]},
    # one trivial tool call, then the final answer
    "bash": {"turns": [{"tool": "Bash", "input": {"command": "true", "description": "no-op"}},
                       {"text": "Done."}]},
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def add_common_args(parser):
    parser.add_argument("--patina", default=os.environ.get("PATINA_BENCH_BINARY", str(DEFAULT_PATINA)),
                        help="patina executable (default: .build-bench/release/patina; "
                             "build it with `swift build -c release --scratch-path .build-bench`)")
    parser.add_argument("--agent-binary", default=str(DEFAULT_AGENT_BINARY),
                        help="Linux claude executable copied into the agent image")
    parser.add_argument("--base-image", default=DEFAULT_BASE_IMAGE, help="base image of the sandbox")
    parser.add_argument("--results", default=None, help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (for debugging)")


def check_prerequisites(args):
    if not Path(args.patina).is_file():
        sys.exit(f"patina not found at {args.patina}: build it with "
                 "`swift build -c release --scratch-path .build-bench` (or pass --patina)")
    if not Path(args.agent_binary).is_file():
        sys.exit(f"claude binary not found at {args.agent_binary} (pass --agent-binary)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        sys.exit("docker is not answering")
    if subprocess.run(["docker", "image", "inspect", args.base_image], capture_output=True).returncode != 0:
        sys.exit(f"base image {args.base_image} is missing")


# ---------------------------------------------------------------- statistics

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def fmt(value, unit="s", digits=3):
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value * 100:.1f}%"
    return f"{value:.{digits}f} s"


def table(headers, rows):
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release}
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
        info["docker"] = out.stdout.strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        info["patina_commit"] = out.stdout.strip()
    except OSError:
        pass
    return info


def write_results(name, data, path=None):
    path = Path(path) if path else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(), **data}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.rename(path)
    log(f"results written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


# ---------------------------------------------------------------- workspace

class Workspace:
    """A temporary directory (under `parent`, default the system's) with a git repository
    and a private PATINA_HOME."""

    def __init__(self, keep=False, parent=None):
        self.dir = Path(tempfile.mkdtemp(prefix="patina-bench-", dir=parent))
        self.keep = keep
        self.repo = self.dir / "repo"
        self.home = self.dir / "home"
        self.homes = [self.home]
        self.repo.mkdir()
        env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=self.repo, check=True)
        (self.repo / "README.md").write_text("benchmark repository\n")
        subprocess.run(["git", "add", "-A"], cwd=self.repo, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "initial commit"], cwd=self.repo, check=True, env=env)
        atexit.register(self.close)

    def other_home(self, name):
        """One more PATINA_HOME in the workspace, removed with it."""
        home = self.dir / name
        self.homes.append(home)
        return home

    def close(self):
        if not self.keep and self.dir.exists():
            # A store patina placed in its neutral folder (a link in the home) goes too.
            for home in self.homes:
                repos = home / "repos"
                for link in repos.iterdir() if repos.is_dir() else []:
                    if link.is_symlink():
                        shutil.rmtree(os.readlink(link), ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- fake model

class FakeModel:
    """The scripted fake Anthropic API from Tests/Fixtures, on the bridge gateway."""

    def __init__(self, workdir, script, name="fake"):
        self.dir = Path(workdir)
        self.script = self.dir / f"{name}-script.json"
        self.record = self.dir / f"{name}-record.jsonl"
        self.port_file = self.dir / f"{name}.port"
        self.script.write_text(json.dumps(script))
        self.log = open(self.dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_MODEL), "--host", GATEWAY, "--port", "0", "--script", str(self.script),
             "--record", str(self.record), "--port-file", str(self.port_file)],
            stdout=self.log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        deadline = time.monotonic() + 15
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake model did not start; see {self.dir / (name + '.log')}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text().strip())
        self.base_url = f"http://{GATEWAY}:{self.port}"

    def env(self, extra=None):
        env = dict(os.environ)
        for name in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"):
            env.pop(name, None)
        env.update(ANTHROPIC_API_KEY="sk-fake", ANTHROPIC_BASE_URL=self.base_url)
        env.update(extra or {})
        return env

    def requests(self):
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- patina runs

def run_patina(args, ws, fake, task, extra=(), check=True, home=None):
    """One `patina yolo --json` run. Returns (host wall seconds, run record)."""
    cmd = [args.patina, "yolo", "--agent-binary", args.agent_binary, "--base-image", args.base_image,
           "--quiet", "--json", *extra, task]
    env = fake.env({"PATINA_HOME": str(home or ws.home)})
    if "PATINA_DATA_DIR" not in env and not (Path(args.patina).resolve().is_relative_to(ROOT)):
        env["PATINA_DATA_DIR"] = str(ROOT)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ws.repo, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    try:
        record = json.loads(proc.stdout)
    except json.JSONDecodeError:
        record = None
    if check and (proc.returncode != 0 or not record or record.get("status") != "succeeded"):
        raise RuntimeError(f"patina run failed (exit {proc.returncode}): "
                           f"{(record or {}).get('reason') or proc.stderr.strip()[-800:]}")
    return wall, record


def steps_of(record):
    out = {}
    for step in record.get("steps", []):
        out[step["name"]] = out.get(step["name"], 0.0) + step["seconds"]
    return out


# ---------------------------------------------------------------- docker

def docker(*argv, check=True, **kw):
    return subprocess.run(["docker", *argv], check=check, capture_output=True, text=True, **kw)


def remove_bench_containers():
    out = docker("ps", "-aq", "--filter", f"label={BENCH_LABEL}", check=False).stdout.split()
    if out:
        docker("rm", "-f", *out, check=False)


def events_by_role(since, until, selector):
    """The first time (seconds since epoch) of each action (create, start, die, destroy...)
    of the containers `selector` (a `docker events` filter) picks, from `docker events`,
    keyed by the container's patina.role ("" for a container without one)."""
    proc = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", "type=container", "--filter", selector,
                  "--format", '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "patina.role"}}', check=False)
    roles = {}
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2:
            continue
        role = parts[2].strip() if len(parts) == 3 else ""
        roles.setdefault(role, {}).setdefault(parts[1].split(":")[0], int(parts[0]) / 1e9)
    return roles


def container_timeline(since, until, run_id):
    """Per container of a patina run: its actions' times, keyed by its patina.role."""
    return events_by_role(since, until, f"label=patina.run={run_id}")


def named_container_timeline(since, until, name):
    """One container's actions' times, by its name."""
    return events_by_role(since, until, f"container={name}").get("", {})


def sandbox_parts(timeline):
    """Splits the sandbox step with docker's own event times.

    holder: create -> start of the network holder (namespace + resolver; it then
    applies the firewall itself, before any other container joins);
    agent_container: create -> die of the agent's container (its probes, then Claude Code);
    teardown (part of collect): the agent's exit -> the last container removed.
    """
    parts = {}
    def span(role, a, b):
        t = timeline.get(role, {})
        if a in t and b in t:
            return t[b] - t[a]
        return None
    parts["holder"] = span("network", "create", "start")
    parts["agent_container"] = span("agent", "create", "die")
    # Part of collect: from the agent's exit until the last container is gone.
    ends = [t["destroy"] for t in timeline.values() if "destroy" in t]
    if ends and "die" in timeline.get("agent", {}):
        parts["teardown"] = max(ends) - timeline["agent"]["die"]
    return {k: v for k, v in parts.items() if v is not None}


_claude_volumes = {}


def claude_volume_mount(agent_binary):
    """The `--mount` of the volume patina keeps Claude Code in (`patina-claude-<sha256
    prefix>`, read-only at /patina/claude, where the image's `claude` points), when it
    exists: a patina from before the volume has the binary in the image instead."""
    if agent_binary not in _claude_volumes:
        digest = hashlib.sha256()
        with open(agent_binary, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        name = "patina-claude-" + digest.hexdigest()[:16]
        exists = subprocess.run(["docker", "volume", "inspect", name], capture_output=True).returncode == 0
        _claude_volumes[agent_binary] = (
            ["--mount", f"type=volume,source={name},target=/patina/claude,readonly,volume-nocopy"] if exists else [])
    return _claude_volumes[agent_binary]


def bare_agent_run(image, fake, task, name=None, agent_binary=None):
    """The same agent in a bare `docker run` of the same image: same binary, same
    fake model, same environment, the same headless command. Returns wall seconds."""
    cmd = ["docker", "run", "--rm", "--label", BENCH_LABEL]
    if name:
        cmd += ["--name", name]
    if agent_binary:
        cmd += claude_volume_mount(agent_binary)
    cmd += ["-e", "ANTHROPIC_API_KEY", "-e", "ANTHROPIC_BASE_URL",
            "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "-e", "DISABLE_AUTOUPDATER=1",
            "-e", "HOME=/tmp/h", "--user", "1000:1000", image,
            "bash", "-c", 'mkdir -p /tmp/h && cd /tmp && git init -q w && cd w && '
                          'exec claude -p "$0" --dangerously-skip-permissions --output-format stream-json --verbose',
            task]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=fake.env(), capture_output=True, text=True)
    wall = time.monotonic() - t0
    result = None
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == "result":
            result = event
    if proc.returncode != 0 or not result or result.get("is_error") or result.get("subtype") != "success":
        raise RuntimeError(f"bare docker run failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return wall, result
