#!/bin/bash
# The real `regionmirror serve` binary against a bare echo/v4 server (issue 16), on the
# same core, rounds A B C: serve as production starts it (request log on), serve
# --access-log=false, and testdata/bench/bare.go answering /pub/* with a constant 302 with
# a real redirect's headers and /metalink with the real metalink's body. Run from the
# repository root (or `make bench-serve`):
#
#	testdata/bench/serve-ab.sh [seconds per run] [connections] [rounds]
#
# Setup, reused by later runs: `regionmirror demo --dir .tmp/bench-serve` (a private
# PostgreSQL, three file regions, the test GeoIP database, which places 127.0.0.1 in
# Frankfurt) on an origin tree of the sample repository plus 20,000 small files, pushed and
# scanned, so every region holds every file verified. The demo stays up for the run (its
# PostgreSQL, and its region server, which serve's prober checks every second); the two
# serve processes read a configuration file as the systemd unit does (REGIONMIRROR_CONFIG)
# and write their log to .tmp/bench-serve/serve-*.log, emptied after every run.
#
# Both serve processes and the bare server run on CPU 0, wrk (one thread, 64 connections)
# and the demo with its PostgreSQL on CPU 1. Series: /pub one hot file, /pub random of a
# 1,000-file hot set, /pub random of 20,000 files, /metalink. Each run prints requests/s,
# p50, p99 and the server's CPU time per request (utime+stime from /proc/<pid>/stat over
# the requests wrk completed); the end prints medians of the rounds and ratios to bare.
# Ports 18180-18184 (BENCH_PORT changes the first). Everything it writes is under .tmp/.
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
base=${BENCH_PORT:-18180}
demo_port=$base regions_port=$((base + 1)) on_port=$((base + 2)) off_port=$((base + 3)) bare_port=$((base + 4))
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (server on 0, wrk on 1)" >&2; exit 2; }
[ -f testdata/bench/serve-ab.sh ] || { echo "run from the repository root" >&2; exit 2; }

dir=.tmp/bench-serve
mkdir -p "$dir"
make -s build
go build -o "$dir/bare" testdata/bench/bare.go

pids=()
cleanup() {
	# serve and bare first, then the demo, which stops its PostgreSQL on SIGINT.
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "${demo_pid:-}" ]; then
		kill -INT "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The origin tree: the sample repository (for /metalink) and 20,000 small files; the hot
# set is the first 1,000 of them, the hot file number 7.
files=20000 hotset=1000
pkgdir=bench/linux/releases/40/Everything/x86_64/os/Packages/p
file() { echo "$pkgdir/python3-package-number-$1-1.2.3-1.fc40.noarch.rpm"; }
HOT=/pub/$(file 7)
if [ ! -f "$dir/origin/.complete" ]; then
	echo "generating $dir/origin ($files files)"
	rm -rf "$dir/origin"
	mkdir -p "$dir/origin/$pkgdir"
	cp -r testdata/origin/. "$dir/origin/"
	for ((i = 0; i < files; i++)); do
		printf 'regionmirror serve benchmark file %d\n' "$i" >"$dir/origin/$(file "$i")"
	done
	touch "$dir/origin/.complete"
fi

echo "starting regionmirror demo --dir $dir (push and scan on the first run: a minute or two)"
taskset -c 1 ./bin/regionmirror demo --dir "$dir" --origin "$dir/origin" \
	--listen "127.0.0.1:$demo_port" --regions-listen "127.0.0.1:$regions_port" >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 900); do
	grep -q 'regionmirror demo is serving' "$dir/demo.log" && break
	kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log" >&2; exit 1; }
	sleep 1
done
grep -q 'regionmirror demo is serving' "$dir/demo.log" || { echo "demo not ready after 15 minutes" >&2; exit 1; }
pg_port=$(sed -n 4p "$dir/pg/data/postmaster.pid")

