#!/usr/bin/env bash
# bench/dns/run.sh: seamark's authoritative DNS against Knot DNS, NSD and
# CoreDNS (file plugin), side by side in one run on this machine, with dnsperf.
#
#   bash bench/dns/run.sh                    # 100 services, dnsperf -c 4 -l 20
#   N=1000 DURATION=20 CLIENTS=4 bash bench/dns/run.sh
#
# Both servers answer the same names in zone bench.test from the same data:
# N services (svcNNNN) with 3 static nodes each (check none, TTL 5 s), their
# node names (svcNNNN-a.node.bench.test), SRV records, the apex SOA/NS and
# ns.bench.test. seamark reads them from a config file, the others from one
# zone file. Response rate limiting is off on every server (dnsperf is one
# source asking the same names over and over: exactly what RRL exists to
# stop), or with RRL=1 on in every server at a rate dnsperf does not reach,
# with no exempt sources (seamark exempts loopback by default), so each
# answer pays for the limiter's accounting; each server runs as many UDP
# workers as the machine has cores.
# All servers are started first and stay up; dnsperf loads one at a time
# (the others idle) in ROUNDS rounds that alternate between them, so noise
# from other work on the machine falls on every server alike. Every run has
# the same query file, dnsperf options and duration, after a short uncounted
# warm-up. CPU is read from /proc: the server's utime+stime, dnsperf's, the
# whole machine's busy time, and "other": the machine's less the server's and
# dnsperf's. When "other" is large, something else competed for the cores
# and the numbers of that run are suspect.
#
# Environment:
#   N                services (default 100)
#   DURATION         seconds of each measured dnsperf run (default 20)
#   ROUNDS           measured runs per server, alternating (default 2)
#   WARMUP           seconds of the uncounted warm-up run (default 2)
#   CLIENTS          dnsperf -c (default 4)
#   DNSPERF_EXTRA    more dnsperf options for every run, e.g. "-e" for EDNS
#   PEERS            authoritative peers from Debian (default "knot nsd"; each
#                    skipped with a note when its package is not installed)
#   VARIANTS         further CoreDNS runs, each a "+"-joined list of plugins
#                    added after file (default "cache multisocket"; e.g.
#                    "cache minimal cache+multisocket"; empty: file only)
#   RRL              0 (default): rate limiting off everywhere; 1: on
#                    everywhere at a rate per source and answer that dnsperf
#                    never reaches (1 000 000 answers/s; Knot 65 000, its
#                    mod-rrl limited this load at 1 000 000 (16-bit token
#                    counts, it seems) and still drops ~0.02 % at 65 000),
#                    loopback not exempt
#   LATENCY          1 (default): a second pass per server with dnsperf -v for
#                    latency percentiles (its per-query output costs dnsperf
#                    CPU, so QPS is taken from the first pass only); 0: not
#   COREDNS_VERSION  module version for go install (default latest)
#   COREDNS_BIN      use this coredns binary instead of installing one;
#                    "skip": no CoreDNS in this run
#   KEEP             1: keep the temporary directory (logs, zone, queries)
#
# Traffic goes to 127.0.0.1 only; every dnsperf run is bounded by -l and by
# timeout(1). Everything started here is stopped by PID on exit.
set -euo pipefail

N=${N:-100}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-4}
DNSPERF_EXTRA=${DNSPERF_EXTRA:-}
VARIANTS=${VARIANTS-cache multisocket}
LATENCY=${LATENCY:-1}
RRL=${RRL:-0}
COREDNS_VERSION=${COREDNS_VERSION:-latest}
KEEP=${KEEP:-0}
export GOTOOLCHAIN=local

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d /tmp/seamark-bench-dns.XXXXXX)
cd "$tmp"
pids=()

cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
		fi
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench/dns: $*" >&2; }
die() { log "$*"; exit 1; }

# free_port prints a loopback port free for both UDP and TCP: below the
# kernel's ephemeral range (where busy neighbours' outgoing connections and
# TIME_WAIT sockets hold ports that a listener then cannot bind), and used by
# no socket in any state.
free_port() {
	local p lo
	lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (lo > 12000 ? lo - 10000 : 2000)))
		if [[ -z $(ss -Hanu "sport = :$p") && -z $(ss -Hant "sport = :$p") ]]; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# tree PID: the process and its descendants (NSD forks its servers).
