#!/bin/bash
# The protections' proof, run as the first thing in every sandbox container (the
# agent's, a shell's, the lifecycle commands', the check's), as that container's user,
# with its capabilities, seccomp profile and network namespace, before its command.
#
#   probe.sh                               prints PASS/FAIL lines; exits 1 if any failed
#   probe.sh --handshake DIR -- COMMAND..  writes them to DIR/report (whole, at once),
#                                          then waits for patina's answer on the FIFO
#                                          DIR/go: "go" execs COMMAND, anything else
#                                          (or no answer in 120 s) exits 97. Exits 97 at
#                                          once when a probe failed: COMMAND never runs.
# Started as `/bin/bash --posix` (so that no BASH_ENV file ran first); bash's own mode from here.
set +o posix
# The checks run the system's own tools, never what the image's PATH (which may name the
# worktree, where an earlier run's agent could have left a `chmod`) finds first, and no
# shell they start reads a BASH_ENV or ENV file; the command gets all three back.
command_path=$PATH command_bash_env=${BASH_ENV-} command_env=${ENV-} command_set=${BASH_ENV+b}${ENV+e}
PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset BASH_ENV ENV
handshake=
if [ "${1:-}" = --handshake ]; then
  handshake=$2
  shift 3
  exec 8>&1 7>&2 > "$handshake/report.tmp" 2>&1
fi
started=${EPOCHREALTIME/./}
fails=0
# The firewall's self-test (mostly waiting on the network) runs alongside the checks
# below; its lines follow theirs. Its end time lets patina count its wait for late
# arrivals at the canary from then. The container may start while the network holder
# still applies the firewall (nothing here uses the network before the self-test): with
# a handshake, the self-test first waits for patina's word on the FIFO DIR/firewall.
selftest=
if [ -f /patina/firewall/selftest.sh ]; then
  exec {selftest}< <(
    if [ -n "$handshake" ]; then
      exec {word}<>"$handshake/firewall"
      read -r -t 60 -u "$word" applied || applied="no answer in 60 s"
      if [ "$applied" != applied ]; then
        echo "FAIL firewall-applied patina did not report the firewall applied ($applied)"
        echo "SELFTEST-END 1 ${EPOCHREALTIME/./}"
        exit
      fi
    fi
    bash /patina/firewall/selftest.sh 2>&1; echo "SELFTEST-END $? ${EPOCHREALTIME/./}")
fi
# Which container ran these checks (docker names its hostname after the container's id).
read -r hostname < /etc/hostname
echo "INFO container $hostname"
pass() { echo "PASS $1 $2"; }
fail() { echo "FAIL $1 $2"; fails=$((fails + 1)); }
# This shell's own status, read without starting a process (the checks run before the
# command starts, on the critical path of every run).
declare -A status=()
while IFS=$':\t' read -r key value; do status[$key]=$value; done < /proc/self/status

[ "${status[Seccomp]:-}" = "2" ] && pass seccomp "mode 2 (filter)" || fail seccomp "mode ${status[Seccomp]:-}, expected 2"
[ "${status[NoNewPrivs]:-}" = "1" ] && pass no-new-privs "NoNewPrivs 1" || fail no-new-privs "NoNewPrivs ${status[NoNewPrivs]:-}"
[ "${status[CapEff]:-}" = "0000000000000000" ] && pass cap-effective "empty" || fail cap-effective "CapEff ${status[CapEff]:-}"
# Empty unless the repository's configuration adds capabilities back (cap_add).
expected_bounding="${PATINA_EXPECTED_CAPBND:-0000000000000000}"
[ "${status[CapBnd]:-}" = "$expected_bounding" ] && pass cap-bounding "CapBnd $expected_bounding" || fail cap-bounding "CapBnd ${status[CapBnd]:-}, expected $expected_bounding"
[ "$EUID" != "0" ] && pass non-root "uid $EUID" || fail non-root "running as root"
# A call the profile denies must fail; pick one the repository has not relaxed.
relaxed=" ${PATINA_SECCOMP_RELAXED:-} "
if [[ "$relaxed" != *" unshare "* ]]; then
  if out=$(unshare --user --map-root-user true 2>&1); then
    fail denied-call "unshare --user succeeded"
  else
    pass denied-call "unshare --user refused: ${out##*: }"
  fi
elif [[ "$relaxed" != *" personality "* ]]; then
  if out=$(setarch "$(uname -m)" -R true 2>&1); then
    fail denied-call "personality(ADDR_NO_RANDOMIZE) succeeded"
  else
    pass denied-call "personality(ADDR_NO_RANDOMIZE) refused: ${out##*: }"
  fi
else
  fail denied-call "both unshare and personality are relaxed: no denied call left to prove the filter with"