# serve's configuration as production has it (a file, defaults for the rest).
cat >"$dir/regionmirror.yaml" <<EOF
database_url: postgres://postgres@127.0.0.1:$pg_port/regionmirror?sslmode=disable
origin:
  path: $PWD/$dir/origin
  url: http://127.0.0.1:$regions_port/origin
server:
  listen: 127.0.0.1:$on_port
  geoip_database: $PWD/testdata/geoip/regionmirror-test-city.mmdb
EOF
start_serve() { # port log flags...
	local port=$1 log=$2
	shift 2
	: >"$log"
	REGIONMIRROR_CONFIG=$dir/regionmirror.yaml REGIONMIRROR_SERVER_LISTEN=127.0.0.1:$port \
		taskset -c 0 ./bin/regionmirror serve "$@" >>"$log" 2>&1 &
	pids+=($!)
}
start_serve "$on_port" "$dir/serve-on.log"
on_pid=${pids[-1]}
start_serve "$off_port" "$dir/serve-off.log" --access-log=false
off_pid=${pids[-1]}
for port in "$on_port" "$off_port"; do
	for _ in $(seq 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$HOT")" = 302 ] && break
		sleep 0.2
	done
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$HOT")" = 302 ] ||
		{ echo "serve on $port does not redirect $HOT" >&2; cat "$dir"/serve-*.log >&2; exit 1; }
