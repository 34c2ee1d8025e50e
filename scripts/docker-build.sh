#!/usr/bin/env bash
# docker-build.sh: builds the Dockerfile's targets without a registry, with
# the one documented command: local base images (scripts/docker-bases.sh,
# debootstrap installed first when missing), the module proxy settings and
# the image labels as build arguments.
set -euo pipefail

all_targets=(default wasm wasmtime) # the Dockerfile's order

usage() {
	cat <<'USAGE'
usage: scripts/docker-build.sh [-h|--help] [--target T]... [--repo NAME] [--stages]
                               [--log-dir DIR] [--print-build-args]

Builds the Dockerfile's targets (default: all of default, wasm and wasmtime, in
that order) with docker build, from base images made on this machine, so that
no registry is needed:
  1. installs debootstrap with apt-get when it is missing (as root);
  2. runs scripts/docker-bases.sh (which reuses base images made before from the
     same inputs) for GO_IMAGE and RUNTIME_IMAGE; a GO_IMAGE or RUNTIME_IMAGE set
     in the environment is used as given, and the other one is made;
  3. docker build --target T -t NAME:T . for each target (NAME:latest for the
     default one, which --target default builds without the wasmtime stages) with --build-arg GO_IMAGE, RUNTIME_IMAGE, the module proxy
     settings (go env GOPROXY, GOSUMDB, GOFLAGS, when set) and the labels'
     VERSION (git describe) and REVISION (git rev-parse HEAD).
The wasm target is built --platform wasi/wasm, or for the engine's own platform
where the engine refuses images for the OS wasi (Docker 20.10). Prints one line
per image built: TARGET=IMAGE. Runnable from any directory of a checkout.

  --target T          build target T (wasm, wasmtime or default; repeatable)
  --repo NAME         image name (default: wasiserve)
  --stages            with the classic builder, build and tag the build stages
                      first (NAME:stage-S), so that removing the tags removes every
                      image the build made
  --log-dir DIR       write each build's output to DIR/build-T.log (default: to stderr)
  --print-build-args  make the base images, print the --build-arg arguments one a
                      line, and build nothing

environment:
  DOCKER         the docker-compatible CLI to use (default: docker)
  GO_IMAGE       build base image (default: made by scripts/docker-bases.sh)
  RUNTIME_IMAGE  glibc runtime base of the wasmtime target (likewise)
  VERSION        the org.opencontainers.image.version label (default: git describe)

exit status: 0 built; 1 a step failed (its output says which); 2 bad arguments
USAGE
}

targets=()
repo=wasiserve
stages=0
log_dir=""
print_args=0
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--target) [[ $# -ge 2 ]] || { echo "docker-build.sh: --target needs a value" >&2; exit 2; }; targets+=("$2"); shift 2 ;;
	--target=*) targets+=("${1#--target=}"); shift ;;
	--repo) [[ $# -ge 2 ]] || { echo "docker-build.sh: --repo needs a value" >&2; exit 2; }; repo=$2; shift 2 ;;
	--repo=*) repo=${1#--repo=}; shift ;;
	--stages) stages=1; shift ;;
	--log-dir) [[ $# -ge 2 ]] || { echo "docker-build.sh: --log-dir needs a value" >&2; exit 2; }; log_dir=$2; shift 2 ;;
	--log-dir=*) log_dir=${1#--log-dir=}; shift ;;
	--print-build-args) print_args=1; shift ;;
	*) echo "docker-build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
for t in "${targets[@]}"; do
	[[ " ${all_targets[*]} " == *" $t "* ]] || { echo "docker-build.sh: unknown target '$t' (have ${all_targets[*]})" >&2; exit 2; }
