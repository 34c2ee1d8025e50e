#!/usr/bin/env bash
# build.sh: the one place that builds wasiserve's artifacts: the echo guest
# for wasip1 and the hostharness binary. The Dockerfile and the tests call it,
# so what CI builds is what the container image contains.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/build.sh [-h|--help] [-o|--out DIR] [MODE...]

Builds into DIR (default: bin/ in the repository; a relative DIR is taken
from the current directory). Runnable from any directory of a checkout.

modes (default: guest host):
  guest           DIR/echo.wasm: the echo guest (GOOS=wasip1 GOARCH=wasm ./guest)
  host            DIR/hostharness with go's default cgo setting: both embedded
                  engines (wasmtime, wazy) when gcc is present, wazy otherwise
  image           what the default container image holds: DIR/echo.wasm and a
                  static, pure-Go DIR/hostharness (CGO_ENABLED=0, wazy engines,
                  serve only: -tags serveonly, symbols stripped); prints the image
                  payload size
  image-wasmtime  what the "wasmtime" image target holds: DIR/echo.wasm and a
                  stripped, serve-only cgo DIR/hostharness linking embedded wasmtime 42
                  (needs gcc; the binary needs glibc: libc, libm, libdl,
                  libpthread, libgcc_s); prints the image payload size
  wasm-wasmedge   DIR/echo-wasmedge.wasm: the echo guest's variant for the WasmEdge
                  socket extensions (-tags wasmedge,getaddrinfo: listens on LISTEN_ADDR
                  itself, has GET /fetch); what the "wasm" image target holds. Only
                  WasmEdge and hostharness's project engines (wasmtime, wazy) can run it

examples:
  scripts/build.sh                     # bin/echo.wasm and bin/hostharness
  scripts/build.sh -o /tmp/img image   # the default image's files
  bin/hostharness serve bin/echo.wasm  # then: curl -d echo 127.0.0.1:8080
USAGE
}

out=""
modes=()
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-o | --out)
		[[ $# -ge 2 ]] || { echo "build.sh: $1 needs a directory" >&2; exit 2; }
		out=$2; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	guest | host | image | image-wasmtime | wasm-wasmedge) modes+=("$1"); shift ;;
	*) echo "build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
((${#modes[@]})) || modes=(guest host)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${out:-$root/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

build_guest() {
	echo "== guest: $out/echo.wasm"
	GOOS=wasip1 GOARCH=wasm go build -o "$out/echo.wasm" ./guest
}

# build_wasmedge builds the socket-extension variant; its tags are
# guestbuild.WasmEdgeTags in hostharness/internal/guestbuild.
build_wasmedge() {
	echo "== guest (WasmEdge socket extensions): $out/echo-wasmedge.wasm"
	GOOS=wasip1 GOARCH=wasm go build -tags wasmedge,getaddrinfo -o "$out/echo-wasmedge.wasm" ./guest
}

# build_host CGO [go build flags...] builds hostharness; CGO is 0, 1 or
# "default" (go's own choice).
build_host() {
	local cgo=$1
	shift
	echo "== hostharness (cgo: $cgo): $out/hostharness"
	if [[ $cgo == default ]]; then
		go build "$@" -o "$out/hostharness" ./hostharness
	else
		CGO_ENABLED=$cgo go build "$@" -o "$out/hostharness" ./hostharness
	fi
}

# report prints the sizes of an image's payload.
report() {
	local host wasm
	host=$(stat -c %s "$out/hostharness")
	wasm=$(stat -c %s "$out/echo.wasm")
	awk -v h="$host" -v w="$wasm" -v m="$1" 'BEGIN {
		printf "image payload (%s): hostharness %.1f MB + echo.wasm %.1f MB = %.1f MB (%d bytes)\n",
			m, h/1e6, w/1e6, (h+w)/1e6, h+w }'
}

for mode in "${modes[@]}"; do
	case "$mode" in
	guest) build_guest ;;
	host) build_host default ;;
	image)
		build_guest
		build_host 0 -tags=serveonly -ldflags=-s\ -w
		report "$mode" ;;
	image-wasmtime)
		command -v "$(go env CC)" >/dev/null ||
			{ echo "build.sh: image-wasmtime needs a C compiler ($(go env CC)) for cgo" >&2; exit 1; }
		build_guest
		build_host 1 -tags=serveonly -ldflags=-s\ -w
		report "$mode" ;;
	wasm-wasmedge) build_wasmedge ;;
	esac
done
