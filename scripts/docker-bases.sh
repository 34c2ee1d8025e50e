#!/usr/bin/env bash
# docker-bases.sh: makes the Dockerfile's base images locally, for a Docker
# engine that cannot pull from a registry: a Debian build image with this
# machine's Go toolchain (for GO_IMAGE) and a glibc runtime base like
# distroless/cc (for RUNTIME_IMAGE). Reuses images made before from the same
# inputs.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/docker-bases.sh [-h|--help] [--print] [--haproxy]

Makes two local images, unless images made from the same inputs exist:
  wasiserve-base/go:KEY  a minimal Debian root filesystem (debootstrap --variant=minbase,
                         with gcc, libc6-dev and ca-certificates) plus this machine's Go
                         toolchain (go env GOROOT) at /usr/local/go and its CA certificates
                         (/etc/ssl/certs/ca-certificates.crt, so that the module downloads trust
                         what this machine trusts): the Dockerfile's GO_IMAGE
  wasiserve-base/cc:KEY  only glibc and libgcc from that root filesystem, /etc/passwd with
                         nonroot (65532), /tmp and /home/nonroot: the RUNTIME_IMAGE of the
                         wasmtime target, like distroless/cc's nonroot image
With --haproxy, also a third one (for deploy/ and scripts/fleet-test.sh):
  wasiserve-base/haproxy:KEY  a minimal Debian root filesystem with Debian's haproxy
                         package, run as the haproxy user: haproxy -W -db -f
                         /etc/haproxy/haproxy.cfg (mount the configuration there);
                         SIGUSR1 is haproxy's soft stop (docker import cannot set
                         STOPSIGNAL: give --stop-signal SIGUSR1 or stop_signal)
KEY is a hash of what went into them: this script, the Debian mirror and suite,
the Go version, the CA certificates and the architecture. The Debian mirror is the first of this
machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) that
serves the machine's release. Needs root, debootstrap and a Docker engine.
Prints the tags last, as build arguments:
  GO_IMAGE=wasiserve-base/go:KEY
  RUNTIME_IMAGE=wasiserve-base/cc:KEY
  HAPROXY_IMAGE=wasiserve-base/haproxy:KEY   (with --haproxy)

  --print    only print the tags (nothing is made; exit 1 if an image is missing)
  --haproxy  make (or with --print, check) the haproxy image too

environment:
  DOCKER   the docker-compatible CLI to use (default: docker)
USAGE
}

print_only=0
with_haproxy=0
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--print) print_only=1; shift ;;
	--haproxy) with_haproxy=1; shift ;;
	*) echo "docker-bases.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

docker=${DOCKER:-docker}
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

# shellcheck disable=SC1091
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $suite ]] || { echo "docker-bases.sh: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
arch=$(dpkg --print-architecture 2>/dev/null || go env GOARCH)

# mirror prints the URI of the first apt source that serves $suite itself
# (not -updates or -security), in one-line or deb822 format.
mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		case "$f" in
		*.sources)
			awk -v s="$suite" '
				/^[[:space:]]*$/ { if (uri != "" && hit && deb) { print uri; exit } uri = ""; hit = 0; deb = 0; next }
				/^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
				/^URIs:/ { uri = $2 }
				/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
				END { if (uri != "" && hit && deb) print uri }' "$f" ;;
		*)
			awk -v s="$suite" '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == s) { print $i; exit } }' "$f" ;;
		esac
	done | head -n 1
}
url=$(mirror)
[[ -n $url ]] || { echo "docker-bases.sh: no apt source for '$suite' in /etc/apt/sources.list{,.d}" >&2; exit 1; }

goroot=$(go env GOROOT)
gover=$(go env GOVERSION)
packages=gcc,libc6-dev,ca-certificates
cacerts=/etc/ssl/certs/ca-certificates.crt
[[ -r $cacerts ]] || { echo "docker-bases.sh: no CA certificates at $cacerts" >&2; exit 1; }
key=$( { sha256sum "$self" "$cacerts" | cut -d' ' -f1; echo "$url $suite $arch $packages $gover"; } | sha256sum | cut -c1-12)
go_tag=wasiserve-base/go:$key
cc_tag=wasiserve-base/cc:$key
haproxy_tag=wasiserve-base/haproxy:$key

