#!/bin/bash
# The freshness benchmark of issue 15: how long from "createrepo_c finished at the origin"
# until every region serves the new repomd.xml, and what a push of nothing costs. Run from
# the repository root (or `make bench-freshness`):
#
#	testdata/bench/freshness.sh [publications per mode]
#
# Setup (kept in .tmp/bench-freshness and reused by the next run; BENCH_FRESH=1 builds it
# again): an origin of 100,000 small files in 1,000 directories plus one real yum
# repository (testdata's, registered as bench-1/x86_64), a private PostgreSQL and three
# versitygw servers, one per region (public-read buckets), and a first full push.
#
# Then, for each mode of BENCH_MODES (default "watch cron"), with `regionmirror serve`
# running:
#   watch  `regionmirror watch` (which starts with one full push), no cron;
#   cron   `regionmirror cron` with schedules.push "*/1 * * * *" and no watcher;
# and per publication (default 10): a new noarch package is built with rpmbuild, copied into
# the repository's Packages/, and `createrepo_c --update` runs. From its exit the script
# times, each polled every 0.1 s by its own poller,
#   (a) every region's repository fresh with the new repomd.xml (region_repos in PostgreSQL:
#       the push read it back through the public URL),
#   (b) a metalink from every region's point of view (location=<region>) listing the new
#       repomd.xml's sha256,
#   (c) dnf in a fresh --installroot installing the new package through the metalink
#       (attempts start once (b) holds: before, dnf cannot see the package).
# In cron mode each publication starts at its own second of the minute (3, 9, ..., 57), so
# the wait for the next tick is spread over the minute rather than always the same.
#
# Last, the no-op: with `regionmirror watch` live and nothing changed, BENCH_NOOP_ROUNDS
# (default 5) rounds of, interleaved: `regionmirror push --scheduled` (ends without walking
# the origin), `regionmirror push` (the full walk of the 100,000 files, three regions),
# the binary of commit a9b3f9c (before issue 15; built once with `git worktree add` under
# .tmp, on a copy of the database at schema 6: BENCH_OLD=0 skips it) doing the same, and
# `rclone sync --checksum --dry-run` once per region (when rclone is installed, in the first
# BENCH_RCLONE_ROUNDS rounds, default 3; --dry-run because regionmirror's "+" twin keys would
# otherwise be deleted). Wall and CPU
# (user+system) from /usr/bin/time.
#
# Everything listens on 127.0.0.1, ports BENCH_PORT (default 18380) to BENCH_PORT+6;
# everything it writes is under .tmp/bench-freshness; every process it starts is stopped
# on exit (also on error or Ctrl-C). Results: .tmp/bench-freshness/results.txt (one line per
# publication), noop.txt, and summary.txt (what BENCHMARKS.md quotes).
set -euo pipefail
pubs=${1:-10}
modes=${BENCH_MODES:-watch cron}
noop_rounds=${BENCH_NOOP_ROUNDS:-5}
rclone_rounds=${BENCH_RCLONE_ROUNDS:-3} # of the no-op rounds (about 80 s each)
timeout=${BENCH_TIMEOUT:-300} # seconds per publication before it counts as timed out
base=${BENCH_PORT:-18380}
pg_port=$base serve_port=$((base + 4)) watch_port=$((base + 5)) cron_port=$((base + 6))
s3_ports=($((base + 1)) $((base + 2)) $((base + 3)))
regions=(us-east-1 eu-central-1 ap-southeast-2)
countries=(US DE AU)
nfiles=100000 per_dir=100

die() { echo "freshness.sh: $*" >&2; exit 2; }
[ -f testdata/bench/freshness.sh ] || die "run from the repository root"
for tool in createrepo_c rpmbuild dnf psql curl; do
	command -v $tool >/dev/null || die "$tool is missing: ./.ci/deps (or apt-get install -y createrepo-c rpm dnf postgresql curl)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install -y time"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
