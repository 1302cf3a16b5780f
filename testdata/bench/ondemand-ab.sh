#!/bin/bash
# On-demand regions (issue 14), benchmarks 1 and 2, one run each, A B A B:
#
#   held:   `regionmirror serve` redirecting into an on-demand region that holds the files
#           (each redirect also records the copy's request for expiry) against
#           testdata/bench/bare.go's constant 302 with a real redirect's headers, and as a
#           control the same files redirected to a push region (us-east-1);
#   misses: serve answering a burst of 10,000 distinct misses (the on-demand region lacks
#           the files: each is answered by the next region and recorded, and the misses are
#           flushed to fill_jobs in the background) against serve answering as many hits.
#
# Run from the repository root:
#
#	testdata/bench/ondemand-ab.sh [seconds per run] [connections]
#
# Setup (reused by later runs): `regionmirror demo --dir .tmp/bench-ondemand` on the sample
# repository plus 20,000 small files, pushed and scanned into three file regions; then
# eu-central-1 becomes on-demand (`region edit --fill on-demand`) and its records of files
# 10000-19999 are removed, so it holds files 0-9999 and misses the rest. No fill worker
# runs: the misses stay queued, and fill_jobs is emptied before every misses run so each
# burst queues 10,000 new jobs. serve (--access-log=false) and bare run on CPU 0, wrk and the
# demo with its PostgreSQL on CPU 1. Ports 18190-18193 (BENCH_PORT changes the first).
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
base=${BENCH_PORT:-18190}
demo_port=$base regions_port=$((base + 1)) serve_port=$((base + 2)) bare_port=$((base + 3))
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is missing: apt-get install -y postgresql-client" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (server on 0, wrk on 1)" >&2; exit 2; }
[ -f testdata/bench/ondemand-ab.sh ] || { echo "run from the repository root" >&2; exit 2; }

dir=.tmp/bench-ondemand
mkdir -p "$dir"
make -s build
go build -o "$dir/bare" testdata/bench/bare.go

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "${demo_pid:-}" ]; then
		kill -INT "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

files=20000 held=10000 od=eu-central-1
pkgdir=bench/linux/releases/40/Everything/x86_64/os/Packages/p
file() { echo "$pkgdir/python3-package-number-$1-1.2.3-1.fc40.noarch.rpm"; }
if [ ! -f "$dir/origin/.complete" ]; then
	echo "generating $dir/origin ($files files)"
	rm -rf "$dir/origin"
	mkdir -p "$dir/origin/$pkgdir"
	cp -r testdata/origin/. "$dir/origin/"
	for ((i = 0; i < files; i++)); do
		printf 'regionmirror on-demand benchmark file %d\n' "$i" >"$dir/origin/$(file "$i")"
	done
	touch "$dir/origin/.complete"
fi

echo "starting regionmirror demo --dir $dir (push and scan on the first run: a minute or two)"
taskset -c 1 ./bin/regionmirror demo --dir "$dir" --origin "$dir/origin" --fill-workers 0 \
	--listen "127.0.0.1:$demo_port" --regions-listen "127.0.0.1:$regions_port" >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 900); do
	grep -q 'regionmirror demo is serving' "$dir/demo.log" && break
	kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log" >&2; exit 1; }
	sleep 1
done
grep -q 'regionmirror demo is serving' "$dir/demo.log" || { echo "demo not ready after 15 minutes" >&2; exit 1; }
pg_port=$(sed -n 4p "$dir/pg/data/postmaster.pid")
dburl="postgres://postgres@127.0.0.1:$pg_port/regionmirror?sslmode=disable"
sql() { psql -X -q -t -A "$dburl" -c "$1"; }

cat >"$dir/regionmirror.yaml" <<EOF
database_url: $dburl
origin:
  path: $PWD/$dir/origin
  url: http://127.0.0.1:$regions_port/origin
server:
  listen: 127.0.0.1:$serve_port
  geoip_database: $PWD/testdata/geoip/regionmirror-test-city.mmdb
EOF
export REGIONMIRROR_CONFIG=$dir/regionmirror.yaml
./bin/regionmirror region edit "$od" --fill on-demand >/dev/null
# The on-demand region holds files 0-9999 only.
sql "DELETE FROM region_objects o USING files f, regions r WHERE o.file_id = f.id AND o.region_id = r.id
	AND r.name = '$od' AND f.path ~ 'python3-package-number-1[0-9]{4}-'"
