#!/usr/bin/env bash
# Put lvsd, lvsadm and lvs-realserver on PATH: a symbolic link in $PREFIX/bin (default
# /usr/local/bin) to each of this checkout's bin/ scripts, so the programs run as the daemon's
# own process (`lvsd &` then `kill %1` stops it cleanly; `npx lvsd` would not pass the signal
# on). Run after the build (scripts/setup.sh does both); run again if the checkout moves.
#
#   sudo bash scripts/install.sh            # links in /usr/local/bin
#   sudo PREFIX=/opt/lvs bash scripts/install.sh
#   sudo bash scripts/install.sh --uninstall
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PREFIX=${PREFIX:-/usr/local}
PROGRAMS=(lvsd lvsadm lvs-realserver)

if [ "${1:-}" = --uninstall ]; then
  for p in "${PROGRAMS[@]}"; do
    # Only links into a checkout of ours: never a file someone else installed.
    if [ -L "$PREFIX/bin/$p" ] && [[ "$(readlink "$PREFIX/bin/$p")" == */bin/$p.js ]]; then
      rm -f "$PREFIX/bin/$p"
      echo "install: removed $PREFIX/bin/$p"
    fi
  done
  exit 0
fi

if [ ! -f dist/cli/lvsd.js ] || [ ! -f native/build/Release/lvs_native.node ]; then
  echo "install: build first (npm run build, or scripts/setup.sh)" >&2
  exit 1
fi
mkdir -p "$PREFIX/bin"
for p in "${PROGRAMS[@]}"; do
  target="$PREFIX/bin/$p"
  if [ -e "$target" ] && ! [ -L "$target" ]; then
    echo "install: $target exists and is not a link; left alone" >&2
    exit 1
  fi
  ln -sfn "$ROOT/bin/$p.js" "$target"
done
echo "install: ${PROGRAMS[*]} in $PREFIX/bin (links to $ROOT/bin)"
