#!/usr/bin/env bash
# docker-smoke.sh: builds the container image, runs it and curls it, where a
# Docker engine is reachable; says SKIP where it is not.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/docker-smoke.sh [-h|--help] [--target wasmtime] [--port N] [--strict]

Builds the image from the repository's Dockerfile (docker build), runs it
(docker run -p 127.0.0.1:PORT:8080), POSTs "echo" with curl and checks that
"echo" comes back, then stops the container and removes the image tag.
Runnable from any directory of a checkout.

  --target T  build a Dockerfile target (e.g. wasmtime); default: the scratch image
  --port N    host port to publish on 127.0.0.1 (default 18080)
  --strict    exit 3 instead of 0 when no Docker engine is reachable

environment:
  DOCKER      the docker-compatible CLI to use (default: docker)

exit status:
  0  the image served "echo"; or SKIP: no Docker CLI or engine (without --strict)
  1  the build, run or echo check failed
  2  bad arguments
  3  SKIP with --strict: no Docker CLI or engine reachable
USAGE
}

target=""
port=18080
strict=0
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--target) [[ $# -ge 2 ]] || { echo "docker-smoke.sh: --target needs a value" >&2; exit 2; }; target=$2; shift 2 ;;
	--target=*) target=${1#--target=}; shift ;;
	--port) [[ $# -ge 2 ]] || { echo "docker-smoke.sh: --port needs a value" >&2; exit 2; }; port=$2; shift 2 ;;
	--port=*) port=${1#--port=}; shift ;;
	--strict) strict=1; shift ;;
	*) echo "docker-smoke.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
[[ $port =~ ^[0-9]+$ ]] || { echo "docker-smoke.sh: --port wants a number, got '$port'" >&2; exit 2; }

docker=${DOCKER:-docker}
skip() {
	echo "SKIP: $1; the image was not built or run (go test ./scripts checks what scripts/build.sh puts in it instead)"
	if ((strict)); then exit 3; fi
	exit 0
}
command -v "$docker" >/dev/null || skip "no '$docker' CLI on PATH"
timeout 20 "$docker" info >/dev/null 2>&1 || skip "'$docker info' reaches no Docker engine"
command -v curl >/dev/null || { echo "docker-smoke.sh: curl is needed" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="wasiserve-smoke:${target:-default}-$$"
name="wasiserve-smoke-$$"
cleanup() {
	"$docker" rm -f "$name" >/dev/null 2>&1 || true
	"$docker" rmi "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== docker build ${target:+--target $target }-t $tag ."
timeout 1800 "$docker" build ${target:+--target "$target"} -t "$tag" .
echo "== docker run -p 127.0.0.1:$port:8080 $tag"
timeout 60 "$docker" run -d --rm --name "$name" -p "127.0.0.1:$port:8080" "$tag" >/dev/null

# The guest is compiled at start (seconds); poll until it answers.
got=""
for _ in $(seq 1 60); do
	if got=$(timeout 10 curl -fsS -X POST -H 'Content-Type: text/plain' -d echo "127.0.0.1:$port" 2>/dev/null); then
		break
	fi
	if ! "$docker" inspect "$name" >/dev/null 2>&1; then
		echo "FAIL: the container exited before serving" >&2
		exit 1
	fi
	sleep 1
done
if [[ $got != echo ]]; then
	echo "FAIL: want 'echo' from 127.0.0.1:$port, got '$got'; container log:" >&2
	"$docker" logs "$name" >&2 || true
	exit 1
fi
echo "== curl -d echo 127.0.0.1:$port -> $got"
timeout 30 "$docker" stop "$name" >/dev/null
echo "PASS: image ${target:-default} served echo"
