#!/bin/bash
# APT push (issue 17): an APT archive of about 10,000 files (BENCH_APT_FILES pool files of
# 4-64 KiB, one suite, by-hash, signed) published to three versitygw buckets
#   A  by `regionmirror push` (one read of the origin for all three regions; pool, by-hash,
#      plain indices, Release files; read-back through the public URL)
#   B  by three `aws s3 sync` runs per publish, in deb-s3's and aptly's order: the pool,
#      then dists/ without the Release files, then the Release files
# then a second publish (BENCH_APT_CHANGED new package files, the old ones kept, new indices)
# pushed again by both. Each step prints seconds and the S3 requests it made (versitygw's
# access log). Rounds alternate A B and B A. Run from the repository root (or
# `make bench-apt-push`):
#
#	testdata/bench/apt-push-ab.sh [rounds]
#
# It starts its own PostgreSQL and versitygw under .tmp/bench-apt (ports BENCH_PORT and
# BENCH_PORT+1, default 18290) and stops them at the end.
set -euo pipefail
rounds=${1:-2}
files=${BENCH_APT_FILES:-9990}
changed=${BENCH_APT_CHANGED:-100}
port=${BENCH_PORT:-18290}
s3port=$((port + 1))
[ -f testdata/bench/apt-push-ab.sh ] || { echo "run from the repository root" >&2; exit 2; }
for tool in aws apt-ftparchive gpg sha256sum; do
	command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y awscli apt-utils gpg coreutils)" >&2; exit 2; }
done
# shellcheck source=testdata/bench/lib.sh
. testdata/bench/lib.sh
bench_tools

dir=$PWD/.tmp/bench-apt
rm -rf "$dir"
mkdir -p "$dir/pg" "$dir/s3data" "$dir/gnupg"
chmod 700 "$dir/gnupg"
make -s build
bin=$PWD/bin/regionmirror

# versitygw's access log counts the S3 requests of each step.
bench_servers "$dir" "$port" "$s3port" --access-log "$dir/access.log"

export REGIONMIRROR_ORIGIN_PATH=$dir/origin REGIONMIRROR_LOG_LEVEL=warn GNUPGHOME=$dir/gnupg
s3() { aws --endpoint-url "$endpoint" s3 "$@"; }
# A region's bucket is publicly readable: the push reads InRelease back through it.
public() { # bucket
	sed "s/mirror-eu-central-1/$1/" configs/s3/public-read-policy.json >"$dir/policy.json"
	aws --endpoint-url "$endpoint" s3api put-bucket-policy --bucket "$1" --policy "file://$dir/policy.json"
}

# The archive: synthetic package files (random bytes; only their names, sizes and SHA-256
# matter to a push) and real indices, Release by apt-ftparchive, signed by gpg.
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-generate-key 'bench <bench@example.invalid>' ed25519 sign never
archive=$dir/origin/debian
suite=$archive/dists/stable
RANDOM=17
addpkgs() { # from to: package numbers
	local i d
	for ((i = $1; i < $2; i++)); do
		d=$archive/pool/main/p/pkg$((i % 100))
		mkdir -p "$d"
		head -c $(((4 << 10) + (RANDOM * 32768 + RANDOM) % (60 << 10))) /dev/urandom >"$d/pkg${i}_1.0_amd64.deb"
	done
}
publish() { # the packages: every pool file; a new revision of the suite
	local bin=$suite/main/binary-amd64 sum
	mkdir -p "$bin"
	(cd "$archive" && find pool -name '*.deb' -print0 | sort -z | xargs -0 sha256sum) |
		while read -r sum f; do
			printf 'Package: %s\nVersion: 1.0\nArchitecture: amd64\nFilename: %s\nSize: %s\nSHA256: %s\n\n' \
				"$(basename "$f" _1.0_amd64.deb)" "$f" "$(stat -c %s "$archive/$f")" "$sum"
		done >"$bin/Packages"
	gzip -9nk -f "$bin/Packages"
	for f in Packages Packages.gz; do
		sum=$(sha256sum "$bin/$f" | cut -d' ' -f1)
		mkdir -p "$bin/by-hash/SHA256"
		cp "$bin/$f" "$bin/by-hash/SHA256/$sum"
	done
	rm -f "$suite/Release" "$suite/InRelease" "$suite/Release.gpg"
	(cd "$suite" && apt-ftparchive -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
		-o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
		-o APT::FTPArchive::Release::Acquire-By-Hash=yes -o APT::FTPArchive::MD5=false -o APT::FTPArchive::SHA1=false \
		-o APT::FTPArchive::SHA512=false -o 'APT::FTPArchive::Release::Patterns::=Packages*' release . |
		grep -v '/by-hash/' >"$dir/Release")
	gpg --batch --yes --armor --detach-sign -o "$suite/Release.gpg" "$dir/Release"
	gpg --batch --yes --clearsign -o "$suite/InRelease" "$dir/Release"
	mv "$dir/Release" "$suite/Release"
}
addpkgs 0 "$files"
publish
echo "archive: $(find "$archive" -type f | wc -l) files, $(du -sm "$archive" | cut -f1) MiB"

