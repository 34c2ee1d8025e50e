#!/usr/bin/env bash
# docker-smoke.sh: builds the Dockerfile's targets with docker build and runs
# the images with docker run as a user would, on 127.0.0.1 only; says SKIP
# where no Docker engine is reachable.
set -euo pipefail

# The engines each runnable image's hostharness has, the image's own (its
# CMD's --engine) first: the one place to change when engines change.
declare -A engines=(
	[default]="wazy wazy-sock"
	[wasmtime]="wasmtime wazy wazy-sock"
)
all_targets=(wasm wasmtime default)

usage() {
	cat <<'USAGE'
usage: scripts/docker-smoke.sh [-h|--help] [--target T]... [--port N] [--strict]

Builds the Dockerfile's targets (default: wasmtime, wasm and the default image)
with docker build, then runs each runnable image with docker run -d -p
127.0.0.1:PORT:8080 and checks, failing at the first miss:
  - the image's user is 65532 and its process runs as 65532;
  - a fresh container (no volume) answers curl -d echo with echo and /healthz
    with 200, warm: the guest was compiled when the image was built, so its
    start to first 200 is under half of a cold start's (an empty tmpfs at
    /cache, as an image without the compiled guest would start);
  - docker stop drains: a slow upload in flight is echoed whole, the exit
    status is 0, within the drain timeout, and the log says "drained";
  - --read-only works;
  - docker ps reports the container healthy (the image's HEALTHCHECK, hostharness
    probe of the admin listener's /readyz) within the HEALTHCHECK's start period,
    and the image has the org.opencontainers.image.* labels, revision = git HEAD;
  - a mounted guest (-v app.wasm:/app.wasm:ro IMAGE /app.wasm) works, and with a
    named volume at /cache its second start is warm (under half the first);
  - a mounted guest of one's own without a health route (examples/hello, built
    here for wasip1) is reported healthy in docker ps too;
  - every other engine of the image (--engine=NAME) serves echo;
  - a bad flag and a missing guest each give one error line and a non-zero exit.
The images are built by scripts/docker-build.sh --stages. The wasm target
is checked with docker image inspect (entrypoint, platform wasi/wasm) only: running it needs Docker's WasmEdge shim, which is reported
when missing. Base images come from GO_IMAGE and RUNTIME_IMAGE when set, else
scripts/docker-bases.sh makes local ones (kept for the next run). Needs go (for
examples/hello) and curl. Containers, volumes and images it makes are removed
at exit. Runnable from any directory of a checkout.

  --target T  build and check only target T (default, wasmtime or wasm; repeatable)
  --port N    first host port on 127.0.0.1 (N and N+1 are used; default: free ones
              that docker run -p 127.0.0.1::8080 picks, read back with docker port)
  --strict    exit 3 instead of 0 when no Docker engine is reachable

environment:
  DOCKER         the docker-compatible CLI to use (default: docker)
  GO_IMAGE       build base image (default: made by scripts/docker-bases.sh)
  RUNTIME_IMAGE  glibc runtime base of the wasmtime target (likewise)

exit status:
  0  every check passed; or SKIP: no Docker CLI or engine (without --strict)
  1  a build, run or check failed (FAIL: says which, with the container's log)
  2  bad arguments
  3  SKIP with --strict: no Docker CLI or engine reachable
USAGE
}

targets=()
port=""
strict=0
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--target) [[ $# -ge 2 ]] || { echo "docker-smoke.sh: --target needs a value" >&2; exit 2; }; targets+=("$2"); shift 2 ;;
	--target=*) targets+=("${1#--target=}"); shift ;;
	--port) [[ $# -ge 2 ]] || { echo "docker-smoke.sh: --port needs a value" >&2; exit 2; }; port=$2; shift 2 ;;
	--port=*) port=${1#--port=}; shift ;;
	--strict) strict=1; shift ;;
	*) echo "docker-smoke.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
