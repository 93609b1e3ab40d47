# shellcheck shell=bash
# What the multi-director demos (demo-ha.sh, demo-ecmp.sh) share. They set P (the lab's
# namespace prefix) and LOGS (a scratch directory) before using these.

# step TEXT: a section heading.
step() { printf '\n== %s\n' "$*"; }

# on NS CMD...: show CMD with the namespace it runs in (without the lab's prefix), then run it.
on() {
  local ns=$1
  shift
  printf '# [%s] %s\n' "${ns#"$P"-}" "$*"
  ip netns exec "$ns" "$@"
}

# teardown PID...: stop those processes, then remove the lab and the scratch directory.
teardown() {
  trap - EXIT INT TERM
  echo
  echo "== tearing down the lab"
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  sleep 1.5
  bash netns/lab.sh down "$P" || true
  rm -rf "$LOGS"
}
