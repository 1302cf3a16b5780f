#!/bin/bash
# The real `regionmirror serve` binary against a bare echo/v4 server (issue 16), on the
# same core, in rounds: serve as production starts it (request log on), serve
# --access-log=false, and testdata/bench/bare.go answering /pub/* with a constant 302 with
# a real redirect's headers and /metalink with the real metalink's body. Run from the
# repository root (or `make bench-serve`):
#
#	testdata/bench/serve-ab.sh [seconds per run] [connections] [rounds]
#
# BENCH_SERVE_BEFORE=path/to/an/older/regionmirror adds that binary, started the same way
# (request log on), to every round: before and after in one run.
#
# Setup, reused by later runs: `regionmirror demo --dir .tmp/bench-serve` (a private
# PostgreSQL, three file regions, the test GeoIP database, which places 127.0.0.1 in
# Frankfurt) on an origin tree of the sample repository plus 20,000 small files, pushed and
# scanned, so every region holds every file verified. The demo stays up for the run (its
# PostgreSQL, and its region server, which serve's prober checks every second); the serve
# processes read a configuration file as the systemd unit does (REGIONMIRROR_CONFIG) and
# write their log to .tmp/bench-serve/serve-*.log, emptied after every run.
#
# The 1,000,000-file series has a database of its own in the demo's PostgreSQL, bench1m:
# the demo's regions and a million synthetic files (the same names, numbers 0-999999)
# verified in its three push regions, written by SQL: pushing a million files would take
# most of an hour here, and serve reads only the records. Its own serve processes (on, off,
# before) read it; the bare server is the same.
#
# Every serve process and the bare server run on CPU 0, wrk (one thread) and the demo with
# its PostgreSQL on CPU 1. Series: /pub one hot file, /pub random of a 1,000-file hot set,
# /pub random of 20,000 and of 1,000,000 files, /metalink. Each run prints requests/s, p50,
# p99 and the server's CPU time per request (utime+stime from /proc/<pid>/stat over the
# requests wrk completed); the end prints medians of the rounds and ratios to bare. Ports
# 18180-18188 (BENCH_PORT changes the first). Everything it writes is under .tmp/.
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
base=${BENCH_PORT:-18180}
demo_port=$base regions_port=$((base + 1))
declare -A port=([on]=$((base + 2)) [off]=$((base + 3)) [bare]=$((base + 4)) [before]=$((base + 5))
	[on1m]=$((base + 6)) [off1m]=$((base + 7)) [before1m]=$((base + 8)))
declare -A pid=()
before=${BENCH_SERVE_BEFORE:-}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is missing: apt-get install -y postgresql-client" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (server on 0, wrk on 1)" >&2; exit 2; }
[ -f testdata/bench/serve-ab.sh ] || { echo "run from the repository root" >&2; exit 2; }
[ -z "$before" ] || [ -x "$before" ] || { echo "BENCH_SERVE_BEFORE=$before is not an executable" >&2; exit 2; }

# BENCH_SERVE_SERIES picks some (e.g. "metalink metalinkc"); metalinkc is /metalink with
# countme=1 on every request, the worst case of the countme counting (dnf sends it once a week).
read -r -a series_all <<<"${BENCH_SERVE_SERIES:-hot hotset all all1m metalink metalinkc}"
with1m=
for s in "${series_all[@]}"; do
	case $s in
	hot | hotset | all | metalink | metalinkc) ;;
	all1m) with1m=1 ;;
	*) echo "BENCH_SERVE_SERIES: unknown series $s" >&2; exit 2 ;;
	esac
done

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
files=20000 hotset=1000 big=1000000
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
pg=postgres://postgres@127.0.0.1:$(sed -n 4p "$dir/pg/data/postmaster.pid")

