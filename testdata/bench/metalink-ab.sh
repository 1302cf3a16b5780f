#!/bin/bash
# Metalink A B A B A B: the real handler (A) against a bare echo handler returning a
# constant body of the same size (B), both from testdata/bench/serve.go in one process.
# The server runs on CPU 0 and wrk on CPU 1, so they do not take turns on one core; besides
# requests per second it prints the server's CPU time per request (from /proc), which a
# machine shared with other work disturbs far less. Run from the repository root:
#
#	testdata/bench/metalink-ab.sh [seconds per run] [connections]
#
# ACCESS_LOG=1 turns the real server's request log on (to /dev/null), as serve has it by
# default.
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
mkdir -p .tmp
go build -o .tmp/benchserve testdata/bench/serve.go
flags=()
[ "${ACCESS_LOG:-}" = 1 ] && flags+=(-access-log)
taskset -c 0 .tmp/benchserve -real 127.0.0.1:8081 -bare 127.0.0.1:8082 "${flags[@]}" >.tmp/benchserve.log 2>&1 &
pid=$!
trap 'kill $pid' EXIT
for _ in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:8082/metalink && break
	sleep 0.1
done
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
printf '%-4s %-5s %10s %9s %9s %16s\n' run which 'req/s' p50 p99 'CPU µs/request'
for i in 1 2 3; do
	for which in real bare; do
		port=8081
		[ $which = bare ] && port=8082
		c0=$(cpu)
		out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/metalink?repo=fedora-40&arch=x86_64&countme=1")
		c1=$(cpu)
		reqs=$(awk '/requests in/ {print $1}' <<<"$out")
		printf '%-4s %-5s %10s %9s %9s %16s\n' "$i" $which \
			"$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
			"$(awk '$1 == "50%" {print $2}' <<<"$out")" \
			"$(awk '$1 == "99%" {print $2}' <<<"$out")" \
			"$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / t / n}')"
	done
done