"$bin" migrate >/dev/null
now() { date +%s.%N; }
requests() { wc -l <"$dir/access.log"; }
results=$dir/results.txt
: >"$results"
printf '%-5s %-28s %-8s %8s %9s\n' round which publish seconds requests
report() { # round which publish t0 t1 r0 r1
	awk -v r="$1" -v w="$2" -v p="$3" -v s="$4" -v e="$5" -v a="$6" -v b="$7" \
		'BEGIN {printf "%-5s %-28s %-8s %8.2f %9d\n", r, w, p, e - s, b - a}' | tee -a "$results"
}
# Every run starts from the first revision: the packages a second publish added go.
reset() {
	find "$archive/pool" -name 'pkg*_1.0_amd64.deb' | awk -v n="$files" '{f = $0; sub(/.*\/pkg/, "", f); sub(/_.*/, "", f); if (f + 0 >= n) print $0}' | xargs -r rm -f
	publish
}
# A: a fresh repository, three fresh regions, two publishes.
runA() {
	local r=$1 i
	reset
	for i in 1 2 3; do
		s3 mb "s3://a$r-$i" >/dev/null
		public "a$r-$i"
		"$bin" region add "a$r-$i" --bucket "a$r-$i" --endpoint "$endpoint" --public-url "$endpoint/a$r-$i" --country DE >/dev/null
	done
	"$bin" repo add "deb$r" --kind apt --suite stable debian >/dev/null
	for p in first second; do
		[ "$p" = second ] && { addpkgs "$files" $((files + changed)); publish; }
		local t0 r0 t1 r1
		r0=$(requests) t0=$(now)
		"$bin" push --json >"$dir/push-a$r-$p.json"
		t1=$(now) r1=$(requests)
		report "$r" "A regionmirror push" "$p" "$t0" "$t1" "$r0" "$r1"
	done
	# Removed, not disabled: a disabled region is still pushed, and the next round would
	# push six.
	for i in 1 2 3; do "$bin" region remove "a$r-$i" >/dev/null; done
	"$bin" repo remove "deb$r" >/dev/null
}
# B: three aws s3 sync runs per region and publish, pool, indices, Release files last.
runB() {
	local r=$1 i
	reset
	for i in 1 2 3; do s3 mb "s3://b$r-$i" >/dev/null; done
	for p in first second; do
		[ "$p" = second ] && { addpkgs "$files" $((files + changed)); publish; }
		local t0 r0 t1 r1
		r0=$(requests) t0=$(now)
		for i in 1 2 3; do
			s3 sync --only-show-errors "$archive/pool" "s3://b$r-$i/debian/pool"
			s3 sync --only-show-errors --exclude '*Release*' --exclude 'InRelease' "$archive/dists" "s3://b$r-$i/debian/dists"
			for f in Release.gpg Release InRelease; do
				s3 cp --only-show-errors "$suite/$f" "s3://b$r-$i/debian/dists/stable/$f"
			done
		done
		t1=$(now) r1=$(requests)
		report "$r" "B 3x aws s3 sync (ordered)" "$p" "$t0" "$t1" "$r0" "$r1"
	done
	for i in 1 2 3; do s3 rb --force "s3://b$r-$i" >/dev/null; done
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then runA "$r"; runB "$r"; else runB "$r"; runA "$r"; fi
done
echo "medians (of $rounds rounds; with two, the lower):"
for w in "A regionmirror push" "B 3x aws s3 sync (ordered)"; do
	for p in first second; do
		grep -F " $w " "$results" | awk -v p="$p" '$(NF-2) == p {print $(NF-1), $NF}' | sort -n | awk -v w="$w" -v p="$p" \
			'{s[NR] = $1; q[NR] = $2} END {i = int((NR + 1) / 2); printf "  %-28s %-7s %8.2f s %9d requests\n", w, p, s[i], q[i]}'
	done
done