[[ -z $port ]] || { [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65535)); } || { echo "docker-smoke.sh: --port wants a port number, got '$port'" >&2; exit 2; }
for t in "${targets[@]}"; do
	[[ " ${all_targets[*]} " == *" $t "* ]] || { echo "docker-smoke.sh: unknown target '$t' (have ${all_targets[*]})" >&2; exit 2; }
done
# Build in all_targets' order whatever the order given.
want=("${targets[@]}")
targets=()
for t in "${all_targets[@]}"; do
	if ((${#want[@]} == 0)) || [[ " ${want[*]} " == *" $t "* ]]; then targets+=("$t"); fi
done

docker=${DOCKER:-docker}
skip() {
	echo "SKIP: $1; no image was built or run"
	if ((strict)); then exit 3; fi
	exit 0
}
command -v "$docker" >/dev/null || skip "no '$docker' CLI on PATH"
timeout 20 "$docker" info >/dev/null 2>&1 || skip "'$docker info' reaches no Docker engine"
command -v curl >/dev/null || { echo "docker-smoke.sh: curl is needed" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
run_id=wasiserve-smoke-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/$run_id.XXXXXX")
containers=() volumes=()
cleanup() {
	local c tags
	for c in "${containers[@]}"; do "$docker" rm -f "$c" >/dev/null 2>&1 || true; done
	for c in "${volumes[@]}"; do "$docker" volume rm "$c" >/dev/null 2>&1 || true; done
	# Every tag of the run's images (the targets and the build stages).
	mapfile -t tags < <("$docker" image ls --format '{{.Repository}}:{{.Tag}}' "$run_id" 2>/dev/null)
	if ((${#tags[@]})); then "$docker" rmi "${tags[@]}" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $1" >&2
	if [[ -n ${2:-} ]]; then
		echo "--- docker logs $2:" >&2
		"$docker" logs "$2" >&2 2>&1 || true
	fi
	exit 1
}
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

# --- base images and builds: scripts/docker-build.sh, as a user builds ---
echo "== scripts/docker-build.sh --repo $run_id --stages$(printf ' --target %s' "${targets[@]}")"
t0=$(now_ms)
built=$(scripts/docker-build.sh --repo "$run_id" --stages --log-dir "$work" "${targets[@]/#/--target=}") ||
	fail "scripts/docker-build.sh (its output above)"
declare -A image
while IFS== read -r t img; do
	[[ $t != stage-* ]] || continue
	image[$t]=$img
	size=$("$docker" image inspect -f '{{.Size}}' "$img")
	echo "   $t: $img, image size $(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1e6 }') ($size bytes)"
done <<<"$built"
echo "== built in $(secs $(($(now_ms) - t0)))"

# --- running an image ---
next_port=$port
serial=0
# start NAME_VAR ARGS...: docker run -d -p 127.0.0.1:PORT:8080 ARGS; sets
# NAME_VAR to the container, $url to its address and $started to the start.
start() {
	local -n name_ref=$1
	shift
	serial=$((serial + 1))
	name_ref=$run_id-$serial
	started=$(now_ms)
	containers+=("$name_ref")
	timeout 60 "$docker" run -d --name "$name_ref" -p "127.0.0.1:$next_port:8080" "$@" >/dev/null ||
		fail "docker run -p 127.0.0.1:$next_port:8080 $*"
	url=http://$("$docker" port "$name_ref" 8080/tcp | head -n 1)
}
# wait_echo NAME: polls until curl -d echo gets echo back; sets $first_ms,
# the time from docker run to that first 200.
wait_echo() {
	local got deadline=$(($(now_ms) + 120000))
	while :; do
		if got=$(curl -fsS --max-time 10 -H 'Content-Type: text/plain' -d echo "$url" 2>/dev/null); then
			break
		fi
		[[ $("$docker" inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]] ||
			fail "container $1 exited before serving" "$1"
		(($(now_ms) < deadline)) || fail "no answer from $url in 120 s" "$1"
		sleep 0.05
	done
	first_ms=$(($(now_ms) - started))
	[[ $got == echo ]] || fail "curl -d echo $url printed '$got', want 'echo'" "$1"
}
# stop NAME: docker stop, then the exit status must be 0.
stop() {
	timeout 60 "$docker" stop "$1" >/dev/null || fail "docker stop $1" "$1"
	local code
	code=$("$docker" inspect -f '{{.State.ExitCode}}' "$1")
	[[ $code == 0 ]] || fail "container $1 exited with status $code after docker stop, want 0" "$1"
	"$docker" rm "$1" >/dev/null
}
# wait_healthy NAME: polls docker inspect until the container's HEALTHCHECK
# says healthy, failing on unhealthy, an exit, or the image's start period
# passed; sets $healthy_ms, the time from docker run to healthy.
wait_healthy() {
	local status period deadline
	period=$("$docker" inspect -f '{{json .Config.Healthcheck.StartPeriod}}' "$1") # nanoseconds
	[[ $period =~ ^[0-9]+$ ]] && ((period > 0)) || fail "container $1 has no HEALTHCHECK start period ('$period')" "$1"
	deadline=$((started + period / 1000000))
	while :; do
		status=$("$docker" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1")
		case $status in
		healthy) break ;;
		unhealthy) fail "container $1 became unhealthy: $("$docker" inspect -f '{{json .State.Health.Log}}' "$1")" "$1" ;;
		esac
		[[ $("$docker" inspect -f '{{.State.Running}}' "$1") == true ]] || fail "container $1 exited before it was healthy" "$1"
		(($(now_ms) < deadline)) || fail "container $1 is not healthy ('$status') within its start period of $(secs $((period / 1000000)))" "$1"
		sleep 0.2
	done
	healthy_ms=$(($(now_ms) - started))
	[[ $("$docker" ps --filter "name=^$1\$" --format '{{.Status}}') == *"(healthy)"* ]] ||
		fail "docker ps does not show $1 as healthy: $("$docker" ps --filter "name=^$1\$" --format '{{.Status}}')" "$1"
}
# one_error_line WANT ARGS...: docker run --rm ARGS must exit non-zero with
# one line of output mentioning WANT.
one_error_line() {
	local want=$1 out code=0
	shift
	out=$(timeout 60 "$docker" run --rm "$@" 2>&1) || code=$?
	((code != 0)) || fail "docker run $* exited 0, want an error"
	[[ $(wc -l <<<"$out") == 1 && $out == *"$want"* ]] ||
		fail "docker run $* (exit $code) printed, want one line mentioning '$want':"$'\n'"$out"
	echo "   docker run ${*: -1} -> exit $code: $out"
}

check_image() {
	local t=$1 img=${image[$1]} own c cold_ms warm_ms
	own=${engines[$t]%% *}
	echo "== $t image ($img): engines ${engines[$t]}"
	[[ $("$docker" image inspect -f '{{.Config.User}}' "$img") == 65532* ]] ||
		fail "$t image user is '$("$docker" image inspect -f '{{.Config.User}}' "$img")', want 65532"
	[[ $("$docker" image inspect -f '{{json .Config.Cmd}}' "$img") == *"\"--engine=$own\""* ]] ||
		fail "$t image CMD $("$docker" image inspect -f '{{json .Config.Cmd}}' "$img") does not name --engine=$own, the first of the engines listed for it"

	# Cold: an empty /cache, as in an image without the compiled guest
	# (exec: the wasmtime engine maps the compiled code from there).
	start c --tmpfs /cache:exec,uid=65532,gid=65532 "$img"
	wait_echo "$c"
	cold_ms=$first_ms
	stop "$c"
	# Warm: a fresh container as a user runs it.
	start c "$img"
	wait_echo "$c"
	warm_ms=$first_ms
	echo "   first start to first 200: fresh container $(secs "$warm_ms"), with an empty /cache $(secs "$cold_ms")"
	((warm_ms * 2 < cold_ms)) || fail "$t: a fresh container took $(secs "$warm_ms") to its first 200, not under half a cold start's $(secs "$cold_ms"): is the guest compiled into the image?" "$c"
	echo "   curl -d echo $url -> echo"
	[[ $(curl -fsS --max-time 10 "$url/healthz") == ok ]] || fail "GET $url/healthz did not answer 200 ok" "$c"
	echo "   GET /healthz -> 200 ok"
	wait_healthy "$c"
	echo "   docker ps: healthy after $(secs "$healthy_ms") (HEALTHCHECK: $("$docker" inspect -f '{{json .Config.Healthcheck.Test}}' "$img"))"
	local label want_rev
	want_rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	for label in title description source licenses version revision; do
		[[ -n $("$docker" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$label\"}}" "$img") ]] ||
			fail "$t image has no org.opencontainers.image.$label label"
	done
	[[ $("$docker" image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$img") == "$want_rev" ]] ||
		fail "$t image's org.opencontainers.image.revision is not $want_rev"
	echo "   labels org.opencontainers.image.{title,description,source,licenses,version,revision}; revision $want_rev"
	local uid
	uid=$("$docker" top "$c" -eo pid,uid | awk 'NR == 2 { print $2 }')
	[[ $uid == 65532 ]] || fail "$t: the container's process runs as uid '$uid', want 65532" "$c"
	echo "   process uid $uid"

	# Drain: a slow upload (about 4 s) in flight when docker stop comes.
	head -c 6000 /dev/zero | tr '\0' 'x' >"$work/upload"
	curl -fsS --max-time 30 --limit-rate 1500 -H 'Content-Type: text/plain' --data-binary @"$work/upload" "$url" >"$work/echoed" 2>"$work/curl.err" &
	local curl_pid=$! t0 took
	sleep 1
	t0=$(now_ms)
	stop_out=$(timeout 60 "$docker" stop "$c" 2>&1) || fail "docker stop $c: $stop_out" "$c"
	took=$(($(now_ms) - t0))
	wait "$curl_pid" || fail "$t: the upload in flight during docker stop failed: $(cat "$work/curl.err")" "$c"
	cmp -s "$work/upload" "$work/echoed" || fail "$t: the upload in flight came back as $(wc -c <"$work/echoed") bytes, want 6000" "$c"
	[[ $("$docker" inspect -f '{{.State.ExitCode}}' "$c") == 0 ]] || fail "$t: exit status $("$docker" inspect -f '{{.State.ExitCode}}' "$c") after docker stop, want 0" "$c"
	((took < 10000)) || fail "$t: docker stop took $(secs "$took"), not within the 10 s drain timeout" "$c"
	logs=$("$docker" logs "$c" 2>&1)
	[[ $logs == *'msg="guest stopped" drained=true'* ]] || fail "$t: the log does not say the guest drained" "$c"
	echo "   docker stop with a 6000-byte upload in flight: echoed whole, exit 0 in $(secs "$took"), log: msg=\"guest stopped\" drained=true"
	"$docker" rm "$c" >/dev/null

	start c --read-only "$img"
	wait_echo "$c"
	echo "   --read-only: echo, first 200 after $(secs "$first_ms")"
	stop "$c"

	# A guest of one's own: the echo guest with a custom section appended,
	# so that the image's compiled code does not match it.
	local vol=$run_id-cache-$t first
	c=$run_id-cp-$t
	containers+=("$c")
	"$docker" create --name "$c" "$img" >/dev/null
	"$docker" cp "$c:/echo.wasm" "$work/app-$t.wasm" >/dev/null
	"$docker" rm "$c" >/dev/null
	printf '\x00\x0c\x05smoke%s' "${t:0:6}" | head -c 14 >>"$work/app-$t.wasm"
	chmod 644 "$work/app-$t.wasm"
	"$docker" volume create "$vol" >/dev/null
	volumes+=("$vol")
	for run in first second; do
		start c -v "$vol:/cache" -v "$work/app-$t.wasm:/app.wasm:ro" "$img" /app.wasm
		wait_echo "$c"
		echo "   -v app.wasm:/app.wasm:ro -v $vol:/cache IMAGE /app.wasm, $run start: echo after $(secs "$first_ms")"
		stop "$c"
		if [[ $run == first ]]; then first=$first_ms; fi
	done
	((first_ms * 2 < first)) || fail "$t: the second start with the cache volume took $(secs "$first_ms"), not under half the first's $(secs "$first")"

	# A guest of one's own with no health route: examples/hello, mounted.
	# Its health is the host's (the admin listener's /readyz).
	start c -v "$work/hello.wasm:/app.wasm:ro" "$img" /app.wasm
	wait_healthy "$c"
	[[ $(curl -fsS --max-time 10 "$url/") == hello ]] || fail "$t: examples/hello did not answer hello" "$c"
	echo "   -v hello.wasm:/app.wasm:ro IMAGE /app.wasm (examples/hello, no /healthz): docker ps healthy after $(secs "$healthy_ms"), GET / -> hello"
	stop "$c"

	local e
	for e in ${engines[$t]#"$own"}; do
		start c "$img" "--engine=$e" /echo.wasm
		wait_echo "$c"
		# An engine that binds its own socket answers a moment before serve,
		# which dials it to know, prints its serving line.
		local tries=0
		until [[ $("$docker" logs "$c" 2>/dev/null) == *"(engine $e)"* ]]; do
			((++tries < 50)) || fail "$t: --engine=$e does not say it serves with $e" "$c"
			sleep 0.1
		done
		echo "   --engine=$e: echo after $(secs "$first_ms")"
		stop "$c"
	done

	one_error_line "flag provided but not defined" "$img" --no-such-flag
	one_error_line "no such file" "$img" /missing.wasm
	[[ -z $next_port ]] || next_port=$((next_port + 1))
}

check_wasm_image() {
	local img=${image[wasm]} got want c=$run_id-cp-wasm
	echo "== wasm image ($img)"
	# wasi/wasm, or the engine's own platform where it refuses wasi images
	# (scripts/docker-build.sh says so).
	got=$("$docker" image inspect -f '{{json .Config.Entrypoint}} {{.Os}}/{{.Architecture}}' "$img")
	want='["/echo-wasmedge.wasm"] '
	[[ $got == "$want"wasi/wasm || $got == "$want$("$docker" version -f '{{.Server.Os}}/{{.Server.Arch}}')" ]] ||
		fail "wasm image: entrypoint and platform '$got', want '$want' with wasi/wasm or the engine's platform"
	echo "   entrypoint and platform: $got"
	containers+=("$c")
	"$docker" create --name "$c" "$img" >/dev/null
	"$docker" cp "$c:/echo-wasmedge.wasm" "$work/wasmedge.wasm" >/dev/null
	"$docker" rm "$c" >/dev/null
	[[ $(head -c 8 "$work/wasmedge.wasm" | od -An -tx1 | tr -d ' \n') == 0061736d01000000 ]] ||
		fail "wasm image: /echo-wasmedge.wasm is not a WebAssembly module"
	echo "   /echo-wasmedge.wasm: a WebAssembly module of $(wc -c <"$work/wasmedge.wasm") bytes"
	if [[ $("$docker" info -f '{{json .Runtimes}}' 2>/dev/null) == *wasmedge* ]]; then
		echo "   a WasmEdge runtime is installed, but this test does not run the image"
	else
		echo "   not run: this engine has no WasmEdge shim (runtimes: $("$docker" info -f '{{range $k, $v := .Runtimes}}{{$k}} {{end}}'))"
	fi
}

if [[ -n ${image[default]:-}${image[wasmtime]:-} ]]; then
	GOOS=wasip1 GOARCH=wasm go build -o "$work/hello.wasm" ./examples/hello || fail "go build of examples/hello for wasip1"
	chmod 644 "$work/hello.wasm"
fi
for t in "${targets[@]}"; do
	if [[ $t == wasm ]]; then check_wasm_image; else check_image "$t"; fi
done
echo "PASS: ${targets[*]}"