done
[[ $repo =~ ^[a-z0-9][a-z0-9._/-]*$ ]] || { echo "docker-build.sh: --repo '$repo' is not an image name" >&2; exit 2; }
# Build in all_targets' order whatever the order given.
want=("${targets[@]}")
targets=()
for t in "${all_targets[@]}"; do
	if ((${#want[@]} == 0)) || [[ " ${want[*]} " == *" $t "* ]]; then targets+=("$t"); fi
done

docker=${DOCKER:-docker}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -n $log_dir ]]; then mkdir -p "$log_dir"; fi

# --- base images ---
if [[ -z ${GO_IMAGE:-} || -z ${RUNTIME_IMAGE:-} ]]; then
	if ! scripts/docker-bases.sh --print >/dev/null 2>&1 && ! command -v debootstrap >/dev/null; then
		((EUID == 0)) || { echo "docker-build.sh: debootstrap is missing and only root can install it (apt-get install debootstrap)" >&2; exit 1; }
		echo "== apt-get install debootstrap" >&2
		{ apt-get update -qq && apt-get install -y -qq debootstrap; } >&2 ||
			{ echo "docker-build.sh: apt-get install debootstrap failed" >&2; exit 1; }
	fi
	bases=$(scripts/docker-bases.sh) || { echo "docker-build.sh: scripts/docker-bases.sh could not make the base images" >&2; exit 1; }
	made_go=$(sed -n 's/^GO_IMAGE=\([A-Za-z0-9/:._-]*\)$/\1/p' <<<"$bases")
	made_rt=$(sed -n 's/^RUNTIME_IMAGE=\([A-Za-z0-9/:._-]*\)$/\1/p' <<<"$bases")
	GO_IMAGE=${GO_IMAGE:-$made_go}
	RUNTIME_IMAGE=${RUNTIME_IMAGE:-$made_rt}
fi
build_args=(--build-arg "GO_IMAGE=$GO_IMAGE" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
if command -v go >/dev/null; then
	for v in GOPROXY GOSUMDB GOFLAGS; do
		val=$(go env "$v")
		if [[ -n $val ]]; then build_args+=(--build-arg "$v=$val"); fi
	done
fi
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
build_args+=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision")
if ((print_args)); then
	printf '%s\n' "${build_args[@]}"
	exit 0
fi

if ! "$docker" buildx version >/dev/null 2>&1; then
	echo "== no docker buildx (BuildKit): the classic builder builds (DOCKER_BUILDKIT=0)" >&2
	export DOCKER_BUILDKIT=0
fi

# build TARGET TAG [ARGS...]: docker build --target TARGET -t TAG, its
# output to the log (printing its last lines when it fails) or stderr.
build() {
	local t=$1 tag=$2 log
	shift 2
	echo "== docker build --target $t $* -t $tag ." >&2
	if [[ -z $log_dir ]]; then
		timeout 1500 "$docker" build "${build_args[@]}" "$@" --target "$t" -t "$tag" . >&2 && return
	else
		log=$log_dir/build-$t.log
		timeout 1500 "$docker" build "${build_args[@]}" "$@" --target "$t" -t "$tag" . >"$log" 2>&1 && return
		tail -n 40 "$log" >&2
	fi
	echo "docker-build.sh: docker build of target $t failed${log:+ (last lines of $log above)}" >&2
	exit 1
}
start=$SECONDS
if ((stages)) && [[ ${DOCKER_BUILDKIT:-} == 0 ]]; then
	# The classic builder builds every stage before the target and keeps
	# them as untagged images: tagged, they are removed with the targets'
	# tags. The Dockerfile's stages in order, up to the last target:
	build_args+=(--force-rm)
	for s in build default build-wasm wasm build-wasmtime wasmtime; do
		last=${targets[-1]}
		[[ " ${targets[*]} " != *" $s "* ]] || { [[ $s == "$last" ]] && break; continue; }
		build "$s" "$repo:stage-$s"
		echo "stage-$s=$repo:stage-$s"
	done
fi
for t in "${targets[@]}"; do
	target=$t tag=$repo:$t platform=()
	if [[ $t == default ]]; then tag=$repo:latest; fi
	if [[ $t == wasm ]]; then
		# An engine that cannot hold images for the OS wasi (Docker 20.10
		# without the containerd image store) refuses an empty one at once.
		if probe=$(tar -cf - -T /dev/null | "$docker" import --platform wasi/wasm - "$repo:wasi-probe" 2>&1); then
			"$docker" rmi "$repo:wasi-probe" >/dev/null
			platform=(--platform wasi/wasm)
		else
			echo "   this Docker engine ($("$docker" version -f '{{.Server.Version}}')) refuses images for wasi/wasm (docker import: ${probe#Error response from daemon: }): the wasm target is built for the engine's own platform" >&2
		fi
	fi
	build "$target" "$tag" "${platform[@]}"
	echo "$t=$tag"
done
echo "== built ${targets[*]} in $((SECONDS - start)) s" >&2