VERSITYGW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
[ -x "$VERSITYGW" ] || die "versitygw is missing: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

dir=$PWD/.tmp/bench-freshness
repo_dir=repo/bench/1/x86_64/os
make -s build
bin=$PWD/bin/regionmirror
if [ "$noop_rounds" -gt 0 ]; then
	"$bin" push --help | grep -q -- '--scheduled' || die "bin/regionmirror has no 'push --scheduled' (the pusher branch of issue 15 is not merged)"
fi
if [ "$noop_rounds" -gt 0 ] || [[ " $modes " == *" watch "* ]]; then
	"$bin" watch --help >/dev/null 2>&1 || die "bin/regionmirror has no 'watch' (the watch branch of issue 15 is not merged)"
fi

# --- processes: every one started is stopped on exit --------------------------------------
pids=() pg_started=
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "$pg_started" ] && "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() { # pid: stop one process started here, and forget it
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}
now() { date +%s.%N; }

export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret123 AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
sql() { PGOPTIONS=--client-min-messages=warning psql -q -At -h 127.0.0.1 -p "$pg_port" -U postgres "${2:-regionmirror}" -c "$1"; }
s3req() { # method url [body]: a signed request to a versitygw (curl signs SigV4)
	local body=${3:-}
	curl -sS --fail-with-body --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-X "$1" -H "x-amz-content-sha256: $(printf %s "$body" | sha256sum | cut -d' ' -f1)" ${body:+--data-binary "$body"} "$2" >/dev/null
}
start_servers() {
	mkdir -p "$dir/pg"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir/pg"
	[ -d "$dir/pg/data" ] || "${as_pg[@]}" "$PGBIN/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
	"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg -c fsync=off -c synchronous_commit=off" start >/dev/null
	pg_started=1
	for i in 0 1 2; do
		mkdir -p "$dir/s3-$i"
		"$VERSITYGW" --port "127.0.0.1:${s3_ports[$i]}" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
			--region us-east-1 --health /health --quiet --keep-alive posix "$dir/s3-$i" >"$dir/versitygw-$i.log" 2>&1 &
		pids+=($!)
	done
	for i in 0 1 2; do
		for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:${s3_ports[$i]}/health" && break; sleep 0.1; done
	done
}

# --- configuration: one file per mode (config keys are checked: the old binary gets its own)
write_config() { # file schedule-of-push with-watch-keys
	cat >"$1" <<EOF
database_url: postgres://postgres@127.0.0.1:$pg_port/regionmirror?sslmode=disable
origin:
  path: $dir/origin
server:
  listen: 127.0.0.1:$serve_port
schedules:
  push: "$2"
  scan: ""
  gc: ""
cron:
  listen: 127.0.0.1:$cron_port
  shutdown_timeout: 20s
log:
  level: info
EOF
	if [ "$3" = yes ]; then printf 'watch:\n  listen: 127.0.0.1:%s\n' "$watch_port" >>"$1"; fi
}
mkdir -p "$dir"
write_config "$dir/watch.yaml" "" yes
write_config "$dir/cron.yaml" "*/1 * * * *" yes
write_config "$dir/old.yaml" "" no
export REGIONMIRROR_CONFIG=$dir/watch.yaml