# The million-file database, built once (a few minutes).
# Its marker is the last statement's result: every copy of every file.
if [ -n "$with1m" ] && [ "$(psql -X -tA "$pg/bench1m?sslmode=disable" -c 'SELECT count(*) FROM region_objects' 2>/dev/null || true)" != "$((3 * big))" ]; then
	echo "building the database of the 1,000,000-file series (a few minutes)"
	psql -X -q "$pg/postgres?sslmode=disable" -c 'DROP DATABASE IF EXISTS bench1m' -c 'CREATE DATABASE bench1m'
	REGIONMIRROR_DATABASE_URL="$pg/bench1m?sslmode=disable" ./bin/regionmirror migrate >"$dir/migrate-1m.log" 2>&1 ||
		{ cat "$dir/migrate-1m.log" >&2; exit 1; }
	psql -X -q -v ON_ERROR_STOP=1 "$pg/regionmirror?sslmode=disable" -c "\\copy regions TO '$dir/regions.copy'"
	psql -X -q -v ON_ERROR_STOP=1 "$pg/bench1m?sslmode=disable" -c "\\copy regions FROM '$dir/regions.copy'"
	psql -X -q -v ON_ERROR_STOP=1 "$pg/bench1m?sslmode=disable" <<SQL
INSERT INTO files (path, size, sha256, md5, mtime)
SELECT '$pkgdir/python3-package-number-' || g || '-1.2.3-1.fc40.noarch.rpm', 40,
       sha256(g::text::bytea), decode(md5(g::text), 'hex'), now()
FROM generate_series(0, $big - 1) g;
INSERT INTO region_objects (region_id, file_id, size, sha256, state, pushed_at, verified_at, current)
SELECT r.id, f.id, f.size, f.sha256, 'present', now(), now(), true FROM regions r, files f WHERE r.fill = 'push';
ANALYZE;
SQL
fi

# serve's configuration as production has it (a file, defaults for the rest).
config() { # database
	printf '%s\n' "database_url: $pg/$1?sslmode=disable" "origin:" "  path: $PWD/$dir/origin" \
		"  url: http://127.0.0.1:$regions_port/origin" "server:" "  listen: 127.0.0.1:${port[on]}" \
		"  geoip_database: $PWD/testdata/geoip/regionmirror-test-city.mmdb"
}
config regionmirror >"$dir/regionmirror.yaml"
config bench1m >"$dir/regionmirror-1m.yaml"
start_serve() { # which binary config flags...
	local which=$1 bin=$2 conf=$3 log=$dir/serve-$1.log
	shift 3
	: >"$log"
	REGIONMIRROR_CONFIG=$conf REGIONMIRROR_SERVER_LISTEN=127.0.0.1:${port[$which]} \
		taskset -c 0 "$bin" serve "$@" >>"$log" 2>&1 &
	pids+=($!)
	pid[$which]=$!
}
# The before binary may know an older schema than the demo's database has (and refuses a
# newer one): it gets copies made by its own migrate, holding the data of every table its
# schema has.
copy_for_before() { # database
	local from=$1 to=${1}_before tables
	psql -X -q "$pg/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS $to" -c "CREATE DATABASE $to"
	REGIONMIRROR_DATABASE_URL="$pg/$to?sslmode=disable" "$before" migrate >"$dir/migrate-before.log" 2>&1 ||
		{ cat "$dir/migrate-before.log" >&2; exit 1; }
	local list="FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'"
	tables=$(psql -X -tA "$pg/$to?sslmode=disable" -c "SELECT string_agg(format('-t public.%I', table_name), ' ') $list")
	# migrate's own rows (a singleton or two) make way for the copy's.
	psql -X -q -v ON_ERROR_STOP=1 "$pg/$to?sslmode=disable" -c "$(psql -X -tA "$pg/$to?sslmode=disable" \
		-c "SELECT 'TRUNCATE ' || string_agg(format('public.%I', table_name), ', ') || ' CASCADE' $list")"
	# shellcheck disable=SC2086 # one -t per table
	pg_dump --data-only --disable-triggers $tables "$pg/$from?sslmode=disable" |
		psql -X -q -v ON_ERROR_STOP=1 "$pg/$to?sslmode=disable" >/dev/null
	config "$to" >"$dir/regionmirror-$to.yaml"
}
start_serve on ./bin/regionmirror "$dir/regionmirror.yaml"
start_serve off ./bin/regionmirror "$dir/regionmirror.yaml" --access-log=false
if [ -n "$with1m" ]; then
	start_serve on1m ./bin/regionmirror "$dir/regionmirror-1m.yaml"
	start_serve off1m ./bin/regionmirror "$dir/regionmirror-1m.yaml" --access-log=false
