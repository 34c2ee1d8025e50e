#!/usr/bin/env bash
# test.sh: the project's test suite: formatting, vet, a cgo-free build,
# go test ./... (every embedded engine, real sockets on 127.0.0.1), and the
# native-versus-wasm comparison of the echo guest.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/test.sh [-h|--help] [go test flags...]

Runs, from the repository root whatever the current directory:
  gofmt -l (must list nothing), go vet ./... (and for wasip1, the guest packages),
  CGO_ENABLED=0 go build ./... (the pure-Go build, without embedded wasmtime),
  the cross-builds of CROSS_TARGETS (default: freebsd/amd64 darwin/arm64
  windows/amd64 linux/arm64 linux/386; "all" is one target of every GOOS
  whose standard library has package net),
  go test ./... with any extra flags given (e.g. -run TestEcho -v, or -short
  for the unit tests alone, in well under two minutes),
  go test ./... in examples/embed (a module of its own that embeds the library),
  go test in deploy/k8s (the Kubernetes manifests decoded strictly into the
  k8s.io/api types and checked against each other; a module of its own),
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
echo "== GOOS=wasip1 go vet (guest packages)"
GOOS=wasip1 GOARCH=wasm go vet ./guest/...
echo "== CGO_ENABLED=0 go build"
CGO_ENABLED=0 go build ./...
cross=${CROSS_TARGETS:-freebsd/amd64 darwin/arm64 windows/amd64 linux/arm64 linux/386}
if [[ "$cross" == all ]]; then
	cross="aix/ppc64 android/arm64 darwin/arm64 dragonfly/amd64 freebsd/amd64 illumos/amd64
		linux/amd64 netbsd/amd64 openbsd/amd64 plan9/amd64 solaris/amd64 windows/amd64"
fi
for target in $cross; do
	echo "== GOOS=${target%/*} GOARCH=${target#*/} go build"
	GOOS=${target%/*} GOARCH=${target#*/} CGO_ENABLED=0 go build ./...
done
echo "== go test"
go test -count=1 -timeout 15m "$@" ./...
echo "== go test in examples/embed (a module of its own)"
(cd examples/embed && go vet ./... && go test -count=1 "$@" ./...)
echo "== go test in deploy/k8s (the Kubernetes manifests, strictly decoded; a module of its own)"
(cd deploy/k8s && go vet ./... && go test -count=1 ./...)
echo "== guest/wasihttp framework checks (chi, gin, echo)"
(cd guest/wasihttp/testdata/frameworks && go vet ./... && go test -count=1 ./...)
echo "== hostharness compare --engine all --allow-known"
go run ./hostharness compare --engine all --allow-known