have() { "$docker" image inspect "$1" >/dev/null 2>&1; }
print_tags() {
	printf 'GO_IMAGE=%s\nRUNTIME_IMAGE=%s\n' "$go_tag" "$cc_tag"
	if ((with_haproxy)); then printf 'HAPROXY_IMAGE=%s\n' "$haproxy_tag"; fi
}
# all_made: every image asked for exists.
all_made() { have "$go_tag" && have "$cc_tag" && { ((!with_haproxy)) || have "$haproxy_tag"; }; }
if ((print_only)); then
	print_tags
	all_made
	exit
fi
if all_made; then
	echo "== base images exist (key $key): reused" >&2
	print_tags
	exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-bases.sh: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
((EUID == 0)) || { echo "docker-bases.sh: debootstrap needs root" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wasiserve-bases.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
# bootstrap ROOT PACKAGES: a minimal Debian root filesystem with PACKAGES
# (comma-separated) at ROOT, without package lists and downloaded .debs.
bootstrap() {
	local t0=$SECONDS
	echo "== debootstrap --variant=minbase --include=$2 $suite ($arch) from the apt source $url" >&2
	if ! debootstrap --variant=minbase --arch="$arch" --include="$2" "$suite" "$1" "$url" >"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log" >&2
		echo "docker-bases.sh: debootstrap failed (log above)" >&2
		exit 1
	fi
	rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*
	echo "== debootstrap took $((SECONDS - t0)) s" >&2
}

label=(--change "LABEL org.wasiserve.base-key=$key")
if ((with_haproxy)) && ! have "$haproxy_tag"; then
	bootstrap "$work/haproxy" haproxy
	tar -C "$work/haproxy" -c . | "$docker" import "${label[@]}" \
		--change "USER haproxy" --change "WORKDIR /var/lib/haproxy" \
		--change 'CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]' - "$haproxy_tag" >/dev/null
	echo "== $haproxy_tag: Debian $suite + haproxy $(dpkg-query --admindir="$work/haproxy/var/lib/dpkg" -W -f '${Version}' haproxy)" >&2
	rm -rf "$work/haproxy"
fi
if have "$go_tag" && have "$cc_tag"; then
	echo "== base images made in $((SECONDS - start)) s" >&2
	print_tags
	exit 0
fi
root=$work/rootfs
bootstrap "$root" "$packages"
if ! have "$go_tag"; then
	mkdir -p "$root/usr/local" "$root/go"
	cp -a "$goroot" "$root/usr/local/go"
	cp "$cacerts" "$root$cacerts"
	tar -C "$root" -c . | "$docker" import "${label[@]}" \
		--change "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		--change "ENV GOPATH=/go" --change "ENV GOTOOLCHAIN=local" \
		--change "WORKDIR /go" --change 'CMD ["bash"]' - "$go_tag" >/dev/null
	echo "== $go_tag: Debian $suite + $gover" >&2
fi
if ! have "$cc_tag"; then
	cc=$work/cc
	mkdir -p "$cc/etc" "$cc/tmp" "$cc/home/nonroot"
	chmod 1777 "$cc/tmp"
	chown 65532:65532 "$cc/home/nonroot"
	# The top-level links of a merged /usr (lib -> usr/lib, ...), then every
	# file and link of glibc and libgcc at its real path.
	for l in "$root"/*; do
		if [[ -L $l ]]; then cp -a "$l" "$cc/"; fi
	done
	for pkg in libc6 libgcc-s1; do
		list=""
		for f in "$root"/var/lib/dpkg/info/"$pkg".list "$root"/var/lib/dpkg/info/"$pkg":*.list; do
			if [[ -f $f ]]; then list=$f; break; fi
		done
		[[ -n $list ]] || { echo "docker-bases.sh: $pkg is not in the root filesystem" >&2; exit 1; }
		while IFS= read -r p; do
			[[ -L $root$p || -f $root$p ]] || continue
			dir=$(realpath --relative-to="$root" "$root$(dirname "$p")")
			mkdir -p "$cc/$dir"
			cp -a "$root$p" "$cc/$dir/"
		done <"$list"
	done
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$cc/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$cc/etc/group"
	tar -C "$cc" -c . | "$docker" import "${label[@]}" \
		--change "USER 65532" --change "WORKDIR /home/nonroot" - "$cc_tag" >/dev/null
	echo "== $cc_tag: glibc and libgcc from Debian $suite, user nonroot (65532)" >&2
fi
echo "== base images made in $((SECONDS - start)) s" >&2
print_tags
