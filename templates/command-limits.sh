#!/bin/bash
# Claude Code runs every command of the agent through this wrapper
# (CLAUDE_CODE_SHELL_PREFIX, the command as one argument). It gives the command and
# all it starts lower limits than Claude Code's own, so a runaway build or a fork
# flood fails the command rather than Claude Code:
# - processes: at most PATINA_COMMAND_PROCS for the agent's user (soft and hard, so
#   the command cannot raise it), leaving the rest of the container's pids limit to
#   Claude Code;
# - memory: first in line for the OOM killer (oom_score_adj 1000).
# Shipped with patina and mounted read-only; a repository cannot override it.
ulimit -S -H -u "${PATINA_COMMAND_PROCS:-448}" 2>/dev/null
echo 1000 > /proc/self/oom_score_adj 2>/dev/null
exec /bin/bash -c "$1"
