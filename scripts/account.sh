#!/usr/bin/env bash
# account.sh: where the instructions, syscalls and host calls of one request
# go. Serves the 4-byte keep-alive echo natively and under each given engine,
# counts instructions with callgrind over two windows of N1 and N2 requests in
# the same process (so that start-up, compilation and any fixed cost of a
# window cancel: per request = (I(N2) - I(N1)) / (N2 - N1)), splits them by
# part, counts host calls by function from callgrind's call counts, syscalls
# with strace over two windows the same way, and reads the memory of the
# served process after a load, with one instance and with two.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/account.sh [-h|--help] [--n1 N] [--n2 N] [--out DIR]
                          [--bin DIR] [--env KEY=VALUE]... [--guest FILE]
                          [--native FILE] [--path PATH] [--serve-arg ARG]...
                          [--label NAME] [--no-callgrind] [--no-strace]
                          [--no-memory] [--cold] [TARGET...]

TARGET: native (the echo guest built for the host, GOMAXPROCS=1) or an
engine of hostharness serve (wazy, wasmtime, ...). Default: native wazy,
and wasmtime when this hostharness has it.

  --n1 N, --n2 N   requests in the first and second window (default 300, 1500)
  --out DIR        where callgrind and strace files and summary.md go
                   (default out/account)
  --bin DIR        where echo.wasm, echo-native and hostharness are built
                   (default DIR/bin under --out); a prebuilt set is reused
                   when --guest is given and DIR/hostharness exists
  --guest FILE     the wasm guest to serve (default: DIR/echo.wasm, built)
  --env KEY=VALUE  guest environment (repeatable), e.g. --env GOGC=400
  --native FILE    the native build to serve as target native, with
                   -listen 127.0.0.1:PORT (default: DIR/echo-native, built)
  --path PATH      send GET PATH (each must answer 200) instead of the
                   4-byte echo POST, e.g. a route of the guest that calls out
  --serve-arg ARG  an argument for hostharness serve, before the guest
                   (repeatable), e.g. --serve-arg=--allow-dial=127.0.0.1:5432
  --label NAME     name of the run in summary.md (default: the targets)
  --no-callgrind   skip the instruction count (only syscalls and RSS)
  --no-strace      skip the syscall count
  --no-memory      skip the memory after load (RSS by mapping, one and two
                   instances)
  --cold           also measure the memory of one instance whose start
                   compiled the guest (an empty compilation cache)

Needs valgrind (callgrind_control), strace and curl. Instruction counts are
what to compare: they repeat on a loaded machine, seconds do not.
USAGE
}

n1=300 n2=1500 out=out/account bin="" guest="" native="" path="" label="" callgrind=1 straced=1 memory=1 cold=0
envs=() serve_args=() targets=()
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--n1) n1=$2; shift 2 ;;
	--n2) n2=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--guest) guest=$2; shift 2 ;;
	--native) native=$2; shift 2 ;;
	--path) path=$2; shift 2 ;;
	--serve-arg) serve_args+=("$2"); shift 2 ;;
	--serve-arg=*) serve_args+=("${1#--serve-arg=}"); shift ;;
	--env) envs+=("$2"); shift 2 ;;
	--label) label=$2; shift 2 ;;
	--no-callgrind) callgrind=0; shift ;;
	--no-strace) straced=0; shift ;;
	--no-memory) memory=0; shift ;;
	--cold) cold=1; shift ;;
	-*) echo "account.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[[ $n1 =~ ^[0-9]+$ && $n2 =~ ^[0-9]+$ ]] && ((n2 > n1)) ||
	{ echo "account.sh: need 0 <= --n1 < --n2 (got $n1, $n2)" >&2; exit 2; }
for e in ${envs[@]+"${envs[@]}"}; do
	[[ $e == ?*=* ]] || { echo "account.sh: --env wants KEY=VALUE, got '$e'" >&2; exit 2; }
done
need=(curl)
((callgrind)) && need+=(valgrind callgrind_control)
((straced)) && need+=(strace)
for c in "${need[@]}"; do
	command -v "$c" >/dev/null || { echo "account.sh: $c is not installed" >&2; exit 1; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=${bin:-$out/bin}
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)

