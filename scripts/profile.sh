#!/usr/bin/env bash
# profile.sh: where a guest's CPU goes, by guest function, under load.
# Serves the guest with hostharness on one core, loads it with wrk from the
# other, samples the server with perf (cpu-clock) and names each sample in
# compiled guest code after the guest function it falls in: the wasmtime
# engine maps the guest's compiled code from its cache file, an ELF object
# whose symbol table names every function (wasm[0]::function[N]::NAME).
# Optionally adds instructions and host calls per request from
# scripts/account.sh's callgrind run, resolved the same way.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/profile.sh [-h|--help] [--engine E] [--guest FILE] [--bin DIR]
                          [--env KEY=VALUE]... [--duration D] [--conns N]
                          [--top N] [--out DIR] [--calls]

  --engine E       engine of hostharness serve (default wasmtime; on wazy the
                   compiled code has no symbols: its samples are one line)
  --guest FILE     the wasm guest (default: the echo guest, built into --bin)
  --bin DIR        where echo.wasm and hostharness are (built if missing;
                   default DIR/bin under --out)
  --env KEY=VALUE  guest environment (repeatable)
  --duration D     load and sampling time (default 10s)
  --conns N        wrk connections (default 16); the load is a 4-byte POST
  --top N          functions listed (default 40)
  --out DIR        perf.data, maps and the report (default out/profile)
  --calls          also run scripts/account.sh (callgrind, minutes) for
                   instructions per request by guest function and host
                   calls per request

Prints requests/s, CPU µs per request, the share of samples in compiled
guest code, in the engine and host, by Go package and by guest function.
Needs perf (Debian: linux-perf), wrk, taskset, curl, python3, binutils.
USAGE
}

engine=wasmtime guest="" bin="" duration=10s conns=16 top=40 out=out/profile calls=0
envs=()
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--engine) engine=$2; shift 2 ;;
	--guest) guest=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--conns) conns=$2; shift 2 ;;
	--top) top=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--calls) calls=1; shift ;;
	-*) echo "profile.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
	*) echo "profile.sh: unexpected argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
for c in perf wrk taskset curl python3 nm readelf; do
	command -v "$c" >/dev/null || { echo "profile.sh: $c is not installed" >&2; exit 1; }
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=${bin:-$out/bin}
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)
if [[ ! -x $bin/hostharness || (-z $guest && ! -f $bin/echo.wasm) ]]; then
	(cd "$root" &&
		GOOS=wasip1 GOARCH=wasm go build -o "$bin/echo.wasm" ./guest &&
		go build -o "$bin/hostharness" ./hostharness)
fi
guest=${guest:-$bin/echo.wasm}
guest=$(cd "$(dirname "$guest")" && pwd)/$(basename "$guest")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(serve --engine "$engine" --listen "127.0.0.1:$port")
for e in ${envs[@]+"${envs[@]}"}; do args+=(--env "$e"); done
taskset -c 0 "$bin/hostharness" "${args[@]}" "$guest" >"$out/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for ((i = 0; i < 900; i++)); do
	[[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' -d abcd "http://127.0.0.1:$port/") == 200 ]] && break
	kill -0 "$pid" 2>/dev/null || { echo "profile.sh: server exited; see $out/serve.log" >&2; exit 1; }
	sleep 0.2
done
cat >"$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "abcd"
wrk.headers["Content-Type"] = "text/plain"
LUA
load() { taskset -c 1 wrk -t1 -c"$conns" -d"$1" -s "$out/post.lua" "http://127.0.0.1:$port/"; }
load 2s >/dev/null
cp "/proc/$pid/maps" "$out/maps.txt"
t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
perf record -q -e cpu-clock -F 1999 -p "$pid" -o "$out/perf.data" 2>"$out/perf.log" &
perfpid=$!
sleep 0.5
load "$duration" >"$out/wrk.txt"
kill -INT "$perfpid"
wait "$perfpid" || true
t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT
rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out/wrk.txt")
n=$(awk '/requests in/ { print $1 }' "$out/wrk.txt")
perf script -i "$out/perf.data" -F ip,sym,dso 2>/dev/null >"$out/samples.txt"

resolve=$root/scripts/profile_resolve.py
{
	echo "## profile of $(basename "$guest") on $engine ($(date -u +%FT%TZ))"
	echo
	awk -v r="$rps" -v n="$n" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "requests/s %.0f; CPU %.1f µs per request (user+system of the server over the load)\n\n", r, t / hz * 1e6 / n }'
	python3 "$resolve" perf "$out/maps.txt" "$out/samples.txt" "$top"
} | tee "$out/report.md"

if ((calls)); then
	acct=(--no-strace --no-memory --out "$out/account" --bin "$bin" --guest "$guest")
	for e in ${envs[@]+"${envs[@]}"}; do acct+=(--env "$e"); done
	"$root/scripts/account.sh" "${acct[@]}" "$engine" >/dev/null
	{
		echo
		echo "### instructions per request by guest function (callgrind, windows of scripts/account.sh)"
		echo
		python3 "$resolve" callgrind "$out/account/maps.$engine.txt" \
			"$out/account/cg.$engine.out.1" "$out/account/cg.$engine.out.2" "$top" \
			"$(awk '/windows n1=/ { sub(/.*n1=/, ""); split($0, a, " n2="); print a[1], a[2] }' "$out/account/summary.md" | tail -1)"
		echo
		awk '/^### '"$engine"'$/ { on = 1 } on && /^host calls per request/ { p = 1 } p { print } p && /^$/ && ++blank == 2 { exit }' "$out/account/summary.md"
	} | tee -a "$out/report.md"
fi