tree() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(pgrep -P "$p"); do tree "$c"; done
	done
}
# cpu_ticks PID: utime+stime of the process tree (all threads), in clock ticks.
# (The name field may hold spaces, "(nsd: server 1)": fields are counted
# after it.)
cpu_ticks() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0))); done; echo "$t"; }
rss_mb() { local k=0 p; for p in $(tree "$1"); do k=$((k + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $((k / 1024)); }
# busy_ticks: the machine's busy time (all CPUs: not idle, not iowait), in
# clock ticks. Interrupt time (irq, softirq: on loopback the packet delivery)
# is in it, and also in the stime of the process it interrupted.
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
hz=$(getconf CLK_TCK)

PEERS=${PEERS-knot nsd}

# ---------------------------------------------------------------- tools
command -v dnsperf >/dev/null || { log "installing dnsperf"; apt-get install -y dnsperf >&2 || { apt-get update >&2 && apt-get install -y dnsperf >&2; }; }
command -v dig >/dev/null || { log "installing dig"; apt-get install -y bind9-dnsutils >&2; }

log "building seamark"
(cd "$root" && go build -o "$tmp/seamark" ./cmd/seamark)

if [[ ${COREDNS_BIN:-} == skip ]]; then
	coredns=
	VARIANTS=
elif [[ -n ${COREDNS_BIN:-} ]]; then
	coredns=$COREDNS_BIN
else
	log "installing coredns@$COREDNS_VERSION (minutes the first time; cached after)"
	mkdir -p "$tmp/gobin"
	(cd "$tmp" && GOBIN="$tmp/gobin" GOFLAGS= go install "github.com/coredns/coredns@$COREDNS_VERSION")
	coredns=$tmp/gobin/coredns
fi

# ---------------------------------------------------------------- data
zone=bench.test
ttl=5
addr() { # service index, node index (0..2) -> a loopback address no one listens on
	echo "127.$((2 + $2)).$(($1 / 256)).$(($1 % 256))"
}
{
	echo "zones: [$zone]"
	if [[ $RRL == 1 ]]; then
		echo "dns: {rate_limit: {responses_per_second: 1000000, exempt: []}}"
	else
		echo "dns: {rate_limit: {disabled: true}}"
	fi
	echo "services:"
	for i in $(seq 1 "$N"); do
		s=$(printf 'svc%04d' "$i")
		echo "  - name: $s"
		echo "    port: 3000"
		echo "    check: {type: none}"
		echo "    answers: {ttl: ${ttl}s}"
		echo "    nodes:"
		k=0
		for n in a b c; do
			echo "      - {id: $s-$n, address: $(addr "$i" $k)}"
			k=$((k + 1))
		done
	done
} >"$tmp/seamark.yaml"

# The zone file holds what seamark's table holds for the same config: SOA
# (TTL 60, minimum 5, as seamark synthesizes it), NS, ns A, and per service
# the A set, the SRV set and the node names.
{
	echo "\$ORIGIN $zone."
	echo "@ 60 IN SOA ns.$zone. hostmaster.$zone. 1 60 10 3600 5"
	echo "@ 60 IN NS ns.$zone."
	echo "ns 60 IN A 127.0.0.1"
	for i in $(seq 1 "$N"); do
		s=$(printf 'svc%04d' "$i")
		k=0
		for n in a b c; do
			a=$(addr "$i" $k)
			echo "$s $ttl IN A $a"
			echo "$s-$n.node $ttl IN A $a"
			echo "_$s._tcp $ttl IN SRV 0 1 3000 $s-$n.node.$zone."
			k=$((k + 1))
		done
	done
} >"$tmp/db.$zone"

# Query mix, per service in turn: 7 × service A, 1 × node-name A, 1 × service
# AAAA (NODATA: the nodes are IPv4), 1 × a name that does not exist (NXDOMAIN).
{
	for i in $(seq 1 "$N"); do
		s=$(printf 'svc%04d' "$i")
		for _ in 1 2 3 4 5 6 7; do echo "$s.$zone A"; done
		echo "$s-a.node.$zone A"
		echo "$s.$zone AAAA"
		echo "nx$s.$zone A"
	done
} >"$tmp/queries.txt"
nq=$(wc -l <"$tmp/queries.txt")

# ---------------------------------------------------------------- servers
declare -A PID PORT
names=()

start_seamark() {
	"$tmp/seamark" server --config "$tmp/seamark.yaml" --http-addr 127.0.0.1:0 --dns-addr 127.0.0.1:0 \
		--data-dir "$tmp/seamark-data" --etcd-client-addr 127.0.0.1:0 --etcd-peer-addr 127.0.0.1:0 \
		>"$tmp/seamark.log" 2>&1 &
	pids+=($!)
	PID[seamark]=$!
	local line=""
	for _ in $(seq 600); do
		line=$(grep -m1 'seamark server running' "$tmp/seamark.log" || true)
		[[ -n $line ]] && break
		kill -0 "${PID[seamark]}" 2>/dev/null || { cat "$tmp/seamark.log" >&2; die "seamark exited"; }
		sleep 0.1
	done
	[[ -n $line ]] || { cat "$tmp/seamark.log" >&2; die "seamark did not start in 60 s"; }
	PORT[seamark]=$(sed -n 's/.* dns=127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
	[[ -n ${PORT[seamark]} ]] || die "no dns= address in: $line"
	names+=(seamark)
}

start_nsd() {
	local port
	port=$(free_port)
	mkdir -p "$tmp/nsd"
	cat >"$tmp/nsd/nsd.conf" <<-EOF
	server:
	  ip-address: 127.0.0.1@$port
	  username: ""
	  chroot: ""
	  zonesdir: "$tmp/nsd"
	  database: ""
	  zonelistfile: "$tmp/nsd/zone.list"
	  xfrdfile: "$tmp/nsd/xfrd.state"
	  xfrdir: "$tmp/nsd"
	  pidfile: "$tmp/nsd/nsd.pid"
	  server-count: $(nproc)
	  rrl-ratelimit: $([[ $RRL == 1 ]] && echo 1000000 || echo 0)
	  rrl-whitelist-ratelimit: $([[ $RRL == 1 ]] && echo 1000000 || echo 0)
	  minimal-responses: yes
	  verbosity: 0
	remote-control:
	  control-enable: no
	zone:
	  name: $zone
	  zonefile: "$tmp/db.$zone"
	EOF
	nsd -d -c "$tmp/nsd/nsd.conf" >"$tmp/nsd.log" 2>&1 &
	pids+=($!)
	PID[nsd]=$! PORT[nsd]=$port
	names+=(nsd)
}

start_knot() {
	local port
	port=$(free_port)
	mkdir -p "$tmp/knot"
	cat >"$tmp/knot/knot.conf" <<-EOF
	server:
	    listen: 127.0.0.1@$port
	    rundir: "$tmp/knot"
	    udp-workers: $(nproc)
	    tcp-workers: 1
	    background-workers: 1
	database:
	    storage: "$tmp/knot/db"
	log:
	  - target: stderr
	    any: warning
	zone:
	  - domain: $zone
	    file: "$tmp/db.$zone"
	    journal-content: none
	    zonefile-sync: -1
	EOF
	if [[ $RRL == 1 ]]; then
		cat >>"$tmp/knot/knot.conf" <<-EOF
		mod-rrl:
		  - id: bench
		    rate-limit: 65000
		    slip: 2
		template:
		  - id: default
		    global-module: mod-rrl/bench
		EOF
	fi
	knotd -c "$tmp/knot/knot.conf" >"$tmp/knot.log" 2>&1 &
	pids+=($!)
	PID[knot]=$! PORT[knot]=$port
	names+=(knot)
}

start_coredns() { # NAME PLUGIN-LINES
	local name=$1 port
	port=$(free_port)
	printf '%s:%s {\n\tbind 127.0.0.1\n\tfile %s\n%s\n}\n' "$zone" "$port" "$tmp/db.$zone" "$2" >"$tmp/Corefile.$name"
	"$coredns" -conf "$tmp/Corefile.$name" -quiet >"$tmp/$name.log" 2>&1 &
	pids+=($!)
	PID[$name]=$! PORT[$name]=$port
	names+=("$name")
}

# wait_ready NAME: the last service answers its 3 addresses (seamark applies
# the config before it says it runs, but its snapshot may trail by a moment).
wait_ready() {
	local last
	last=$(printf 'svc%04d' "$N")
	for _ in $(seq 300); do
		if [[ $(dig +short +tries=1 +time=1 -p "${PORT[$1]}" @127.0.0.1 "$last.$zone" A 2>/dev/null | grep -c .) == 3 ]]; then
			return
		fi
		kill -0 "${PID[$1]}" 2>/dev/null || { cat "$tmp/$1.log" >&2; die "$1 exited"; }
		sleep 0.1
	done
	die "$1 on port ${PORT[$1]} never answered $last.$zone A with 3 addresses"
}

# answers PORT NAME TYPE: one line per query for comparing servers:
#   name type rcode aa ANSWER sorted records | AUTHORITY sorted owner TTL type
answers() {
	local out rcode aa ans auth
	out=$(dig +tries=1 +time=2 +nocmd +noall +comments +answer +authority -p "$1" @127.0.0.1 "$2" "$3")
	rcode=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
	aa=$(grep -q 'flags:.* aa' <<<"$out" && echo aa || echo -)
	ans=$(sed -n '/ANSWER SECTION/,/^$/p' <<<"$out" | awk '!/^;/ && NF >= 5 {$3 = ""; print}' | tr -s ' ' | sort | paste -sd, -)
	auth=$(sed -n '/AUTHORITY SECTION/,/^$/p' <<<"$out" | awk '!/^;/ && NF >= 5 {print $1, $2, $4}' | sort | paste -sd, -)
	echo "$2 $3 $rcode $aa ANSWER ${ans:--} | AUTHORITY ${auth:--}"
}
check_answers() { # PORT
	local s
	s=$(printf 'svc%04d' 1)
	answers "$1" "$s.$zone" A
	answers "$1" "$s-a.node.$zone" A
	answers "$1" "$s.$zone" AAAA
	answers "$1" "nx$s.$zone" A
	answers "$1" "_$s._tcp.$zone" SRV
	answers "$1" "$zone" NS
}
# comparable: what must be equal between servers: rcode, aa, the answer
# section, and of the authority section only whether it holds the SOA.
# CoreDNS adds the apex NS to positive answers and gives the negative SOA its
# own TTL, where seamark answers minimally and gives min(TTL, MINIMUM) (RFC
# 2308 3); both are shown, not compared.
comparable() { awk -F' [|] AUTHORITY ' '{print $1 (index($2, " SOA") ? " +SOA" : "")}' <<<"$1"; }

# run_dnsperf NAME TAG VERBOSE SECONDS: one dnsperf run against NAME; sets r_*.
run_dnsperf() {
	local name=$1 verbose=$3 dur=$4 out=$tmp/$1.$2.dnsperf pid=${PID[$1]}
	local args=(-s 127.0.0.1 -p "${PORT[$name]}" -d "$tmp/queries.txt" -c "$CLIENTS" -l "$dur" -n 100000)
	# shellcheck disable=SC2206
	args+=($DNSPERF_EXTRA)
	[[ $verbose == 1 ]] && args+=(-v)
	local t0 t1 b0 b1
	b0=$(busy_ticks)
	t0=$(cpu_ticks "$pid")
	timeout $((dur + 30)) /usr/bin/time -f '%U %S' -o "$out.time" dnsperf "${args[@]}" >"$out" 2>"$out.err" ||
		{ cat "$out.err" >&2; die "dnsperf failed against $name"; }
	t1=$(cpu_ticks "$pid")
	b1=$(busy_ticks)
	local secs ndone srv perf
	secs=$(awk '/Run time \(s\):/ {print $4}' "$out")
	ndone=$(awk '/Queries completed:/ {print $3}' "$out")
	srv=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN {print d / hz}')
	perf=$(awk '{print $1 + $2}' "$out.time")
	r_qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out")
	r_avg=$(awk '/Average Latency \(s\):/ {printf "%.3f", $4 * 1000}' "$out")
	r_max=$(awk '/Average Latency \(s\):/ {gsub(/[),]/, ""); printf "%.1f", $8 * 1000}' "$out")
	r_sd=$(awk '/Latency StdDev \(s\):/ {printf "%.3f", $4 * 1000}' "$out")
	r_lost=$(awk '/Queries lost:/ {print $3}' "$out")
	r_codes=$(awk -F': *' '/Response codes:/ {print $2}' "$out")
	r_size=$(awk -F': *' '/Average packet size:/ {print $2}' "$out")
	r_cpu=$(awk -v c="$srv" -v s="$secs" 'BEGIN {printf "%.1f s (%.0f %%)", c, 100 * c / s}')
	r_cpus=$srv
	r_qpc=$(awk -v c="$srv" -v q="$ndone" 'BEGIN {if (c > 0) printf "%.0f", q / c; else print "-"}')
	r_perfcpu=$(awk -v c="$perf" -v s="$secs" 'BEGIN {printf "%.1f s (%.0f %%)", c, 100 * c / s}')
	r_other=$(awk -v b=$((b1 - b0)) -v hz="$hz" -v c="$srv" -v p="$perf" -v s="$secs" 'BEGIN {o = b / hz - c - p; if (o < 0) o = 0; printf "%.1f s (%.0f %%)", o, 100 * o / s}')
	r_busy=$(awk -v b=$((b1 - b0)) -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.1f s (%.0f %%)", b / hz, 100 * b / hz / s}')
	r_rss=$(rss_mb "$pid")
	r_done=$ndone
	if [[ $verbose == 1 ]]; then
		# -v prints one line per answered query; its last field is the latency (s).
		r_pct=$(awk '$1 == ">" {print $NF}' "$out" | sort -g | awk '{v[NR] = $1} END {
			if (NR == 0) { print "- | - | -"; exit }
			split("50 99 99.9", ps, " ")
			for (i = 1; i <= 3; i++) { k = int(NR * ps[i] / 100); if (k < 1) k = 1; printf "%s%.3f", (i > 1 ? " | " : ""), v[k] * 1000 }
		}')
		rm -f "$out" # large
	fi
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting seamark, $PEERS and coredns ($VARIANTS)"
start_seamark
for p in $PEERS; do
	case $p in
	nsd) if command -v nsd >/dev/null; then start_nsd; else log "nsd not installed (apt-get install nsd): skipped"; fi ;;
	knot) if command -v knotd >/dev/null; then start_knot; else log "knotd not installed (apt-get install knot): skipped"; fi ;;
	*) die "unknown peer $p (knot, nsd)" ;;
	esac
done
[[ -n $coredns ]] && start_coredns coredns ""
for v in $VARIANTS; do
	start_coredns "coredns+$v" "$(tr '+' '\n' <<<"$v" | sed 's/^/\t/')"
done
declare -A CHECK
for n in "${names[@]}"; do
	wait_ready "$n"
	CHECK[$n]=$(check_answers "${PORT[$n]}")
done

declare -A QPS CPUS DONE ROW CODES SIZE PCT VQPS
rows=()
for r in $(seq 1 "$ROUNDS"); do
	for n in "${names[@]}"; do
		run_dnsperf "$n" "warmup$r" 0 "$WARMUP"
		log "round $r: $n ${DURATION}s"
		run_dnsperf "$n" "round$r" 0 "$DURATION"
		QPS[$n]="${QPS[$n]:-} $r_qps" CPUS[$n]="${CPUS[$n]:-} $r_cpus" DONE[$n]="${DONE[$n]:-} $r_done"
		CODES[$n]=$r_codes SIZE[$n]=$r_size
		rows+=("| $r | $n | $r_qps | $r_avg | $r_sd | $r_max | $r_lost | $r_cpu | $r_qpc | $r_perfcpu | $r_other | $r_busy | $r_rss |")
	done
done
if [[ $LATENCY == 1 ]]; then
	for n in "${names[@]}"; do
		log "latency pass (-v): $n ${DURATION}s"
		run_dnsperf "$n" latency 1 "$DURATION"
		PCT[$n]=$r_pct VQPS[$n]=$r_qps
	done
fi

# mean QPS over rounds, and answers per server CPU-second over all rounds
mean() { awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF}' <<<"$1"; }
qpc() { paste <(tr ' ' '\n' <<<"$1" | grep .) <(tr ' ' '\n' <<<"$2" | grep .) | awk '{q += $1; c += $2} END {if (c > 0) printf "%.0f", q / c; else print "-"}'; }

# ---------------------------------------------------------------- report
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$root" && git status --porcelain 2>/dev/null | grep -q . && echo " + uncommitted changes" || true)
echo "## DNS: seamark vs $(tr ' ' '\n' <<<"$PEERS" | sed 's/knot/Knot/; s/nsd/NSD/' | paste -sd, - | sed 's/,/, /g'), CoreDNS, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "\`RRL=$RRL N=$N DURATION=$DURATION ROUNDS=$ROUNDS CLIENTS=$CLIENTS PEERS='$PEERS' VARIANTS='$VARIANTS' DNSPERF_EXTRA='$DNSPERF_EXTRA' bash bench/dns/run.sh\`"
echo
echo "- machine: $(nproc) cores, $(uname -sr), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "- seamark: \`$("$tmp/seamark" version)\` at $commit$dirty, built with $(go version | awk '{print $3}'); GOMAXPROCS default ($(nproc)), so $(nproc) UDP sockets"
[[ -n $coredns ]] && echo "- coredns: \`$("$coredns" -version | tr '\n' ' ' | sed 's/ *$//')\` (go install github.com/coredns/coredns@$COREDNS_VERSION)"
if [[ $RRL == 1 ]]; then
	[[ -n ${PID[knot]:-} ]] && echo "- knot: \`$(knotd --version | head -1)\`, udp-workers $(nproc), mod-rrl rate-limit 65000, zone file"
	[[ -n ${PID[nsd]:-} ]] && echo "- nsd: \`$(nsd -v 2>&1 | head -1)\`, server-count $(nproc), rrl-ratelimit 1000000 (whitelist too), minimal-responses yes, zone file"
	echo "- seamark: dns.rate_limit: responses_per_second 1000000, exempt [] (RRL on, loopback not exempt)"
else
	[[ -n ${PID[knot]:-} ]] && echo "- knot: \`$(knotd --version | head -1)\`, udp-workers $(nproc), no RRL module, zone file"
	[[ -n ${PID[nsd]:-} ]] && echo "- nsd: \`$(nsd -v 2>&1 | head -1)\`, server-count $(nproc), rrl-ratelimit 0, minimal-responses yes, zone file"
	echo "- seamark: dns.rate_limit.disabled: true (RRL is on by default)"
fi
echo "- load average (1, 5, 15 min) before the run: $load0; after: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
echo "- dnsperf: $(dnsperf -h 2>&1 | grep -m1 '^Version')"
echo "- zone $zone: $N services × 3 static nodes (check none, TTL ${ttl}s), their node names and SRV sets. CoreDNS serves the same records from a zone file: \`bind\` + \`file\`$(for v in $VARIANTS; do printf '; coredns+%s adds %s' "$v" "$(tr '+' ' ' <<<"$v")"; done) (default settings)"
echo "- queries: $nq, per service 7 × service A (3 records), 1 × node-name A, 1 × service AAAA (NODATA), 1 × NXDOMAIN; played in order, looped"
echo "- dnsperf \`-c $CLIENTS -l $DURATION -n 100000 $DNSPERF_EXTRA\` (-q 100 outstanding, default threads), a ${WARMUP}s uncounted warm-up before each run; one server loaded at a time, the others idle"
echo
echo "| round | server | QPS | avg latency ms | stddev ms | max ms | lost | server CPU (utime+stime) | answers per server CPU-second | dnsperf CPU | other CPU | machine busy (of $(nproc)00 %) | server RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| server | mean QPS | answers per server CPU-second | seamark / server QPS | seamark / server answers per CPU-second |"
echo "|---|---|---|---|---|"
sq=$(mean "${QPS[seamark]}")
sc=$(qpc "${DONE[seamark]}" "${CPUS[seamark]}")
for n in "${names[@]}"; do
	q=$(mean "${QPS[$n]}")
	c=$(qpc "${DONE[$n]}" "${CPUS[$n]}")
	echo "| $n | $q | $c | $(awk -v a="$sq" -v b="$q" 'BEGIN {printf "%.2f", a / b}') | $(awk -v a="$sc" -v b="$c" 'BEGIN {printf "%.2f", a / b}') |"
done
echo
if [[ $LATENCY == 1 ]]; then
	echo "Latency from one more run per server with \`dnsperf -v\` (one line per answer; that output costs dnsperf CPU, so its QPS is lower). With 100 queries outstanding in a closed loop, latency is mostly queueing, about 100 / QPS."
	echo
	echo "| server | QPS in this run | p50 ms | p99 ms | p99.9 ms |"
	echo "|---|---|---|---|---|"
	for n in "${names[@]}"; do
		echo "| $n | ${VQPS[$n]} | ${PCT[$n]} |"
	done
	echo
fi
echo "| server | response codes (last round) | average packet size |"
echo "|---|---|---|"
for n in "${names[@]}"; do
	echo "| $n | ${CODES[$n]} | ${SIZE[$n]} |"
done
echo
same=yes
for n in "${names[@]:1}"; do
	if [[ $(comparable "${CHECK[seamark]}") != $(comparable "${CHECK[$n]}") ]]; then
		same=no
		echo "**$n answers differently from seamark** (rcode, aa, answer section, SOA present):"
		echo '```'
		diff <(comparable "${CHECK[seamark]}") <(comparable "${CHECK[$n]}") || true
		echo '```'
	fi
done
[[ $same == yes ]] && echo "Same answers on every server (rcode, aa, answer section with TTLs, SOA in negative answers), by dig:"
echo
for n in "${names[@]}"; do
	echo "$n:"
	echo '```'
	echo "${CHECK[$n]}"
	echo '```'
done
