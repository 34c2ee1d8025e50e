#!/usr/bin/env bash
# run.sh: builds hostharness and the echo guest (scripts/build.sh) and serves
# a guest with them.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/run.sh [-h|--help] [hostharness serve flags...] [guest.wasm]

Builds bin/hostharness and bin/echo.wasm with scripts/build.sh, then runs
  bin/hostharness serve [flags...] [guest.wasm]
from the current directory, so relative paths stay as given. Without a
guest.wasm argument it serves bin/echo.wasm. Stop it with Ctrl-C.

examples:
  scripts/run.sh                                  # echo on 127.0.0.1:8080
  scripts/run.sh --listen 127.0.0.1:9090 --engine wazy
  scripts/run.sh --dir ./data:/data app.wasm

serve flags: run bin/hostharness serve -h (after one build), or see README.md.
USAGE
}
for arg in "$@"; do
	case "$arg" in -h | --help) usage; exit 0 ;; esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/build.sh" --out "$root/bin" guest host >&2

args=("$@")
if (($# == 0)) || [[ ${args[-1]} != *.wasm ]]; then
	args+=("$root/bin/echo.wasm")
fi
exec "$root/bin/hostharness" serve "${args[@]}"
