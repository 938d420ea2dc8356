# Sourced by rig/setup.sh: run a command while printing a line every SETUP_HEARTBEAT_SECONDS
# (default 30) that says it is still working, so a slow step never looks like a hang.
# Lines start with "$HEARTBEAT_PREFIX:" (default "setup:").
#   with_heartbeat "installing the project into .venv" cmd args...
# Returns the command's exit status.
with_heartbeat() {
  local what=$1 start=$SECONDS every=${SETUP_HEARTBEAT_SECONDS:-30} rc=0 ticker
  shift
  (
    # The sleep must not hold our stdout: a pipe reader (`make test | tee`) would wait for it.
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do
      sleep "$every" </dev/null >/dev/null 2>&1 &
      nap=$!
      wait "$nap"
      echo "${HEARTBEAT_PREFIX:-setup}: still $what ($((SECONDS - start))s so far)"
    done
  ) &
  ticker=$!
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return "$rc"
}