if [[ -z $guest || ! -x $bin/hostharness ]]; then
	(cd "$root" &&
		GOOS=wasip1 GOARCH=wasm go build -o "$bin/echo.wasm" ./guest &&
		go build -o "$bin/echo-native" ./guest &&
		go build -o "$bin/hostharness" ./hostharness)
fi
guest=${guest:-$bin/echo.wasm}
native=${native:-$bin/echo-native}
if ((${#targets[@]} == 0)); then
	targets=(native wazy)
	"$bin/hostharness" serve --help 2>&1 | grep -q 'wasmtime,' && targets+=(wasmtime)
fi
label=${label:-${targets[*]}}

# free_port prints a port nobody listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# requests PORT N sends N 4-byte POSTs (or, with --path, N GETs of PATH),
# one after the other, on one keep-alive connection, and fails unless
# every one was echoed (answered) with a 200.
requests() {
	local port=$1 n=$2 ok sep='?'
	((n > 0)) || return 0
	if [[ -n $path ]]; then
		[[ $path == *\?* ]] && sep='&'
		ok=$(curl -s -w '\n%{http_code}\n' "http://127.0.0.1:$port$path${sep}r=[1-$n]" | grep -c '^200$' || true)
	else
		ok=$(curl -s -w '%{http_code}\n' -d abcd "http://127.0.0.1:$port/r[1-$n]" | grep -c '^abcd200$' || true)
	fi
	((ok == n)) || { echo "account.sh: $ok of $n requests answered" >&2; return 1; }
}

# wait_ready PORT PID waits until GET /healthz answers 200 (compilation under
# valgrind takes minutes).
wait_ready() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 1800; i++)); do
		kill -0 "$pid" 2>/dev/null || { echo "account.sh: server $pid exited" >&2; return 1; }
		[[ $(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz") == 200 ]] && return 0
		sleep 1
	done
	echo "account.sh: server not ready after 30 min" >&2
	return 1
}

# server_cmd TARGET PORT [INSTANCES] prints the command line that serves
# TARGET.
server_cmd() {
	local target=$1 port=$2 instances=${3:-1} e
	if [[ $target == native ]]; then
		echo "$native -listen 127.0.0.1:$port"
		return
	fi
	local args="serve --engine $target --instances $instances --listen 127.0.0.1:$port"
	[[ -n ${CACHE_DIR:-} ]] && args+=" --cache-dir $CACHE_DIR"
	for e in ${envs[@]+"${envs[@]}"}; do args+=" --env $e"; done
	for a in ${serve_args[@]+"${serve_args[@]}"}; do args+=" $a"; done
	echo "$bin/hostharness $args $guest"
}

# start TARGET PORT [ENV=VALUE...] [WRAPPER...] starts the server under
# WRAPPER (valgrind runs no child: no env in between) and prints its pid.
# INSTANCES (default 1) is how many instances serve; CACHE_DIR, when set,
# is serve's --cache-dir (default: its own).
start() {
	local target=$1 port=$2
	shift 2
	local vars=()
	[[ $target == native ]] && vars=(GOMAXPROCS=1 ${envs[@]+"${envs[@]}"})
	# shellcheck disable=SC2046
	env ${vars[@]+"${vars[@]}"} "$@" $(server_cmd "$target" "$port" "${INSTANCES:-1}") >>"$out/$target.log" 2>&1 &
	echo $!
}

# stop PID stops a server started by start (not a child of this shell).
stop() {
	local i
	kill -TERM "$1" 2>/dev/null || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
}

# The callgrind files are split into parts by function name: compiled guest
# code has no symbols (callgrind names it by address, 0x...).
split_awk='
function name(s,   id, rest) {
	if (match(s, /^\([0-9]+\)/)) {
		id = substr(s, 2, RLENGTH - 2); rest = substr(s, RLENGTH + 2)
		if (rest != "") names[id] = rest
		return names[id]
	}
	return s
}
function part(f) {
	if (f ~ /^0x/) return "guest (compiled wasm)"
	if (f ~ /libcalls::raw::memory_(copy|fill)$|^__mem(cpy|set|move)_avx/) return "guest bulk memory (engine libcalls)"
	if (f ~ /internal\/hostsock\/[a-z]+sock\.|hostharness\/engine\/[a-z]+\.(wasiserveHostCall|\(\*guestMemory\))|^ws_|_cgoexp_/) return "engine binding"
	if (f ~ /internal\/hostsock\./) return "hostsock"
	if (f ~ /^runtime\.(entersyscall|exitsyscall|reentersyscall)/) return "syscall wrappers"
	if (f ~ /(^|[^a-z])(syscall|golang\.org\/x\/sys\/unix|internal\/runtime\/syscall)[.\/]/) return "syscall wrappers"
	if (f ~ /^runtime\.(cgocall|cgocallback|asmcgocall)|^crosscall|^_cgo_|wasmtime|cranelift|tetratelabs\/wazero|samyfodil\/wazy|^std::|^core::|^alloc::|^<|^__rust/) return "engine"
	if (f ~ /^runtime\.(gc|scan|mark|greyobject|findObject|typePointers|tryDefer|wbBuf|bgsweep|bgscavenge|sweep|\(\*sweepLocked\)|\(\*gcWork\)|\(\*gcControllerState\)|\(\*mspan\)\.(sweep|mark)|extractHeapBits|heapSetType|spanOf|\(\*mheap\)\.(reclaim|nextSpanForSweep)|\(\*gcBits|\(\*scavenger|\(\*pageAlloc\)\.scav)/) return "Go runtime: GC"
	if (f ~ /^(runtime|internal\/runtime|internal\/bytealg|sync|sync\/atomic|internal\/sync|gcWriteBarrier|aeshashbody|memeqbody|cmpbody|indexbytebody)[.\/]?/) return "Go runtime"
	return other
}
/^fn=/ { fn = name(substr($0, 4)); next }
/^cfn=/ { cfn = name(substr($0, 5)); next }
/^calls=/ {
	split(substr($0, 7), a, " "); calls[cfn] += a[1]; skip = 1
	# wazero runs memory.copy and memory.fill in Go: guest work.
	bulk = fn ~ /^0x/ && cfn ~ /^runtime\.(memmove|memclrNoHeapPointers)$/
	# The entry point of a binding: all the host does for a call hostsock serves.
	entry = cfn ~ /hostsock\/[a-z]+sock\.[A-Za-z.]*serve[A-Za-z.]*func[0-9]+$|hostharness\/engine\/[a-z]+\.wasiserveHostCall$/ && fn !~ /hostsock|hostharness\/engine\/|_cgoexp_/
	clock = cfn ~ /wasi_snapshot_preview1\.wasiFunc\.Call$|clock_time_get/ && cfn !~ /^ws_/ && fn !~ /wasi|clock_time_get/
	trampoline = cfn ~ /^ws_clock_time_get$/ && fn !~ /^ws_/
	next
}
/^[0-9+*-]/ {
	if (skip) {
		skip = 0
		if (bulk) { cost["guest bulk memory (Go memmove)"] += $2; cost["Go runtime"] -= $2 }
		if (entry) incl["host calls into hostsock, inclusive"] += $2
		if (clock) incl["host calls into the engine WASI, inclusive"] += $2
		if (trampoline) incl["clock_time_get in the trampoline, inclusive"] += $2
		next
	}
	cost[part(fn)] += $2; total += $2
	if (fn ~ /hostsock\.[a-z]/ && fn !~ /\.func[0-9]/) fcost[fn] += $2
	next
}
END {
	for (p in cost) printf "part\t%s\t%d\n", p, cost[p]
	printf "part\ttotal\t%d\n", total
	for (p in incl) printf "incl\t%s\t%d\n", p, incl[p]
	for (f in calls) if (f ~ /hostsock\.(fd|sock|poll|path)[A-Z][A-Za-z]*$|wasi_snapshot_preview1\.[a-z][A-Za-z]*Fn$|wasmtime_wasi::clocks::[A-Za-z]+ as .*>::now$|HostFunc::array_call_trampoline$|^ws_clock_time_get$/) printf "calls\t%s\t%d\n", f, calls[f]
	for (f in fcost) printf "fcost\t%s\t%d\n", f, fcost[f]
}'

# diff_per_req FILE1 FILE2 prints, for every key of two tab-separated
# "kind key value" files, (v2 - v1) / (n2 - n1).
diff_per_req() {
	awk -F'\t' -v d=$((n2 - n1)) '
		NR == FNR { a[$1 "\t" $2] = $3; next }
		{ k = $1 "\t" $2; b[k] = $3 }
		END { for (k in b) printf "%s\t%.1f\n", k, (b[k] - a[k]) / d
		      for (k in a) if (!(k in b)) printf "%s\t%.1f\n", k, -a[k] / d }' "$1" "$2" | sort
}

# account_callgrind TARGET: one process under callgrind, instrumentation on
# only once it serves; a warm-up of 500 requests (the guest's heap and so
# its linear memory grow during the first ones, and the host's GC runs
# then), then windows of n1 and n2.
account_callgrind() {
	local target=$1 port pid vg other=other
	[[ $target == native ]] && other="guest (Go code)"
	port=$(free_port)
	rm -f "$out/cg.$target".*
	pid=$(start "$target" "$port" GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
		--smc-check=all-non-file --instr-atstart=no --callgrind-out-file="$out/cg.$target.out")
	wait_ready "$port" "$pid"
	vg=$pid # env execs valgrind: the pid is valgrind's
	# Where compiled guest code is mapped, for scripts/profile.sh to name it.
	cp "/proc/$vg/maps" "$out/maps.$target.txt" 2>/dev/null || true
	callgrind_control -i on "$vg" >/dev/null
	requests "$port" 500
	callgrind_control -z "$vg" >/dev/null
	requests "$port" "$n1"
	callgrind_control -d n1 "$vg" >/dev/null
	requests "$port" "$n2"
	callgrind_control -d n2 "$vg" >/dev/null
	stop "$pid"
	awk -v other="$other" "$split_awk" "$out/cg.$target.out.1" >"$out/cg.$target.n1.tsv"
	awk -v other="$other" "$split_awk" "$out/cg.$target.out.2" >"$out/cg.$target.n2.tsv"
	diff_per_req "$out/cg.$target.n1.tsv" "$out/cg.$target.n2.tsv" >"$out/cg.$target.per-request.tsv"
}

# strace_window PID N FILE counts the syscalls of every thread of PID while
# N requests are served.
strace_window() {
	local pid=$1 port=$2 n=$3 file=$4 tids sp
	tids=$(ls /proc/"$pid"/task | paste -sd, -)
	strace -c -f -o "$file" -p "$tids" 2>/dev/null &
	sp=$!
	sleep 2 # attach
	requests "$port" "$n"
	kill -INT "$sp"
	wait "$sp" || true
}

# rss PID prints VmRSS, RssAnon, RssFile and VmHWM (KiB) of /proc/PID/status,
# smaps_rollup's Pss, and the resident KiB of each mapping of 1 MiB or more
# (by file, or "anonymous", and permissions).
rss() {
	awk '/^(VmRSS|RssAnon|RssFile|VmHWM):/ { printf "%s\t%s\n", $1, $2 }' /proc/"$1"/status
	awk '/^Pss:/ { printf "Pss:\t%s\n", $2 }' /proc/"$1"/smaps_rollup
	awk '/^[0-9a-f]+-[0-9a-f]+ / { key = ($6 == "" ? "anonymous" : $6) " " $2; next }
		/^Rss:/ { kb[key] += $2 }
		END { for (k in kb) if (kb[k] >= 1024) printf "  %s\t%s\n", k, kb[k] }' /proc/"$1"/smaps | sort -t "$(printf '\t')" -k2,2nr
}

# warm_up TARGET starts and stops a server, so that the compilation cache
# holds the guest's code before memory is measured: a compilation's
# leftovers are a cold start's, not a serving instance's.
warm_up() {
	local port pid
	port=$(free_port)
	pid=$(start "$1" "$port")
	wait_ready "$port" "$pid"
	stop "$pid"
}

# account_memory TARGET INSTANCES [NAME]: the memory of a server of
# INSTANCES instances after 2 x 3,000 requests on two connections at once,
# into rss.TARGET.NAME.tsv (NAME defaults to INSTANCES).
account_memory() {
	local target=$1 instances=$2 name=${3:-$2} port pid a b
	port=$(free_port)
	pid=$(INSTANCES=$instances start "$target" "$port")
	wait_ready "$port" "$pid"
	requests "$port" 3000 & a=$!
	requests "$port" 3000 & b=$!
	wait "$a" && wait "$b"
	sleep 1
	rss "$pid" >"$out/rss.$target.$name.tsv"
	stop "$pid"
}

# account_strace TARGET: syscalls per request.
account_strace() {
	local target=$1 port pid
	port=$(free_port)
	pid=$(start "$target" "$port")
	wait_ready "$port" "$pid"
	requests "$port" 20
	strace_window "$pid" "$port" "$n1" "$out/strace.$target.n1"
	strace_window "$pid" "$port" "$n2" "$out/strace.$target.n2"
	stop "$pid"
	local f
	for f in n1 n2; do
		awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { printf "syscall\t%s\t%d\n", $NF, $4 }' \
			"$out/strace.$target.$f" >"$out/strace.$target.$f.tsv"
	done
	diff_per_req "$out/strace.$target.n1.tsv" "$out/strace.$target.n2.tsv" >"$out/strace.$target.per-request.tsv"
}

summary="$out/summary.md"
{
	echo "## $label ($(date -u +%FT%TZ))"
	echo
	echo "guest $(basename "$guest"): $(stat -c %s "$guest") bytes; env: ${envs[*]:-none}; windows n1=$n1 n2=$n2"
	echo
} >>"$summary"
for target in "${targets[@]}"; do
	: >"$out/$target.log"
	((callgrind)) && account_callgrind "$target"
	((straced)) && account_strace "$target"
	instance_counts=(1)
	[[ $target != native ]] && instance_counts=(1 2)
	if ((memory)); then
		if ((cold)) && [[ $target != native ]]; then
			rm -rf "$out/cold-cache"
			CACHE_DIR=$out/cold-cache account_memory "$target" 1 cold
			rm -rf "$out/cold-cache"
			instance_counts=(cold "${instance_counts[@]}")
		fi
		warm_up "$target"
		for i in "${instance_counts[@]}"; do [[ $i == cold ]] || account_memory "$target" "$i"; done
	fi
	{
		echo "### $target"
		echo
		if ((callgrind)); then
			echo "instructions per request by part:"
			echo
			awk -F'\t' '$1 == "part" { printf "  %-24s %12.0f\n", $2, $3 }' "$out/cg.$target.per-request.tsv" | sort -k1,1
			echo
			echo "inclusive (everything below the call, within the total above):"
			echo
			awk -F'\t' '$1 == "incl" { printf "  %-44s %12.0f\n", $2, $3 }' "$out/cg.$target.per-request.tsv"
			echo
			echo "host calls per request (callgrind call counts):"
			echo
			awk -F'\t' '$1 == "calls" && $3 != 0 { n = $2; sub(/.*\//, "", n); printf "  %-48s %8.2f\n", n, $3 }' "$out/cg.$target.per-request.tsv"
			echo
			echo "hostsock functions, own instructions per request:"
			echo
			awk -F'\t' '$1 == "fcost" && $3 != 0 { n = $2; sub(/.*\//, "", n); printf "  %-48s %8.0f\n", n, $3 }' "$out/cg.$target.per-request.tsv"
			echo
		fi
		if ((straced)); then
			echo "syscalls per request (strace -c -f):"
			echo
			awk -F'\t' '$3 != 0 { printf "  %-20s %8.2f\n", $2, $3; t += $3 } END { printf "  %-20s %8.2f\n", "total", t }' "$out/strace.$target.per-request.tsv"
			echo
		fi
		if ((memory)); then
			for i in "${instance_counts[@]}"; do
				if [[ $i == cold ]]; then
					echo "memory after load, 1 instance that compiled the guest (KiB):"
				else
					echo "memory after load, $i instance(s) (KiB):"
				fi
				echo
				awk -F'\t' '{ printf "  %-60s %8d\n", $1, $2 }' "$out/rss.$target.$i.tsv"
				echo
			done
		fi
	} | tee -a "$summary"
done