fi
# Then every call on patina's deny list (this architecture's numbers, relaxed ones left
# out), each with zero arguments: each must fail with EPERM, the filter's answer. Success
# or any other error means the call reached the kernel.
if [ -n "${PATINA_DENIED_SYSCALLS:-}" ]; then
  leaked=$(perl -e 'for (split / /, $ENV{PATINA_DENIED_SYSCALLS}) { my ($n, $nr) = split /:/; $! = 0; my $r = syscall($nr + 0, 0, 0, 0, 0, 0, 0); print "$n=" . ($r == -1 ? ($! + 0) : "ok") . " " unless $r == -1 && $!{EPERM}; }' 2>&1)
  read -ra denied <<< "$PATINA_DENIED_SYSCALLS"
  count=${#denied[@]}
  if [ -z "$leaked" ]; then pass denied-calls "all $count refused with EPERM"; else fail denied-calls "reached the kernel: $leaked"; fi
else
  fail denied-calls "no deny list given to the probe"
fi
# No file may be made setuid or setgid: through the worktree's idmapped view it would be
# root's on the host. (Skipped when the repository relaxed chmod.)
if [[ "$relaxed" != *" chmod "* ]]; then
  # On the agent's own home (the mode stays as it was when refused): one process.
  if chmod u+s,g+s "$HOME" 2>/dev/null; then
    fail no-setuid "chmod u+s,g+s succeeded"
  else
    pass no-setuid "chmod u+s,g+s refused"
  fi
fi
if touch /patina-probe 2>/dev/null; then rm -f /patina-probe; fail read-only-root "/ is writable"; else pass read-only-root "/ is read-only"; fi
if [ -w /workspace ] && [ -w /tmp ] && [ -w "$HOME" ]; then pass writable "/workspace, /tmp, \$HOME"; else fail writable "/workspace, /tmp or \$HOME is not writable"; fi
# /tmp runs what is written there (toolchains build and run there); nosuid and nodev stay.
tmp_options=$(awk '$2 == "/tmp" { print $4 }' /proc/mounts)
case ",$tmp_options," in
  *,noexec,*) fail tmp-exec "/tmp is noexec ($tmp_options)" ;;
  *,nosuid,*nodev,*|*,nodev,*nosuid,*) pass tmp-exec "/tmp: exec, nosuid, nodev" ;;
  *) fail tmp-exec "/tmp lacks nosuid or nodev ($tmp_options)" ;;
esac
[ -S /var/run/docker.sock ] || [ -S /run/docker.sock ] && fail docker-socket "docker socket is mounted" || pass docker-socket "absent"
if [ -e /patina/host-objects ] && touch /patina/host-objects/probe 2>/dev/null; then
  fail host-objects "the host's objects are writable"
else
  pass host-objects "read-only"
fi

if [ -n "$selftest" ]; then
  ended=
  while IFS= read -r -u "$selftest" line; do
    if [[ "$line" == "SELFTEST-END "* ]]; then ended=$line; else printf '%s\n' "$line"; fi
  done
  exec {selftest}<&-
  read -r _ code at <<< "${ended:-SELFTEST-END 1 0}"
  [ "$code" = 0 ] || fails=$((fails + 1))
  echo "INFO self-test ended at $at"
fi
echo "INFO probes took $(( (${EPOCHREALTIME/./} - started) / 1000 )) ms"
if [ -z "$handshake" ]; then
  [ "$fails" -eq 0 ]
  exit
fi

# Opened read-write, the FIFO never blocks here and patina can write as soon as the
# report is there; patina checks what it can see from outside (the canary) first.
exec 9<>"$handshake/go" 1>&8 2>&7 8>&- 7>&-
mv "$handshake/report.tmp" "$handshake/report"
[ "$fails" -eq 0 ] || exit 97
read -r -t 120 -u 9 answer || answer="no answer"
exec 9<&-
[ "$answer" = go ] || { echo "patina: the protection checks were not accepted ($answer)" >&2; exit 97; }
unset PATINA_EXPECTED_CAPBND PATINA_SECCOMP_RELAXED PATINA_DENIED_SYSCALLS
PATH=$command_path
[[ $command_set != *b* ]] || export BASH_ENV=$command_bash_env
[[ $command_set != *e* ]] || export ENV=$command_env
# A command that cannot run fails in the words of a shell, not as a line of this script.
if [ $# -eq 0 ]; then
  :
elif [[ $1 == */* ]]; then
  [ -e "$1" ] || { echo "$1: No such file or directory" >&2; exit 127; }
  [ -x "$1" ] && [ ! -d "$1" ] || { echo "$1: Permission denied" >&2; exit 126; }
elif ! command -v -- "$1" >/dev/null 2>&1; then
  echo "$1: command not found" >&2
  exit 127
fi
exec "$@"
