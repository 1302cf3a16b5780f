#!/bin/bash
# On-demand regions (issue 14), benchmark 4: the first request's latency with
# ondemand.max_wait against the time of its copy alone, one run.
#
# Each of N files (2 MiB, new to the on-demand region) is asked for once, one after the
# other, from the on-demand region (location=), with max_wait 20s and `regionmirror fill`
# (4 workers) running: the request waits for the copy and is sent into the region. The
# copy's own time is what the fill worker logs (took=); the difference is what waiting adds:
# the miss's flush, the worker's wake-up and claim, the record, NOTIFY and the snapshot
# rebuild that wakes the request.
#
# Run from the repository root:
#
#	testdata/bench/ondemand-wait.sh [files]
#
# Setup: `regionmirror demo --dir .tmp/bench-wait` on the sample repository plus the files,
# pushed and scanned into three file regions; eu-central-1 then becomes on-demand and forgets
# its copies of the files. Copies into a file region come from the origin. Ports 18290-18292
# (BENCH_PORT changes the first).
set -euo pipefail
n=${1:-40}
base=${BENCH_PORT:-18290}
demo_port=$base regions_port=$((base + 1)) serve_port=$((base + 2))
command -v psql >/dev/null || { echo "psql is missing: apt-get install -y postgresql-client" >&2; exit 2; }
[ -f testdata/bench/ondemand-wait.sh ] || { echo "run from the repository root" >&2; exit 2; }

dir=.tmp/bench-wait
mkdir -p "$dir"
make -s build
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

od=eu-central-1 sub=bench/wait
if [ ! -f "$dir/origin/.complete" ]; then
	rm -rf "$dir/origin"
	mkdir -p "$dir/origin/$sub"
	cp -r testdata/origin/. "$dir/origin/"
	for ((i = 0; i < n; i++)); do
		head -c $((2 << 20)) /dev/urandom >"$dir/origin/$sub/file-$i.bin"
	done
	touch "$dir/origin/.complete"
fi
./bin/regionmirror demo --dir "$dir" --origin "$dir/origin" --fill-workers 0 \
	--listen "127.0.0.1:$demo_port" --regions-listen "127.0.0.1:$regions_port" >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 600); do
	grep -q 'regionmirror demo is serving' "$dir/demo.log" && break
	kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log" >&2; exit 1; }
	sleep 1
done
grep -q 'regionmirror demo is serving' "$dir/demo.log" || { echo "demo not ready" >&2; exit 1; }
pg_port=$(sed -n 4p "$dir/pg/data/postmaster.pid")
dburl="postgres://postgres@127.0.0.1:$pg_port/regionmirror?sslmode=disable"
sql() { psql -X -q -t -A "$dburl" -c "$1"; }
cat >"$dir/regionmirror.yaml" <<EOF
database_url: $dburl
origin:
  path: $PWD/$dir/origin
server:
  listen: 127.0.0.1:$serve_port
ondemand:
  max_wait: 20s
EOF
export REGIONMIRROR_CONFIG=$dir/regionmirror.yaml
./bin/regionmirror region edit "$od" --fill on-demand >/dev/null
sql "DELETE FROM region_objects o USING files f, regions r WHERE o.file_id = f.id AND o.region_id = r.id
	AND r.name = '$od' AND f.path LIKE '$sub/%'"
sql "DELETE FROM fill_jobs"
./bin/regionmirror serve --access-log=false >"$dir/serve.log" 2>&1 &
pids+=($!)
./bin/regionmirror fill --workers 4 >"$dir/fill.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$serve_port/readyz")" = 200 ] && break
	sleep 0.2
done
sleep 1
results=$dir/results.txt
: >"$results"
for ((i = 0; i < n; i++)); do
	out=$(curl -s -o /dev/null -w '%{time_total} %{redirect_url}' "http://127.0.0.1:$serve_port/pub/$sub/file-$i.bin?location=$od")
	t=${out%% *} url=${out#* }
	[[ "$url" == */$od/* ]] || { echo "file-$i: sent to $url, not into $od: the wait timed out" >&2; exit 1; }
	took=
	for _ in $(seq 100); do # the worker logs its copy just after recording it
		took=$(grep "path=$sub/file-$i.bin " "$dir/fill.log" | sed -n 's/.* took=\([^ ]*\).*/\1/p' | tail -1) || true
		[ -n "$took" ] && break
		sleep 0.05
	done
	[ -n "$took" ] || { echo "file-$i: the fill log has no copy of it" >&2; exit 1; }
	echo "$i $t $took" >>"$results"
done
# took= is a Go duration (ms or s).
awk '
function secs(d) { if (d ~ /ms$/) return d / 1000; if (d ~ /µs$/) return d / 1e6; return d + 0 }
{ req[NR] = $2; cp[NR] = secs($3); ov[NR] = $2 - secs($3) }
function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
END {
	n = NR
	printf "%d first requests of 2 MiB files with max_wait, each sent into the region once its copy was verified\n", n
	printf "median first-request latency %.0f ms; median copy alone %.0f ms; median added by waiting %.0f ms\n", median(req, n) * 1000, median(cp, n) * 1000, median(ov, n) * 1000
}' "$results"