fi
kinds=(on off)
if [ -n "$before" ]; then
	echo "copying the databases for the before binary"
	copy_for_before regionmirror
	start_serve before "$before" "$dir/regionmirror-regionmirror_before.yaml"
	if [ -n "$with1m" ]; then
		copy_for_before bench1m
		start_serve before1m "$before" "$dir/regionmirror-bench1m_before.yaml"
	fi
	kinds+=(before)
fi
for which in "${!pid[@]}"; do
	p=${port[$which]}
	for _ in $(seq 600); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p$HOT")" = 302 ] && break
		sleep 0.2
	done
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p$HOT")" = 302 ] ||
		{ echo "serve $which on $p does not redirect $HOT" >&2; cat "$dir"/serve-*.log >&2; exit 1; }
done
# Every region holds every file, verified: locate lists the regions a redirect may choose,
# each with its health. (Not verified_at: that is the region's last good run, and the
# million-file database has no runs.)
verified() { # port n
	curl -s "http://127.0.0.1:$1/api/v1/locate?path=$(file "$2")" | grep -o '"health"' | wc -l || true
}
for n in 0 $((hotset - 1)) $((files - 1)); do
	[ "$(verified "${port[on]}" "$n")" -ge 3 ] || { echo "file $n is not verified in three regions" >&2; exit 1; }
done
# serve redirects to the origin until its first read of the per-file data is in: a few
# seconds for a million files.
for which in ${with1m:+on1m off1m} ${with1m:+${before:+before1m}}; do
	for n in 0 $((big / 2)) $((big - 1)); do
		for _ in $(seq 300); do
			[ "$(verified "${port[$which]}" "$n")" -ge 3 ] && break
			sleep 0.5
		done
		[ "$(verified "${port[$which]}" "$n")" -ge 3 ] || { echo "file $n of bench1m is not verified in three regions ($which)" >&2; exit 1; }
	done
done

# The request log is on in one and off in the other (written every 100 ms).
sleep 0.5
# (answers of 5xx, WARN, are logged either way: the startup wait above may have met one)
grep -q 'level=INFO msg=request' "$dir/serve-on.log" || { echo "serve (default) wrote no request log" >&2; exit 1; }
! grep -q 'level=INFO msg=request' "$dir/serve-off.log" || { echo "serve --access-log=false logged requests" >&2; exit 1; }

# The bare server gets the real answers' headers and body.
METALINK='/metalink?repo=demo-1&arch=x86_64'
curl -s -D "$dir/redirect.headers" -o /dev/null "http://127.0.0.1:${port[on]}$HOT"
curl -s -o "$dir/metalink.xml" "http://127.0.0.1:${port[on]}$METALINK"
taskset -c 0 "$dir/bare" -listen "127.0.0.1:${port[bare]}" -redirect "$dir/redirect.headers" -metalink "$dir/metalink.xml" >"$dir/bare.log" 2>&1 &
pids+=($!)
pid[bare]=$!
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:${port[bare]}$METALINK" && break
	sleep 0.1
done
real_bytes=$(curl -s -D - -o /dev/null "http://127.0.0.1:${port[on]}$HOT" | grep -vi '^date:' | wc -c)
bare_bytes=$(curl -s -D - -o /dev/null "http://127.0.0.1:${port[bare]}$HOT" | grep -vi '^date:' | wc -c)
echo "redirect headers: real $real_bytes bytes, bare $bare_bytes bytes; metalink body: $(wc -c <"$dir/metalink.xml") bytes"
# A warm-up (not counted): the first seconds of a fresh process are slower.
for which in "${!pid[@]}"; do
	taskset -c 1 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:${port[$which]}$HOT" >/dev/null
	taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$which]}$METALINK" >/dev/null
