#!/bin/bash
# Fill throughput (issue 14), rounds A B C: 1,000 files of mixed sizes (80% 4-64 KiB, 19%
# 256 KiB-2 MiB, 1% 16-32 MiB) pushed into one versitygw bucket, then copied into a fresh
# bucket of the same versitygw
#   A  by `regionmirror fill --once --workers 4` (BENCH_FILL_WORKERS): server-side copies (CopyObject), verified
#   B  by `aws s3 cp --recursive s3://src s3://dst --endpoint-url ...` (also server-side)
#   C  by `regionmirror fill --once --workers 4` from the origin (the region names the same
#      versitygw by another host name, so it is not "the same S3 service": PUTs with
#      x-amz-checksum-sha256 from origin.path)
# and prints files/s and MB/s of each run (odd rounds A B C, even rounds C B A), then the
# medians. Run from the repository root
# (or `make bench-fill`):
#
#	testdata/bench/fill-ab.sh [rounds]
#
# It starts its own PostgreSQL and versitygw under .tmp/bench-fill (ports BENCH_PORT and
# BENCH_PORT+1, default 18280) and stops them at the end; about 500 MB of origin, and twice
# that in buckets while a round runs. Both servers and the copier share the machine's cores.
set -euo pipefail
rounds=${1:-4}
workers=${BENCH_FILL_WORKERS:-4} # aws s3 cp makes 10 requests at once by default
port=${BENCH_PORT:-18280}
s3port=$((port + 1))
[ -f testdata/bench/fill-ab.sh ] || { echo "run from the repository root" >&2; exit 2; }
command -v aws >/dev/null || { echo "aws is missing: apt-get install -y awscli" >&2; exit 2; }
# shellcheck source=testdata/bench/lib.sh
. testdata/bench/lib.sh
bench_tools

dir=$PWD/.tmp/bench-fill
rm -rf "$dir"
mkdir -p "$dir/pg" "$dir/s3data" "$dir/origin"
make -s build
bin=$PWD/bin/regionmirror

bench_servers "$dir" "$port" "$s3port"

export REGIONMIRROR_ORIGIN_PATH=$dir/origin REGIONMIRROR_LOG_LEVEL=warn
s3() { aws --endpoint-url "$endpoint" s3 "$@"; }
sql() { psql -q -At -h 127.0.0.1 -p "$port" -U postgres regionmirror -c "$1"; }

# The origin: sizes from a fixed seed, contents random.
RANDOM=14
total=0
for i in $(seq 0 999); do
	if [ $((i % 100)) = 99 ]; then size=$(((16 << 20) + (RANDOM * 32768 + RANDOM) % (16 << 20)))
	elif [ $((i % 100)) -ge 80 ]; then size=$(((256 << 10) + (RANDOM * 32768 + RANDOM) % ((2 << 20) - (256 << 10))))
	else size=$(((4 << 10) + (RANDOM * 32768 + RANDOM) % (60 << 10)))
	fi
	d=$dir/origin/files/$((i % 10))
	mkdir -p "$d"
	head -c $size /dev/urandom >"$d/file-$i.bin"
	total=$((total + size))
done
echo "origin: 1000 files, $((total >> 20)) MiB"

"$bin" migrate >/dev/null
s3 mb s3://bench-src >/dev/null
"$bin" region add src --bucket bench-src --endpoint "$endpoint" --public-url "$endpoint/bench-src" --country DE >/dev/null
"$bin" push --region src >/dev/null

# A fresh on-demand region with every file queued (as 1,000 misses would).
odregion() { # name bucket endpoint
	s3 mb "s3://$2" >/dev/null
	"$bin" region add "$1" --bucket "$2" --endpoint "$3" --public-url "$endpoint/$2" --country DE --fill on-demand >/dev/null
	sql "INSERT INTO fill_jobs (region_id, file_id) SELECT r.id, f.id FROM regions r, files f
		WHERE r.name = '$1' AND f.deleted_at IS NULL"
}
# A region done with is disabled (so no later round copies from it) and its bucket removed.
drop() { # region bucket
	if [ -n "$1" ]; then "$bin" region disable "$1" >/dev/null; fi
	s3 rb --force "s3://$2" >/dev/null
}
now() { date +%s.%N; }
results=$dir/results.txt
: >"$results"
printf '%-5s %-22s %8s %9s %9s\n' round which seconds 'files/s' 'MB/s'
report() { # round which start end files
	awk -v r="$1" -v w="$2" -v s="$3" -v e="$4" -v n="$5" -v b="$total" \
		'BEGIN {t = e - s; printf "%-5s %-22s %8.2f %9.1f %9.1f\n", r, w, t, n / t, b / 1e6 / t}' | tee -a "$results"
}
count() { s3 ls --recursive "s3://$1" | wc -l; }
runA() {
	odregion "fill-a-$1" "bench-a-$1" "$endpoint"
	t0=$(now)
	"$bin" fill --once --workers "$workers" --region "fill-a-$1" --json >"$dir/fill-a-$1.json"
	t1=$(now)
	report "$1" "A fill server-side" "$t0" "$t1" "$(count "bench-a-$1")"
	drop "fill-a-$1" "bench-a-$1"
}
runB() {
	s3 mb "s3://bench-b-$1" >/dev/null
	t0=$(now)
	s3 cp --recursive --only-show-errors s3://bench-src "s3://bench-b-$1"
	t1=$(now)
	report "$1" "B aws s3 cp" "$t0" "$t1" "$(count "bench-b-$1")"
	drop "" "bench-b-$1"
}
runC() {
	odregion "fill-c-$1" "bench-c-$1" "http://localhost:$s3port"
	t0=$(now)
	"$bin" fill --once --workers "$workers" --region "fill-c-$1" --json >"$dir/fill-c-$1.json"
	t1=$(now)
	report "$1" "C fill from origin" "$t0" "$t1" "$(count "bench-c-$1")"
	drop "fill-c-$1" "bench-c-$1"
}
# Odd rounds run A B C, even rounds C B A: no series always goes first.
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then runA "$r"; runB "$r"; runC "$r"; else runC "$r"; runB "$r"; runA "$r"; fi
done
echo "medians:"
for w in "A fill server-side" "B aws s3 cp" "C fill from origin"; do
	grep -F " $w " "$results" | awk '{print $(NF-1), $NF}' | sort -n | awk -v w="$w" \
		'{f[NR] = $1; m[NR] = $2} END {i = int((NR + 1) / 2); printf "  %-22s %9.1f files/s %9.1f MB/s\n", w, f[i], m[i]}'
done