done
# Every region holds every file, verified.
for n in 0 $((hotset - 1)) $((files - 1)); do
	held=$(curl -s "http://127.0.0.1:$on_port/api/v1/locate?path=$(file "$n")" | grep -o '"verified_at"' | wc -l || true)
	[ "$held" -ge 3 ] || { echo "file $n is not verified in three regions: $(curl -s "http://127.0.0.1:$on_port/api/v1/locate?path=$(file "$n")")" >&2; exit 1; }
done

# The request log is on in one and off in the other.
grep -q 'msg=request' "$dir/serve-on.log" || { echo "serve (default) wrote no request log" >&2; exit 1; }
! grep -q 'msg=request' "$dir/serve-off.log" || { echo "serve --access-log=false logged requests" >&2; exit 1; }

# The bare server gets the real answers' headers and body.
METALINK='/metalink?repo=demo-1&arch=x86_64'
curl -s -D "$dir/redirect.headers" -o /dev/null "http://127.0.0.1:$on_port$HOT"
curl -s -o "$dir/metalink.xml" "http://127.0.0.1:$on_port$METALINK"
taskset -c 0 "$dir/bare" -listen "127.0.0.1:$bare_port" -redirect "$dir/redirect.headers" -metalink "$dir/metalink.xml" >"$dir/bare.log" 2>&1 &
pids+=($!)
bare_pid=${pids[-1]}
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$bare_port$METALINK" && break
	sleep 0.1
done
real_bytes=$(curl -s -D - -o /dev/null "http://127.0.0.1:$on_port$HOT" | grep -vi '^date:' | wc -c)
bare_bytes=$(curl -s -D - -o /dev/null "http://127.0.0.1:$bare_port$HOT" | grep -vi '^date:' | wc -c)
echo "redirect headers: real $real_bytes bytes, bare $bare_bytes bytes; metalink body: $(wc -c <"$dir/metalink.xml") bytes"
# A warm-up (not counted): the first seconds of a fresh process are slower.
for port in "$on_port" "$off_port" "$bare_port"; do
	taskset -c 1 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port$HOT" >/dev/null
	taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port$METALINK" >/dev/null
done
: >"$dir/serve-on.log"
sleep 1

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ms() { # wrk's latency (850.00us, 3.21ms, 1.02s) in ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
results=$dir/results.txt
: >"$results"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-5s %-5s %10s %9s %9s %16s\n' series round which 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/request'
for series in hot hotset all metalink; do
	target=$HOT script=()
	case $series in
	hotset) script=(-s testdata/bench/serve-random.lua) ;;
	all) script=(-s testdata/bench/serve-random.lua) ;;
	metalink) target=$METALINK ;;
	esac
	args=()
	[ "$series" = hotset ] && args=(-- "$hotset")
	[ "$series" = all ] && args=(-- "$files")
	for ((round = 1; round <= rounds; round++)); do
		for which in on off bare; do
			case $which in
			on) port=$on_port pid=$on_pid ;;
			off) port=$off_port pid=$off_pid ;;
			bare) port=$bare_port pid=$bare_pid ;;
			esac
			c0=$(cpu "$pid")
			out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "${script[@]}" "http://127.0.0.1:$port$target" "${args[@]}")
			c1=$(cpu "$pid")
			: >"$dir/serve-on.log" # the request log; serve appends
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			non2xx=$(awk '/Non-2xx or 3xx/ {print $NF}' <<<"$out")
			[ -z "$non2xx" ] || { echo "$which $series: $non2xx answers not 2xx/3xx" >&2; exit 1; }
			row=("$series" "$round" "$which" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
				"$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" "$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
				"$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / t / n}')")
			echo "${row[*]}" >>"$results"
			printf '%-9s %-5s %-5s %10s %9s %9s %16s\n' "${row[@]}"
		done
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians of the rounds; ratios of requests/s and CPU per request to bare.
median() { # of series $series: which column
	awk -v s="$series" -v w="$1" -v c="$2" '$1 == s && $3 == w {print $c}' "$results" | sort -g |
		awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "medians of $rounds rounds of ${secs}s, $conns connections (on: serve, request log on; off: --access-log=false)"
printf '%-9s %-5s %10s %8s %8s %8s %8s %8s\n' series which 'req/s' 'x bare' 'p50 ms' 'p99 ms' 'CPU µs' 'x bare'
for series in hot hotset all metalink; do
	brps=$(median bare 4) bcpu=$(median bare 7)
	for which in on off bare; do
		rps=$(median "$which" 4) c=$(median "$which" 7)
		printf '%-9s %-5s %10s %8s %8s %8s %8s %8s\n' "$series" "$which" "$rps" \
			"$(awk -v a="$rps" -v b="$brps" 'BEGIN {printf "%.2fx", a / b}')" "$(median "$which" 5)" "$(median "$which" 6)" \
			"$c" "$(awk -v a="$c" -v b="$bcpu" 'BEGIN {printf "%.2fx", a / b}')"
	done
done

# The same as issue 16's table (markdown): ratios of medians to bare, then CPU per request.
echo
echo "| series: medians of $rounds rounds, ratio of requests/s to bare echo | \`serve --access-log=false\` | \`serve\` (default: request log on) | MirrorBits, same files |"
echo "|---|---|---|---|"
# shellcheck disable=SC2016 # the backquotes are markdown
declare -A names=([hot]='`/pub` redirect, one hot file' [hotset]='`/pub` redirect, random of a 1,000-file hot set'
	[all]='`/pub` redirect, random of 20,000 files' [metalink]='`/metalink` (the bare server sends the same body)')
cpus=()
for series in hot hotset all metalink; do
	cell() {
		local rps
		rps=$(median "$1" 4)
		awk -v a="$rps" -v b="$(median bare 4)" -v p="$(median "$1" 6)" 'BEGIN {printf "%.2fx (%.0f/s, p99 %.1f ms)", a / b, a, p}'
	}
	echo "| ${names[$series]} (bare: $(median bare 4 | awk '{printf "%.0f", $1}')/s, p99 $(median bare 6) ms) | $(cell off) | $(cell on) | |"
	cpus+=("$(median bare 7) $(median off 7) $(median on 7)")
done
range() { printf '%s\n' "${cpus[@]}" | awk -v c="$1" '{v = $c} NR == 1 || v < lo {lo = v} NR == 1 || v > hi {hi = v} END {printf "%s-%s µs", lo, hi}'; }
echo "| server CPU per request (bare echo: $(range 1)) | $(range 2) | $(range 3) | |"

