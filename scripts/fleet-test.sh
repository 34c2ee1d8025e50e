#!/usr/bin/env bash
# fleet-test.sh: three wasiserve replicas behind haproxy on the real Docker
# engine, with deploy/compose and then deploy/swarm as shipped, under load
# from the host: replaced, killed and cut off; says SKIP where no Docker
# engine is reachable.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/fleet-test.sh [-h|--help] [--without FEATURE]... [--no-swarm] [--image IMAGE]
                             [-c N] [--strict]

Builds the default image (scripts/docker-build.sh --target default) and Debian's
haproxy in a local image (scripts/docker-bases.sh --haproxy), brings up
deploy/compose/compose.yaml (three replicas with --admin, --shutdown-delay and
--proxy-from the fleet network, haproxy with send-proxy-v2 and checks of
/readyz) on a private network, and runs scripts/fleetload from the host (N
keep-alive connections, GET /listener through haproxy's port on 127.0.0.1).
Phases, each printing its requests and failed requests:
  a  rolling replacement of all three replicas, each new one up in haproxy before
     the old one gets docker stop: 0 failed
  b  docker kill -s KILL of one replica: failed <= N (the requests in flight)
  c  docker network disconnect of one replica: failed <= N while it is cut off,
     then 0 failed and none of the answers from it once haproxy has taken it out;
     reconnected, it answers again, 0 failed
  d  the guests see the load client's address (the host's on the fleet network),
     never haproxy's
Then, unless --no-swarm, the same fleet on a single-node Swarm from
deploy/swarm/stack.yaml (docker swarm init, docker stack deploy):
  e  docker service update --image (start-first) under load: 0 failed
  f  as d, through the host-mode published port
Needs an inactive Swarm on the engine (else the Swarm part is skipped, saying so);
it leaves the engine as it found it: docker swarm leave --force, and the
containers, networks, volumes and images it made removed (the base images
are kept, like scripts/docker-smoke.sh's). Every phase runs; the exit status
is 1 if any failed.

  --without FEATURE  turn a feature off to see the phases that need it fail:
                     shutdown-delay (--shutdown-delay=0s; phases a, e) or
                     proxy-from (no send-proxy-v2, no --proxy-from; phases d, f)
  --no-swarm         skip the Swarm part
  --image IMAGE      use IMAGE (built from this Dockerfile) instead of building
  -c N               load client connections (default 8)
  --strict           exit 3 instead of 0 when no Docker engine is reachable

environment:
  DOCKER   the docker-compatible CLI to use (default: docker)

exit status:
  0  every phase passed; or SKIP: no Docker CLI or engine (without --strict)
  1  a phase or a step failed
  2  bad arguments
  3  SKIP with --strict
USAGE
}

