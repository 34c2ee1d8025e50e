#!/usr/bin/env bash
# pinned.sh: requests/s and CPU per request of several servers of the
# 4-byte echo, each pinned to one core with wrk on the other, in
# interleaved rounds; prints the median of each and its ratio to the first.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/pinned.sh [-h|--help] [--rounds N] [--duration D] [--conns N]
                         [--server-cpu C] [--load-cpu C] [--out DIR]
                         NAME=COMMAND...

Each NAME=COMMAND is a server: COMMAND is run with PORT in its environment
and must serve the echo on 127.0.0.1:$PORT (e.g.
'native=GOMAXPROCS=1 bin/echo-native -listen 127.0.0.1:$PORT', or
'wasmtime=bin/hostharness serve --engine wasmtime --listen 127.0.0.1:$PORT bin/echo.wasm').
Every round starts each server in turn under taskset -c SERVER-CPU (default
0), warms it up for 1 s, then loads it with wrk -t1 -cCONNS (default 16)
under taskset -c LOAD-CPU (default 1) for DURATION (default 5s): POST of
4 bytes, keep-alive. CPU per request is the server process's user+system
time (its threads, from /proc) over the load divided by the requests, and
so are its threads' context switches (voluntary and involuntary).
Rounds (default 5) interleave the servers, so that a change in the
machine's load hits all of them alike; the table gives medians, and the
ratio of each to the first server. Raw figures go to DIR/rounds.tsv
(default out/pinned).

Needs wrk, taskset, curl. A shared machine's absolute figures drift: compare
ratios within one run.
USAGE
}

rounds=5 duration=5s conns=16 scpu=0 lcpu=1 out=out/pinned
servers=()
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--rounds) rounds=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--conns) conns=$2; shift 2 ;;
	--server-cpu) scpu=$2; shift 2 ;;
	--load-cpu) lcpu=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-*) echo "pinned.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
	*=*) servers+=("$1"); shift ;;
	*) echo "pinned.sh: want NAME=COMMAND, got '$1'" >&2; exit 2 ;;
	esac
done
((${#servers[@]} > 0)) || { echo "pinned.sh: no servers given (try --help)" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "pinned.sh: --rounds wants a positive count" >&2; exit 2; }
for c in wrk taskset curl; do
	command -v "$c" >/dev/null || { echo "pinned.sh: $c is not installed" >&2; exit 1; }
done
mkdir -p "$out"
lua=$out/post.lua
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.body = "abcd"
wrk.headers["Content-Type"] = "text/plain"
LUA

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cpu_ticks PID: user+system clock ticks of the process, all its threads.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# ctx_switches PID: voluntary and involuntary context switches of all the
# process's threads.
ctx_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ { n += $2 } END { print n + 0 }'; }

# one NAME COMMAND: one round of one server; prints "rps cpu_us_per_req
# ctx_switches_per_req".
one() {
	local name=$1 cmd=$2 port pid i t0 t1 s0 s1 rps n
	port=$(free_port)
	PORT=$port taskset -c "$scpu" bash -c "exec env $cmd" >>"$out/$name.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		[[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' -d abcd "http://127.0.0.1:$port/") == 200 ]] && break
		kill -0 "$pid" 2>/dev/null || { echo "pinned.sh: $name exited; see $out/$name.log" >&2; return 1; }
		sleep 0.2
	done
	taskset -c "$lcpu" wrk -t1 -c"$conns" -d1s -s "$lua" "http://127.0.0.1:$port/" >/dev/null
	t0=$(cpu_ticks "$pid") s0=$(ctx_switches "$pid")
	taskset -c "$lcpu" wrk -t1 -c"$conns" -d"$duration" -s "$lua" "http://127.0.0.1:$port/" >"$out/wrk.txt"
	t1=$(cpu_ticks "$pid") s1=$(ctx_switches "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out/wrk.txt")
	n=$(awk '/requests in/ { print $1 }' "$out/wrk.txt")
	awk -v r="$rps" -v n="$n" -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.0f\t%.2f\t%.2f\n", r, (n > 0 ? t / hz * 1e6 / n : 0), (n > 0 ? s / n : 0) }'
}

: >"$out/rounds.tsv"
for ((r = 1; r <= rounds; r++)); do
	for s in "${servers[@]}"; do
		name=${s%%=*}
		printf '%s\t%d\t%s\n' "$name" "$r" "$(one "$name" "${s#*=}")" | tee -a "$out/rounds.tsv" >&2
	done
done

echo "| server | requests/s (median of $rounds) | CPU µs/request | context switches/request | requests/s ÷ first | CPU ÷ first |"
echo "|---|--:|--:|--:|--:|--:|"
awk -F'\t' '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	!($1 in seen) { seen[$1] = 1; order[++k] = $1 }
	{ rps[$1] = rps[$1] " " $3; cpu[$1] = cpu[$1] " " $4; cs[$1] = cs[$1] " " $5 }
	END {
		for (i = 1; i <= k; i++) { n = order[i]; mr[n] = median(rps[n]); mc[n] = median(cpu[n]); ms[n] = median(cs[n]) }
		f = order[1]
		for (i = 1; i <= k; i++) { n = order[i]
			printf "| %s | %.0f | %.1f | %.2f | %.2f | %.2f |\n", n, mr[n], mc[n], ms[n], mr[n] / mr[f], (mc[f] > 0 ? mc[n] / mc[f] : 0) }
	}' "$out/rounds.tsv"
