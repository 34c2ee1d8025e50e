#!/usr/bin/env bash
# bench.sh: measure the echo guest natively and as wasm under each engine,
# side by side in one run (go run ./hostharness bench).
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/bench.sh [-h|--help] [hostharness bench flags...]

Runs `go run ./hostharness bench` from the repository root, whatever the
current directory. Targets: the native echo guest with GOMAXPROCS=1 (the
reference of every ratio), the native guest unrestricted, and the wasm guest
under every embedded engine and installed runtime CLI, each in its own
process. Prints Markdown tables and writes report.md, report.json and
chart.svg under --out (default out/bench in the repository;
relative --out, --json and --cache-dir are taken from the current directory).

Common flags (see `go run ./hostharness bench -h` for all):
  --engine all|NAME[,NAME]   engines for the wasm targets (default all)
  --duration 10s             load per mix, and for the wrk cross-check
  --conns 16                 concurrent connections of the load
  --json FILE                also write the JSON report to FILE
  --out DIR                  output directory
Needs Linux (/proc), Go 1.26 and gcc (for embedded wasmtime); wrk is used
for a cross-check where installed.
USAGE
}
for arg in "$@"; do
	case "$arg" in -h|--help) usage; exit 0 ;; esac
done

# The bench must run inside the module (it builds the guests), so paths
# given relative to the caller's directory are made absolute first.
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
args=()
while (($#)); do
	case "$1" in
	-out|--out|-json|--json|-cache-dir|--cache-dir)
		if (($# < 2)); then echo "bench.sh: $1 needs a value" >&2; exit 2; fi
		args+=("$1" "$(abs "$2")"); shift 2 ;;
	-out=*|--out=*|-json=*|--json=*|-cache-dir=*|--cache-dir=*)
		args+=("${1%%=*}=$(abs "${1#*=}")"); shift ;;
	*) args+=("$1"); shift ;;
	esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go run ./hostharness bench ${args[@]+"${args[@]}"}
