#!/usr/bin/env bash
# test.sh: the project's test suite: formatting, vet, a cgo-free build,
# go test ./... (every embedded engine, real sockets on 127.0.0.1), and the
# native-versus-wasm comparison of the echo guest.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/test.sh [-h|--help] [go test flags...]

Runs, from the repository root whatever the current directory:
  gofmt -l (must list nothing), go vet ./...,
  CGO_ENABLED=0 go build ./... (the pure-Go build, without embedded wasmtime),
  go test ./... with any extra flags given (e.g. -run TestEcho -v),
  the framework checks of guest/wasihttp (chi, gin, echo through the fast
  path and through net/http; a module of their own, testdata/frameworks),
  go run ./hostharness compare --engine all --allow-known (the wasm echo guest answers a
  request corpus like the native build, on every engine; docs/COMPARE.md).
Needs Go 1.26 and gcc (cgo, for the embedded wasmtime engine). The tests
include scripts/build.sh's image builds (go test ./scripts), the stand-in for
docker build + run where no Docker engine runs.
USAGE
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== gofmt"
unformatted=$(gofmt -l .)
if [[ -n "$unformatted" ]]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== CGO_ENABLED=0 go build"
CGO_ENABLED=0 go build ./...
echo "== go test"
go test -count=1 -timeout 15m "$@" ./...
echo "== guest/wasihttp framework checks (chi, gin, echo)"
(cd guest/wasihttp/testdata/frameworks && go vet ./... && go test -count=1 ./...)
echo "== hostharness compare --engine all --allow-known"
go run ./hostharness compare --engine all --allow-known