without=()
swarm=1
image=""
conns=8
strict=0
while (($#)); do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--without) [[ $# -ge 2 ]] || { echo "fleet-test.sh: --without needs a value" >&2; exit 2; }; without+=("$2"); shift 2 ;;
	--without=*) without+=("${1#--without=}"); shift ;;
	--no-swarm) swarm=0; shift ;;
	--image) [[ $# -ge 2 ]] || { echo "fleet-test.sh: --image needs a value" >&2; exit 2; }; image=$2; shift 2 ;;
	--image=*) image=${1#--image=}; shift ;;
	-c) [[ $# -ge 2 ]] || { echo "fleet-test.sh: -c needs a value" >&2; exit 2; }; conns=$2; shift 2 ;;
	--strict) strict=1; shift ;;
	*) echo "fleet-test.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
for f in "${without[@]}"; do
	[[ $f == shutdown-delay || $f == proxy-from ]] || { echo "fleet-test.sh: --without '$f': want shutdown-delay or proxy-from" >&2; exit 2; }
done
[[ $conns =~ ^[0-9]+$ ]] && ((conns >= 1 && conns <= 64)) || { echo "fleet-test.sh: -c wants 1 to 64, got '$conns'" >&2; exit 2; }
off() { [[ " ${without[*]} " == *" $1 "* ]]; }

docker=${DOCKER:-docker}
skip() {
	echo "SKIP: $1; no fleet was run"
	if ((strict)); then exit 3; fi
	exit 0
}
command -v "$docker" >/dev/null || skip "no '$docker' CLI on PATH"
timeout 20 "$docker" info >/dev/null 2>&1 || skip "'$docker info' reaches no Docker engine"
for tool in curl go docker-compose; do
	command -v "$tool" >/dev/null || { echo "fleet-test.sh: $tool is needed (.ci/run installs it)" >&2; exit 1; }
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
run_id=wasiserve-fleet-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/$run_id.XXXXXX")
start_time=$SECONDS
load_pid="" compose_up=0 stack_up=0 swarm_inited=0 gwbridge_before=1
cleanup() {
	set +e
	if [[ -n $load_pid ]]; then kill "$load_pid" 2>/dev/null; wait "$load_pid" 2>/dev/null; fi
	if ((compose_up)); then dc down --volumes --remove-orphans --timeout 1 >/dev/null 2>&1; fi
	if ((stack_up)); then
		"$docker" stack rm "$run_id" >/dev/null 2>&1
		for _ in $(seq 60); do
			[[ -z $("$docker" ps -aq --filter "label=com.docker.stack.namespace=$run_id") ]] && break
			sleep 0.5
		done
	fi
	if ((swarm_inited)); then
		"$docker" swarm leave --force >/dev/null 2>&1
		if ((!gwbridge_before)); then "$docker" network rm docker_gwbridge >/dev/null 2>&1; fi
	fi
	"$docker" network ls -q --filter "name=$run_id" | xargs -r "$docker" network rm >/dev/null 2>&1
	"$docker" image ls --format '{{.Repository}}:{{.Tag}}' "$run_id" | xargs -r "$docker" rmi >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $1" >&2
	exit 1
}
failed_phases=()
# verdict PHASE OK TEXT: prints the phase's result; a failed one is
# remembered (every phase runs).
verdict() {
	if (($2)); then
		echo "   PASS $1: $3"
	else
		echo "   FAIL $1: $3"
		failed_phases+=("$1")
	fi
}

# --- images and the load client ---
echo "== fleet test: $run_id${without[*]:+, without ${without[*]}}"
if [[ -z $image ]]; then
	t0=$SECONDS
	built=$(scripts/docker-build.sh --repo "$run_id" --stages --log-dir "$work" --target default) ||
		fail "scripts/docker-build.sh (its output above)"
	image=$(sed -n 's/^default=//p' <<<"$built")
	echo "== built $image in $((SECONDS - t0)) s"
fi
"$docker" image inspect "$image" >/dev/null 2>&1 || fail "no image $image"
# The rolling updates' new image: the same with another version label.
next=$run_id:next
printf 'FROM %s\n' "$image" | "$docker" build -q --label "org.opencontainers.image.version=fleet-next" -t "$next" - >/dev/null 2>&1 ||
	fail "docker build of $next"
bases=$(scripts/docker-bases.sh --haproxy) || fail "scripts/docker-bases.sh --haproxy"
haproxy_image=$(sed -n 's/^HAPROXY_IMAGE=//p' <<<"$bases")
go build -o "$work/fleetload" ./scripts/fleetload || fail "go build ./scripts/fleetload"

cfg=$root/deploy/haproxy/haproxy.cfg
delay=5s
if off shutdown-delay; then delay=0s; fi
if off proxy-from; then
	# haproxy sends no PROXY header and the replicas trust only loopback.
	sed 's/ send-proxy-v2//' "$cfg" >"$work/haproxy.cfg"
	cfg=$work/haproxy.cfg
	chmod 644 "$cfg"
fi

# free_subnet PREFIX: the first PREFIX.N.0/24 (N from 0 to 250) that no
# Docker network uses.
free_subnet() {
	local used n
	used=$("$docker" network ls -q | xargs -r "$docker" network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}')
	for n in $(seq 0 250); do
		[[ " $used " == *" $1.$n.0/24 "* ]] || { echo "$1.$n.0/24"; return; }
	done
	fail "no free $1.N.0/24 subnet"
}
# free_port: a TCP port no one listens on (for the Swarm's host-mode ports).
free_port() {
	local p
	for p in $(shuf -i 20000-29999 -n 50); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	fail "no free port"
}

# --- the balancer's view ---
# stats: haproxy's CSV stats of the wasiserve servers, one line each:
# NAME STATUS IP 2XX (status and the count of 2xx answers).
stats() {
	curl -fsS --max-time 5 "http://127.0.0.1:$stats_port/stats;csv" 2>/dev/null | awk -F, '
		NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
		$col["pxname"] == "wasiserve" && $col["svname"] ~ /^ws/ {
			a = $col["addr"]; sub(/:[0-9]+$/, "", a)
			st = $col["status"]; sub(/ .*/, "", st)
			print $col["svname"], st, (a == "" ? "-" : a), $col["hrsp_2xx"] + 0 }'
}
# up_addrs: the addresses (IP) of the servers haproxy has UP.
up_addrs() { stats | awk '$2 == "UP" { print $3 }'; }
# answered IP: the 2xx answers haproxy has counted from the server at IP.
answered() { stats | awk -v ip="$1" '$3 == ip { n += $4 } END { print n + 0 }'; }
# wait_up N [IP] [down]: waits until haproxy has N servers UP (and IP among
# them, or with "down" not among them).
wait_up() {
	local want=$1 ip=${2:-} mode=${3:-up} got deadline=$((SECONDS + 90))
	while :; do
		got=$(up_addrs | sort)
		if [[ $(grep -c . <<<"$got") == "$want" ]]; then
			if [[ -z $ip ]]; then return; fi
			if [[ $mode == up ]] && grep -qx "$ip" <<<"$got"; then return; fi
			if [[ $mode == down ]] && ! grep -qx "$ip" <<<"$got"; then return; fi
		fi
		((SECONDS < deadline)) || fail "haproxy has UP: $(tr '\n' ' ' <<<"$got"), want $want${ip:+ with $ip $mode}"
		sleep 0.2
	done
}

# --- load ---
# start_load NAME: the load client in the background, through haproxy.
start_load() {
	load_name=$1
	"$work/fleetload" -url "http://127.0.0.1:$lb_port/listener" -c "$conns" -max 150s >"$work/load-$1.txt" 2>&1 &
	load_pid=$!
	load_start=$(date +%s%3N)
	sleep 0.5
}
# stop_load: ends the load client and prints its figures; sets $requests,
# $failed and $load (its whole output).
stop_load() {
	kill -INT "$load_pid"
	wait "$load_pid" || fail "fleetload: $(cat "$work/load-$load_name.txt")"
	load_pid=""
	load=$(cat "$work/load-$load_name.txt")
	requests=$(awk '$1 == "requests" { print $2 }' <<<"$load")
	failed=$(awk '$1 == "failed" { print $2 }' <<<"$load")
	local ms=$(($(date +%s%3N) - load_start))
	echo "   $load_name: requests $requests, failed $failed in $(awk -v ms="$ms" -v n="$requests" 'BEGIN { printf "%.1f s (%.0f requests/s)", ms / 1000, n * 1000 / ms }')$(awk '$1 == "error" { $1 = ""; printf "; error:%s", $0 }' <<<"$load" | head -c 300)"
}

# ip_of CONTAINER NETWORK
ip_of() { "$docker" inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }

# check_addresses PHASE BALANCER_IP: a short load; the guests must have
# seen only the host's address on the network, never the balancer's.
check_addresses() {
	local phase=$1 lb_ip=$2 want=$3 seen
	start_load "$phase"
	sleep 3
	stop_load
	seen=$(awk '$1 == "remote" { printf "%s (%d) ", $2, $3 }' <<<"$load")
	if [[ $(awk '$1 == "remote" { print $2 }' <<<"$load") == "$want" && $failed == 0 ]]; then
		verdict "$phase" 1 "the guests saw $seen: the load client's address on the network ($want), not haproxy's ($lb_ip)"
	else
		verdict "$phase" 0 "the guests saw $seen; want only the load client's address $want, never haproxy's $lb_ip"
	fi
}

# host_addr NETWORK: the host's address on a bridge network (its gateway),
# the source address of what the host sends to its containers.
host_addr() {
	local id gw
	gw=$("$docker" network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' "$1")
	if [[ -z $gw ]]; then
		id=$("$docker" network inspect -f '{{.Id}}' "$1")
		gw=$(ip -o -4 addr show "br-${id:0:12}" 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
	fi
	[[ -n $gw ]] || fail "no address of the host on network $1"
	echo "$gw"
}

# rss: the replicas' memory, from docker stats.
rss() {
	echo "   memory (docker stats): $("$docker" stats --no-stream --format '{{.Name}} {{.MemUsage}}' "$@" | awk '{ printf "%s %s; ", $1, $2 }')"
}

# ===== compose =====
subnet=$(free_subnet 172.30)
trust=$subnet
if off proxy-from; then trust=127.0.0.1/32; fi
net=${run_id}_fleet
dc() {
	WASISERVE_IMAGE=$image HAPROXY_IMAGE=$haproxy_image HAPROXY_CFG=$cfg FLEET_SUBNET=$subnet FLEET_TRUST=$trust \
		SHUTDOWN_DELAY=$delay FLEET_PORT= FLEET_STATS_PORT= \
		timeout 300 docker-compose -p "$run_id" -f deploy/compose/compose.yaml "$@"
}
echo "== compose: deploy/compose/compose.yaml, network $subnet, --shutdown-delay=$delay, --proxy-from=$trust"
compose_up=1
dc up -d >"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "docker-compose up"; }
lb=$(dc ps -q haproxy)
lb_port=$("$docker" port "$lb" 8080/tcp | head -n 1 | sed 's/.*://')
stats_port=$("$docker" port "$lb" 8404/tcp | head -n 1 | sed 's/.*://')
lb_ip=$(ip_of "$lb" "$net")
gateway=$(host_addr "$net")
wait_up 3
echo "   haproxy at 127.0.0.1:$lb_port ($lb_ip), stats at 127.0.0.1:$stats_port; 3 replicas UP after $((SECONDS - start_time)) s"
# replicas: the wasiserve containers, oldest first.
replicas() {
	"$docker" ps -q --filter "label=com.docker.compose.project=$run_id" --filter "label=com.docker.compose.service=wasiserve" |
		xargs -r "$docker" inspect -f '{{.Created}} {{.Name}}' | sort | awk '{ sub(/^\//, "", $2); print $2 }'
}

echo "== a: rolling replacement of the three replicas (start one, wait for it in haproxy, docker stop the oldest)"
start_load a
sleep 2
for i in 1 2 3; do
	mapfile -t old < <(replicas)
	dc up -d --no-recreate --scale wasiserve=4 wasiserve >>"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "docker-compose up --scale wasiserve=4"; }
	wait_up 4
	t0=$SECONDS
	"$docker" stop -t 25 "${old[0]}" >/dev/null
	"$docker" rm "${old[0]}" >/dev/null
	echo "   replaced ${old[0]} (docker stop took $((SECONDS - t0)) s)"
	wait_up 3
done
sleep 2
stop_load
verdict a "$((failed == 0))" "rolling replacement: $requests requests, $failed failed (want 0)"
rss $(replicas)

echo "== b: docker kill -s KILL of one replica"
mapfile -t rs < <(replicas)
victim=${rs[0]}
start_load b
sleep 2
"$docker" kill -s KILL "$victim" >/dev/null
t0=$SECONDS
wait_up 2
echo "   haproxy took it out after $((SECONDS - t0)) s"
sleep 8 # requests that were sent to it end (haproxy's connect timeout and retries)
stop_load
verdict b "$((failed <= conns))" "SIGKILL: $requests requests, $failed failed (want <= $conns, the requests in flight)"
dc up -d --no-recreate wasiserve >>"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "docker-compose up (restart the killed replica)"; }
wait_up 3

echo "== c: docker network disconnect of one replica, then reconnect"
mapfile -t rs < <(replicas)
victim=${rs[0]}
ip=$(ip_of "$victim" "$net")
start_load c-cut
sleep 2
"$docker" network disconnect "$net" "$victim"
t0=$SECONDS
wait_up 2 "$ip" down
echo "   haproxy took $victim ($ip) out after $((SECONDS - t0)) s"
sleep 8
stop_load
verdict c-cut "$((failed <= conns))" "cut off: $requests requests, $failed failed (want <= $conns, the requests in flight)"
start_load c-around
sleep 4
stop_load
up=$(up_addrs | tr '\n' ' ')
verdict c-around "$((failed == 0))" "routed around: $requests requests, $failed failed (want 0); haproxy has UP: $up(not $ip)"
"$docker" network connect --alias wasiserve "$net" "$victim"
ip=$(ip_of "$victim" "$net")
t0=$SECONDS
wait_up 3 "$ip" up
echo "   reconnected as $ip: UP in haproxy after $((SECONDS - t0)) s"
before=$(answered "$ip")
start_load c-back
sleep 4
stop_load
n=$(($(answered "$ip") - before))
verdict c-back "$((failed == 0 && n > 0))" "taken back: $requests requests, $failed failed, $n answered by $ip in haproxy's counts (want 0 and > 0)"

echo "== d: client addresses"
check_addresses d "$lb_ip" "$gateway"
dc down --volumes --remove-orphans --timeout 25 >>"$work/compose.log" 2>&1 || fail "docker-compose down"
compose_up=0

# ===== swarm =====
if ((!swarm)); then
	echo "== Swarm: skipped (--no-swarm)"
elif [[ $("$docker" info -f '{{.Swarm.LocalNodeState}}') != inactive ]]; then
	echo "== Swarm: skipped: this engine is already part of a Swarm ($("$docker" info -f '{{.Swarm.LocalNodeState}}')), which this test leaves alone"
else
	"$docker" network inspect docker_gwbridge >/dev/null 2>&1 || gwbridge_before=0
	echo "== Swarm: docker swarm init, docker stack deploy -c deploy/swarm/stack.yaml"
	t0=$SECONDS
	swarm_inited=1
	"$docker" swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init"
	subnet=$(free_subnet 10.231)
	trust=$subnet
	if off proxy-from; then trust=127.0.0.1/32; fi
	lb_port=$(free_port)
	stats_port=$(free_port)
	stack_up=1
	WASISERVE_IMAGE=$image HAPROXY_IMAGE=$haproxy_image HAPROXY_CFG=$cfg FLEET_SUBNET=$subnet FLEET_TRUST=$trust \
		SHUTDOWN_DELAY=$delay FLEET_PORT=$lb_port FLEET_STATS_PORT=$stats_port \
		timeout 120 "$docker" stack deploy --resolve-image never -c deploy/swarm/stack.yaml "$run_id" >"$work/stack.log" 2>&1 ||
		{ cat "$work/stack.log" >&2; fail "docker stack deploy"; }
	net=${run_id}_fleet
	deadline=$((SECONDS + 120))
	until curl -fsS --max-time 2 "http://127.0.0.1:$stats_port/stats" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "haproxy of the stack does not answer on 127.0.0.1:$stats_port: $("$docker" service ps --no-trunc "${run_id}_haproxy" 2>&1 | tail -n 3)"
		sleep 0.5
	done
	wait_up 3
	lb=$("$docker" ps -q --filter "label=com.docker.swarm.service.name=${run_id}_haproxy")
	lb_ip=$(ip_of "$lb" "$net")
	echo "   haproxy at 127.0.0.1:$lb_port (mode host, $lb_ip on $subnet); 3 replicas UP after $((SECONDS - t0)) s"

	echo "== e: docker service update --image $next (start-first)"
	start_load e
	sleep 2
	t0=$SECONDS
	timeout 300 "$docker" service update --detach=false --quiet --image "$next" "${run_id}_wasiserve" >"$work/update.log" 2>&1 ||
		{ cat "$work/update.log" >&2; fail "docker service update"; }
	echo "   update converged after $((SECONDS - t0)) s"
	wait_up 3
	sleep 2
	stop_load
	running=$("$docker" service ps --filter desired-state=running --format '{{.Image}}' "${run_id}_wasiserve" | sort | uniq -c | tr -s ' ')
	verdict e "$((failed == 0))" "service update: $requests requests, $failed failed (want 0); tasks running:$running"
	rss $("$docker" ps -q --filter "label=com.docker.swarm.service.name=${run_id}_wasiserve")

	echo "== f: client addresses through the host-mode port"
	# The host reaches a host-mode port through docker_gwbridge.
	check_addresses f "$lb_ip" "$(host_addr docker_gwbridge)"
fi

echo "== fleet test took $((SECONDS - start_time)) s"
if ((${#failed_phases[@]})); then
	echo "FAIL: phases ${failed_phases[*]}"
	exit 1
fi
echo "PASS: every phase"