# --- setup, or the last run's --------------------------------------------------------------
if [ -n "${BENCH_FRESH:-}" ] || [ ! -f "$dir/setup.done" ]; then
	echo "setup: origin of $nfiles files plus the repository, PostgreSQL, three versitygw, first push"
	rm -rf "$dir/origin" "$dir/pg" "$dir"/s3-* "$dir/setup.done"
	for ((d = 0; d < nfiles / per_dir; d++)); do
		printf -v sub '%s/origin/files/d%04d' "$dir" "$d"
		mkdir -p "$sub"
		for ((i = 0; i < per_dir; i++)); do
			printf -v f '%s/f%06d.dat' "$sub" $((d * per_dir + i))
			printf 'regionmirror freshness benchmark file %d/%d\n' "$d" "$i" >"$f" # builtins only: no fork per file
		done
	done
	mkdir -p "$dir/origin/$repo_dir"
	cp -r testdata/origin/demo/1/x86_64/os/. "$dir/origin/$repo_dir/"
	start_servers
	"$PGBIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres regionmirror
	"$bin" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; exit 1; }
	for i in 0 1 2; do
		url=http://127.0.0.1:${s3_ports[$i]}
		s3req PUT "$url/bench-fresh-$i"
		s3req PUT "$url/bench-fresh-$i?policy=" '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::bench-fresh-'$i'/*"]}]}'
		"$bin" region add "${regions[$i]}" --bucket "bench-fresh-$i" --endpoint "$url" --public-url "$url/bench-fresh-$i" \
			--country "${countries[$i]}" >/dev/null
	done
	"$bin" repo add bench-1 x86_64 "$repo_dir" >/dev/null
	/usr/bin/time -f '%e %U %S' -o "$dir/initial.time" "$bin" push --json >"$dir/initial.json" 2>"$dir/initial.log"
	read -r w u s <"$dir/initial.time"
	echo "first push: $(find "$dir/origin" -type f | wc -l) files to 3 regions in ${w}s wall, $(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')s CPU"
	touch "$dir/setup.done"
else
	echo "setup: reusing $dir (BENCH_FRESH=1 builds it again)"
	start_servers
	"$bin" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; exit 1; }
fi
origin_files=$(find "$dir/origin" -type f | wc -l)

# --- the old binary (before issue 15) -------------------------------------------------------
old_bin=$dir/regionmirror-a9b3f9c
if [ "${BENCH_OLD:-1}" != 0 ] && [ ! -x "$old_bin" ]; then
	echo "building $old_bin (git worktree add under .tmp)"
	rm -rf "$dir/old-src"
	git worktree add --detach "$dir/old-src" a9b3f9c >/dev/null 2>&1
	(cd "$dir/old-src" && go build -o "$old_bin" ./cmd/regionmirror)
	git worktree remove --force "$dir/old-src"
fi

# --- serve ----------------------------------------------------------------------------------
fresh_regions() { # how many regions serve bench-1's repomd.xml with sha256 $1, verified
	sql "SELECT count(*) FROM region_repos rr JOIN repositories r ON r.id = rr.repository_id
		WHERE r.name = 'bench-1' AND r.arch = 'x86_64' AND rr.state = 'fresh' AND rr.repomd_sha256 = decode('$1', 'hex')"
}
repomd_sha() { sha256sum "$dir/origin/$repo_dir/repodata/repomd.xml" | cut -d' ' -f1; }
"$bin" serve >"$dir/serve.log" 2>&1 &
pids+=($!)
serve_pid=$!
metalink() { curl -s --max-time 5 "http://127.0.0.1:$serve_port/metalink?repo=bench-1&arch=x86_64${1:+&location=$1}"; }
# (a match in a variable, not grep -q on a pipe: with pipefail, grep leaving early fails curl)
lists() { [[ "$(metalink "${2:-}")" == *"$1"* ]]; } # sha256 [location]: the metalink lists it
for _ in $(seq 300); do lists "$(repomd_sha)" && break; sleep 0.2; done
lists "$(repomd_sha)" || { tail -20 "$dir/serve.log" >&2; die "serve does not list the current repomd.xml"; }

mkdir -p "$dir/repos.d"
cat >"$dir/repos.d/bench.repo" <<EOF
[bench]
name=bench
metalink=http://127.0.0.1:$serve_port/metalink?repo=bench-\$releasever&arch=\$basearch
enabled=1
gpgcheck=0
EOF
dnf_install() { # package root
	rm -rf "$2"
	mkdir -p "$2"
	dnf -y -q --setopt=reposdir="$dir/repos.d" --installroot="$2" --setopt=cachedir="$2/var/cache/dnf" --releasever=1 \
		--nogpgcheck --disablerepo='*' --enablerepo=bench --setopt=skip_if_unavailable=False \
		--setopt=install_weak_deps=False install "$1" >"$2.log" 2>&1
}