sql "DELETE FROM fill_jobs"
taskset -c 0 ./bin/regionmirror serve --access-log=false >"$dir/serve.log" 2>&1 &
pids+=($!)
serve_pid=${pids[-1]}
HELD="/pub/$(file 7)?location=$od" MISS="/pub/$(file $((held + 7)))?location=$od"
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$serve_port$HELD")" = 302 ] && break
	sleep 0.2
done
loc() { curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$serve_port$1"; }
[[ "$(loc "$HELD")" == */$od/* ]] || { echo "a held file is not sent into $od: $(loc "$HELD")" >&2; cat "$dir/serve.log" >&2; exit 1; }
[[ "$(loc "$MISS")" != */$od/* ]] || { echo "a missing file is sent into $od" >&2; exit 1; }
sleep 2
[ "$(sql "SELECT count(*) FROM fill_jobs")" -ge 1 ] || { echo "the miss queued no job" >&2; exit 1; }

curl -s -D "$dir/redirect.headers" -o /dev/null "http://127.0.0.1:$serve_port$HELD"
curl -s -o "$dir/metalink.xml" "http://127.0.0.1:$serve_port/metalink?repo=demo-1&arch=x86_64"
taskset -c 0 "$dir/bare" -listen "127.0.0.1:$bare_port" -redirect "$dir/redirect.headers" -metalink "$dir/metalink.xml" >"$dir/bare.log" 2>&1 &
pids+=($!)
bare_pid=${pids[-1]}
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$bare_port/metalink" && break
	sleep 0.1
done
for port in "$serve_port" "$bare_port"; do # warm-up, not counted
	taskset -c 1 wrk -t1 -c"$conns" -d2s -s testdata/bench/ondemand-seq.lua "http://127.0.0.1:$port" -- "$held" 0 "$od" >/dev/null
done

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'; }
results=$dir/results.txt
: >"$results"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-5s %-6s %10s %9s %9s %10s %8s\n' bench round which 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/req' 'jobs after'
run() { # bench round which port pid first [region]
	local bench=$1 round=$2 which=$3 port=$4 pid=$5 first=$6 region=${7:-$od} c0 c1 out reqs non
	[ "$which" = misses ] && sql "DELETE FROM fill_jobs"
	c0=$(cpu "$pid")
	out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s testdata/bench/ondemand-seq.lua "http://127.0.0.1:$port" -- "$held" "$first" "$region")
	c1=$(cpu "$pid")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	non=$(awk '/Non-2xx or 3xx/ {print $NF}' <<<"$out")
	[ -z "$non" ] || { echo "$bench $which: $non answers not 2xx/3xx" >&2; exit 1; }
	sleep 2 # the last flush
	local row=("$bench" "$round" "$which" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
		"$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" "$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
		"$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / t / n}')"
		"$(sql "SELECT count(*) FROM fill_jobs")")
	echo "${row[*]}" >>"$results"
	printf '%-7s %-5s %-6s %10s %9s %9s %10s %8s\n' "${row[@]}"
}
for round in 1 2; do # A B A B, with the same files sent to a push region as a control
	run held "$round" serve "$serve_port" "$serve_pid" 0
	run held "$round" bare "$bare_port" "$bare_pid" 0
	run held "$round" push "$serve_port" "$serve_pid" 0 us-east-1
done
for round in 1 2; do
	run burst "$round" none "$serve_port" "$serve_pid" 0
	run burst "$round" misses "$serve_port" "$serve_pid" "$held"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
avg() { awk -v b="$1" -v w="$2" '$1 == b && $3 == w {s += $4; n++} END {printf "%.0f", s / n}' "$results"; }
echo
echo "held:  serve $(avg held serve)/s, bare $(avg held bare)/s: $(awk -v a="$(avg held serve)" -v b="$(avg held bare)" 'BEGIN {printf "%.2fx", a / b}') (target >= 0.8x);" \
	"the same files from the push region us-east-1: $(avg held push)/s, $(awk -v a="$(avg held push)" -v b="$(avg held bare)" 'BEGIN {printf "%.2fx", a / b}')"
echo "burst: misses $(avg burst misses)/s, none $(avg burst none)/s: $(awk -v a="$(avg burst misses)" -v b="$(avg burst none)" 'BEGIN {printf "%.2fx", a / b}') (target >= 0.8x)"
grep -i 'fills: writing' "$dir/serve.log" >&2 || true
