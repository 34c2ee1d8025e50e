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
  - a mounted guest (-v app.wasm:/app.wasm:ro IMAGE /app.wasm) works, and with a
    named volume at /cache its second start is warm (under half the first);
  - every other engine of the image (--engine=NAME) serves echo;
  - a bad flag and a missing guest each give one error line and a non-zero exit.
The wasm target is checked with docker image inspect (entrypoint, platform
wasi/wasm) only: running it needs Docker's WasmEdge shim, which is reported
when missing. Without docker buildx the classic builder is used. Base images
come from GO_IMAGE and RUNTIME_IMAGE when set, else scripts/docker-bases.sh
makes local ones (kept for the next run). The module proxy settings (go env
GOPROXY, GOSUMDB, GOFLAGS) pass as build arguments. Containers, volumes and
images it makes are removed at exit. Runnable from any directory of a checkout.

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
tags=() containers=() volumes=()
cleanup() {
	local c
	for c in "${containers[@]}"; do "$docker" rm -f "$c" >/dev/null 2>&1 || true; done
	for c in "${volumes[@]}"; do "$docker" volume rm "$c" >/dev/null 2>&1 || true; done
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

# --- base images and builds ---
if ! "$docker" buildx version >/dev/null 2>&1; then
	echo "== no docker buildx (BuildKit): the classic builder builds (DOCKER_BUILDKIT=0)"
	export DOCKER_BUILDKIT=0
fi
if [[ -z ${GO_IMAGE:-} || -z ${RUNTIME_IMAGE:-} ]]; then
	echo "== base images: scripts/docker-bases.sh"
	t0=$(now_ms)
	bases=$(scripts/docker-bases.sh) || fail "scripts/docker-bases.sh could not make the base images"
	eval "$(grep -E '^(GO_IMAGE|RUNTIME_IMAGE)=[A-Za-z0-9/:._-]+$' <<<"$bases")"
	echo "== base images ready in $(secs $(($(now_ms) - t0))): $GO_IMAGE $RUNTIME_IMAGE"
fi
build_args=(--build-arg "GO_IMAGE=$GO_IMAGE" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
if command -v go >/dev/null; then
	for v in GOPROXY GOSUMDB GOFLAGS; do
		val=$(go env "$v")
		if [[ -n $val ]]; then build_args+=(--build-arg "$v=$val"); fi
	done
fi

# build TARGET TAG [ARGS...]: docker build --target TARGET -t TAG, logged
# to a file; prints its last lines and returns non-zero when it fails.
build() {
	local t=$1 tag=$2
	shift 2
	tags+=("$tag")
	timeout 1500 "$docker" build "${build_args[@]}" "$@" ${t:+--target "$t"} -t "$tag" . >"$work/build-${t:-default}.log" 2>&1
}
t0=$(now_ms)
if [[ ${DOCKER_BUILDKIT:-} == 0 ]]; then
	# The classic builder builds every stage before the target and keeps
	# them as untagged images: build and tag each first, so that the
	# cleanup removes them too (only --target wasm stops before the
	# wasmtime stages).
	build_args+=(--force-rm)
	stages=(build build-wasm build-wasmtime)
	if [[ ${targets[*]} == wasm ]]; then stages=(build build-wasm); fi
	for s in "${stages[@]}"; do
		echo "== docker build --target $s (a build stage)"
		build "$s" "$run_id:stage-$s" || { tail -n 40 "$work/build-$s.log" >&2; fail "docker build of stage $s (last lines above)"; }
	done
fi
declare -A image
for t in "${targets[@]}"; do
	image[$t]=$run_id:$t
	target=$t platform=""
	[[ $t != default ]] || target="" # the last stage
	[[ $t != wasm ]] || platform=wasi/wasm
	if [[ $t == wasm ]]; then
		# An engine that cannot hold images for the OS wasi (Docker 20.10
		# without the containerd image store) refuses an empty one at once.
		if probe=$(tar -cf - -T /dev/null | "$docker" import --platform "$platform" - "$run_id:probe" 2>&1); then
			tags+=("$run_id:probe")
		else
			echo "   this Docker engine ($("$docker" version -f '{{.Server.Version}}')) refuses images for $platform (docker import: ${probe#Error response from daemon: }): the wasm target is built for the engine's own platform"
			platform=""
		fi
		wasm_platform=$platform
	fi
	echo "== docker build ${target:+--target $target }${platform:+--platform $platform }-t ${image[$t]} ."
	build "$target" "${image[$t]}" ${platform:+--platform "$platform"} ||
		{ tail -n 40 "$work/build-${target:-default}.log" >&2; fail "docker build of target $t (last lines above)"; }
	size=$("$docker" image inspect -f '{{.Size}}' "${image[$t]}")
	echo "   image size $(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1e6 }') ($size bytes)"
done
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
	got=$("$docker" image inspect -f '{{json .Config.Entrypoint}} {{.Os}}/{{.Architecture}}' "$img")
	want='["/echo-wasmedge.wasm"] '${wasm_platform:-$("$docker" version -f '{{.Server.Os}}/{{.Server.Arch}}')}
	[[ $got == "$want" ]] || fail "wasm image: entrypoint and platform '$got', want '$want'"
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

for t in "${targets[@]}"; do
	if [[ $t == wasm ]]; then check_wasm_image; else check_image "$t"; fi
done
echo "PASS: ${targets[*]}"