# --- one publication ------------------------------------------------------------------------
stamp=$(date +%s)
build_rpm() { # name: a noarch package installing one small file; prints the rpm's path
	local top=$dir/rpmbuild
	mkdir -p "$top/SPECS"
	cat >"$top/SPECS/$1.spec" <<EOF
Name: $1
Version: 1.0
Release: 1
Summary: freshness benchmark package $1
License: MIT
BuildArch: noarch

%description
A package of regionmirror's freshness benchmark.

%install
mkdir -p %{buildroot}/usr/share/regionmirror-bench
echo "$1" > %{buildroot}/usr/share/regionmirror-bench/$1.txt

%files
/usr/share/regionmirror-bench/$1.txt
EOF
	rpmbuild --quiet --define "_topdir $top" --define "_build_id_links none" -bb "$top/SPECS/$1.spec" >/dev/null 2>&1
	echo "$top/RPMS/noarch/$1-1.0-1.noarch.rpm"
}
results=$dir/results.txt
[ -f "$results" ] && mv "$results" "$results.prev"
: >"$results"
publish() { # mode n
	local mode=$1 n=$2 pkg rpm t0 sha out=$dir/pub
	pkg=bf-$mode-$stamp-$n
	rpm=$(build_rpm "$pkg")
	rm -rf "$out"
	mkdir -p "$out"
	cp "$rpm" "$dir/origin/$repo_dir/Packages/"
	createrepo_c --update --quiet --no-database "$dir/origin/$repo_dir"
	t0=$(now)
	sha=$(repomd_sha)
	local deadline
	deadline=$(awk -v t="$t0" -v d="$timeout" 'BEGIN {printf "%d", t + d}')
	( # (a) every region fresh with the new repomd.xml
		until [ "$(fresh_regions "$sha")" = 3 ]; do
			[ "$(date +%s)" -lt "$deadline" ] || exit 0
			sleep 0.1
		done
		now >"$out/a"
	) &
	local pa=$!
	pids+=("$pa")
	( # (b) the metalink from every region's point of view lists it, then (c) dnf installs it
		for r in "${regions[@]}"; do
			until lists "$sha" "$r"; do
				[ "$(date +%s)" -lt "$deadline" ] || exit 0
				sleep 0.1
			done
		done
		now >"$out/b"
		until dnf_install "$pkg" "$out/root"; do
			[ "$(date +%s)" -lt "$deadline" ] || exit 0
			sleep 0.1
		done
		now >"$out/c"
	) &
	local pb=$!
	pids+=("$pb")
	wait $pa $pb || true
	stop $pa
	stop $pb
	local a b c
	a=$( [ -f "$out/a" ] && awk -v t="$t0" '{printf "%.2f", $1 - t}' "$out/a" || echo timeout)
	b=$( [ -f "$out/b" ] && awk -v t="$t0" '{printf "%.2f", $1 - t}' "$out/b" || echo timeout)
	c=$( [ -f "$out/c" ] && awk -v t="$t0" '{printf "%.2f", $1 - t}' "$out/c" || echo timeout)
	echo "$mode $n $a $b $c" >>"$results"
	printf '%-6s %3s %10s %10s %10s   load %s\n' "$mode" "$n" "$a" "$b" "$c" "$(cut -d' ' -f1-3 /proc/loadavg)"
	rm -rf "$out/root"
}
pushes_since() { # finished push runs started after time $1 (epoch seconds)
	sql "SELECT count(*) FROM runs WHERE kind = 'push' AND finished_at IS NOT NULL AND started_at > to_timestamp($1)"
}
start_watch() { # waits for its first full push (three regions) to finish
	local t
	t=$(now)
	REGIONMIRROR_CONFIG=$dir/watch.yaml "$bin" watch >>"$dir/watch.log" 2>&1 &
	pids+=($!)
	watch_pid=$!
	for _ in $(seq 1200); do
		[ "$(pushes_since "$t")" -ge 3 ] && curl -sf -o /dev/null "http://127.0.0.1:$watch_port/healthz" && return 0
		kill -0 "$watch_pid" 2>/dev/null || break
		sleep 0.5
	done
	tail -30 "$dir/watch.log" >&2
	die "regionmirror watch did not finish its first push"
}

