#!/usr/bin/env bash
# soak.sh: the integrity soak: mixed echo load with random client aborts
# against the served echo guest; every echo hash-checked, RSS and descriptors
# sampled (hostharness soak).
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/soak.sh [-h|--help] [--duration D] [hostharness soak flags...]

Builds bin/hostharness with scripts/build.sh and runs
  bin/hostharness soak --duration D [flags...]
from the repository root. D defaults to 30s; the full soak is --duration 10m.
Prints a summary (echoes verified, aborts injected, corrupted/truncated,
RSS and descriptors at start, max and end); exit status 1 when anything
was corrupted, truncated, failed, or grew.

examples:
  scripts/soak.sh                                   # 30 s on the default engine
  scripts/soak.sh --duration 10m                    # the full soak
  scripts/soak.sh --duration 2m --engine wazy --json out/soak.json

soak flags: bin/hostharness soak -h (after one build).
USAGE
}
for arg in "$@"; do
	case "$arg" in -h | --help) usage; exit 0 ;; esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/build.sh" --out "$root/bin" host >&2
args=("$@")
[[ " ${args[*]-} " == *" --duration"* ]] || args=(--duration 30s "${args[@]}")
cd "$root"
exec "$root/bin/hostharness" soak "${args[@]}"