done
empty_logs() { # local: the rounds' loop below uses $which after calling this
	local w
	for w in "${!pid[@]}"; do [ "$w" = bare ] || : >"$dir/serve-$w.log"; done
}
empty_logs
sleep 1

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ms() { # wrk's latency (850.00us, 3.21ms, 1.02s) in ms
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
results=$dir/results.txt
: >"$results"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-5s %-6s %10s %9s %9s %16s\n' series round which 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/request'
for series in "${series_all[@]}"; do
	target=$HOT script=() args=()
	case $series in
	hotset) script=(-s testdata/bench/serve-random.lua) args=(-- "$hotset") ;;
	all) script=(-s testdata/bench/serve-random.lua) args=(-- "$files") ;;
	all1m) script=(-s testdata/bench/serve-random.lua) args=(-- "$big") ;;
	metalink) target=$METALINK ;;
	metalinkc) target=$METALINK'&countme=1' ;;
	esac
	for ((round = 1; round <= rounds; round++)); do
		for which in "${kinds[@]}" bare; do
			proc=$which
			[ "$series" = all1m ] && [ "$which" != bare ] && proc=${which}1m
			c0=$(cpu "${pid[$proc]}")
			out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "${script[@]}" "http://127.0.0.1:${port[$proc]}$target" "${args[@]}")
			c1=$(cpu "${pid[$proc]}")
			empty_logs # serve appends
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			non2xx=$(awk '/Non-2xx or 3xx/ {print $NF}' <<<"$out")
			[ -z "$non2xx" ] || { echo "$which $series: $non2xx answers not 2xx/3xx" >&2; exit 1; }
			row=("$series" "$round" "$which" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
				"$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" "$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
				"$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / t / n}')")
			echo "${row[*]}" >>"$results"
			printf '%-9s %-5s %-6s %10s %9s %9s %16s\n' "${row[@]}"
		done
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians of the rounds; ratios of requests/s and CPU per request to bare.
median() { # of series $series: which column
	awk -v s="$series" -v w="$1" -v c="$2" '$1 == s && $3 == w {print $c}' "$results" | sort -g |
		awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
echo
echo "medians of $rounds rounds of ${secs}s, $conns connections (on: serve, request log on; off: --access-log=false${before:+; before: $before, log on})"
printf '%-9s %-6s %10s %8s %8s %8s %8s %8s\n' series which 'req/s' 'x bare' 'p50 ms' 'p99 ms' 'CPU µs' 'x bare'
for series in "${series_all[@]}"; do
	for which in "${kinds[@]}" bare; do
		printf '%-9s %-6s %10s %8s %8s %8s %8s %8s\n' "$series" "$which" "$(median "$which" 4)" \
			"$(ratio "$(median "$which" 4)" "$(median bare 4)")" "$(median "$which" 5)" "$(median "$which" 6)" \
			"$(median "$which" 7)" "$(ratio "$(median "$which" 7)" "$(median bare 7)")"
	done
done

# The same as issue 16's table (markdown): ratios of medians to bare, then CPU per request.
order=(off on)
# shellcheck disable=SC2016 # the backquotes are markdown
cols=('`serve --access-log=false`' '`serve` (default: request log on)')
if [ -n "$before" ]; then
	order+=(before)
	cols+=("before (\`$before\`, log on)")
fi
# shellcheck disable=SC2016 # the backquotes are markdown
declare -A names=([hot]='`/pub` redirect, one hot file' [hotset]='`/pub` redirect, random of a 1,000-file hot set'
	[all]='`/pub` redirect, random of 20,000 files' [all1m]='`/pub` redirect, random of 1,000,000 files'
	[metalink]='`/metalink` (the bare server sends the same body)'
	[metalinkc]='`/metalink&countme=1`, every request counted (bare: the same body)')
echo
line="| series: medians of $rounds rounds, ratio of requests/s to bare echo |"
for c in "${cols[@]}"; do line+=" $c |"; done
echo "$line"
line="|---|"
for _ in "${cols[@]}"; do line+="---|"; done
echo "$line"
cpus=()
for series in "${series_all[@]}"; do
	line="| ${names[$series]} (bare: $(median bare 4 | awk '{printf "%.0f", $1}')/s, p99 $(median bare 6) ms) |"
	c="$(median bare 7)"
	for which in "${order[@]}"; do
		line+=" $(ratio "$(median "$which" 4)" "$(median bare 4)") ($(median "$which" 4 | awk '{printf "%.0f", $1}')/s, p99 $(median "$which" 6) ms) |"
		c+=" $(median "$which" 7)"
	done
	echo "$line"
	cpus+=("$c")
done
range() { printf '%s\n' "${cpus[@]}" | awk -v c="$1" '{v = $c} NR == 1 || v < lo {lo = v} NR == 1 || v > hi {hi = v} END {printf "%s-%s µs", lo, hi}'; }
line="| server CPU per request (bare echo: $(range 1)) |"
for ((i = 0; i < ${#order[@]}; i++)); do line+=" $(range $((i + 2))) |"; done
echo "$line"