machine="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), Linux $(uname -r)"
echo "machine: $machine"
echo "origin: $origin_files files; $pubs publications per mode; modes: $modes"
loads=()
printf '%-6s %3s %10s %10s %10s\n' mode pub '(a) s' '(b) s' '(c) s'
for mode in $modes; do
	loads+=("$mode before: $(cut -d' ' -f1-3 /proc/loadavg)")
	case $mode in
	watch)
		: >"$dir/watch.log"
		start_watch
		sleep 3 # the first push's own events settle
		for ((n = 1; n <= pubs; n++)); do publish watch "$n"; done
		stop "$watch_pid"
		;;
	cron)
		REGIONMIRROR_CONFIG=$dir/cron.yaml "$bin" cron >"$dir/cron.log" 2>&1 &
		pids+=($!)
		cron_pid=$!
		for ((n = 1; n <= pubs; n++)); do
			# Publication n at second 6n-3 of a minute (3, 9, ..., 57; repeating after 10).
			target=$((6 * ((n - 1) % 10) + 3))
			sec=$((10#$(date +%S)))
			sleep $(((target - sec + 60) % 60))
			publish cron "$n"
		done
		stop "$cron_pid"
		;;
	*) die "unknown mode $mode (watch or cron)" ;;
	esac
	loads+=("$mode after: $(cut -d' ' -f1-3 /proc/loadavg)")
done

# --- the no-op -----------------------------------------------------------------------------
stop "$serve_pid"
noop=$dir/noop.txt
: >"$noop"
if [ "$noop_rounds" -gt 0 ]; then
	if [ -x "$old_bin" ]; then
		# The old binary refuses schema 7: it gets a copy of the database as it is now, at
		# schema 6 (0007 only adds tables, which it does not read).
		sql "DROP DATABASE IF EXISTS regionmirror_old" postgres
		sql "CREATE DATABASE regionmirror_old TEMPLATE regionmirror" postgres
		sql "DELETE FROM schema_migrations WHERE version >= 7" regionmirror_old
	fi
	: >"$dir/watch.log"
	start_watch
	sleep 3
	timed() { # label command...: one line "label wall cpu"
		local label=$1
		shift
		/usr/bin/time -f '%e %U %S' -o "$dir/t" "$@" >"$dir/noop-out.json" 2>"$dir/noop-err.log" ||
			{ cat "$dir/noop-err.log" >&2; die "$label failed"; }
		awk -v l="$label" '{printf "%s %.3f %.3f\n", l, $1, $2 + $3}' "$dir/t" | tee -a "$noop"
	}
	"$bin" push --scheduled --json >"$dir/noop-warmup.json" 2>&1 || true
	grep -q '"noop": *true' "$dir/noop-warmup.json" ||
		echo "note: the first push --scheduled with the watcher live was not a no-op: $(grep -o '"note": *"[^"]*"' "$dir/noop-warmup.json" || true)"
	# rclone's no-op, the three regions one after the other (a script: /usr/bin/time runs it).
	: >"$dir/rclone.conf"
	{
		echo '#!/bin/bash'
		echo 'set -e'
		for i in 0 1 2; do
			printf 'env -u AWS_CA_BUNDLE RCLONE_CONFIG=%q RCLONE_CONFIG_R%d_TYPE=s3 RCLONE_CONFIG_R%d_PROVIDER=Other' "$dir/rclone.conf" $i $i
			printf ' RCLONE_CONFIG_R%d_ENDPOINT=http://127.0.0.1:%d RCLONE_CONFIG_R%d_REGION=us-east-1' $i "${s3_ports[$i]}" $i
			printf ' RCLONE_CONFIG_R%d_ACCESS_KEY_ID=%q RCLONE_CONFIG_R%d_SECRET_ACCESS_KEY=%q' $i "$AWS_ACCESS_KEY_ID" $i "$AWS_SECRET_ACCESS_KEY"
			printf ' rclone sync --dry-run -q --checksum --transfers 16 --checkers 16 --s3-no-check-bucket %q r%d:bench-fresh-%d\n' "$dir/origin" $i $i
		done
	} >"$dir/rclone-noop.sh"
	echo "no-op pushes, $noop_rounds rounds (label, wall s, CPU s):"
	for ((r = 1; r <= noop_rounds; r++)); do
		timed scheduled "$bin" push --scheduled --json
		grep -q '"noop": *true' "$dir/noop-out.json" || echo "note: round $r's push --scheduled was not a no-op"
		timed full "$bin" push --json
		if [ -x "$old_bin" ]; then
			timed old env REGIONMIRROR_CONFIG="$dir/old.yaml" \
				REGIONMIRROR_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/regionmirror_old?sslmode=disable" "$old_bin" push --json
		fi
		if command -v rclone >/dev/null && [ "$r" -le "$rclone_rounds" ]; then timed rclone-x3 bash "$dir/rclone-noop.sh"; fi
	done
	stop "$watch_pid"
fi

# --- summary -------------------------------------------------------------------------------
summarize() { # values on stdin (numbers; "timeout" counted apart): "median max (n, k timed out)"
	sort -g | awk '$1 == "timeout" {to++; next} {v[++n] = $1} END {
		if (n == 0) {printf "— — (0, %d timed out)", to; exit}
		m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		printf "%.2f %.2f (%d%s)", m, v[n], n, to ? ", " to " timed out" : ""}'
}
summary=$dir/summary.txt
{
	echo "machine: $machine"
	echo "origin: $origin_files files (100,000 small files in 1,000 directories and the bench-1/x86_64 yum repository), 3 versitygw regions"
	echo "command: make bench-freshness  (testdata/bench/freshness.sh $pubs; BENCH_MODES='$modes')"
	for l in "${loads[@]}"; do echo "load average $l"; done
	echo
	echo "seconds from createrepo_c's exit: median max (publications)"
	printf '%-6s %-26s %-26s %-26s\n' mode '(a) regions fresh' '(b) metalinks list it' '(c) dnf installs it'
	for mode in $modes; do
		printf '%-6s' "$mode"
		for col in 3 4 5; do printf ' %-26s' "$(awk -v m="$mode" -v c="$col" '$1 == m {print $c}' "$results" | summarize)"; done
		echo
	done
	echo
	echo "no-op push, $origin_files files, 3 regions, watcher live: median of $noop_rounds rounds (wall s, CPU s)"
	for label in scheduled full old rclone-x3; do
		grep -q "^$label " "$noop" || continue
		printf '%-10s wall %-22s CPU %s\n' "$label" "$(awk -v l="$label" '$1 == l {print $2}' "$noop" | summarize)" \
			"$(awk -v l="$label" '$1 == l {print $3}' "$noop" | summarize)"
	done
	echo "(scheduled: push --scheduled; full: push; old: push of a9b3f9c; rclone-x3: rclone sync --checksum --dry-run, once per region)"
} >"$summary"
echo
cat "$summary"
if grep -q timeout "$results"; then
	echo "some publications timed out (after ${timeout}s): see $dir/*.log" >&2
	exit 1
fi
