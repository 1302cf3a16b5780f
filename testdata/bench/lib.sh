#!/bin/bash
# Sourced by the benchmark scripts that need a private PostgreSQL and one versitygw for a
# run (apt-push-ab.sh, fill-ab.sh), both stopped when the script exits.

# bench_tools finds PostgreSQL's binaries (PGBIN) and versitygw (VERSITYGW), or exits 2
# naming the install.
bench_tools() {
	PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
	VERSITYGW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	[ -x "$VERSITYGW" ] || { echo "versitygw is missing: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 2; }
}

# bench_servers DIR PORT S3PORT [versitygw flags...]: PostgreSQL on 127.0.0.1:PORT with its
# data in DIR/pg (user postgres, trust, database regionmirror), versitygw on 127.0.0.1:S3PORT
# over DIR/s3data; exports the AWS_* variables of versitygw's account and
# REGIONMIRROR_DATABASE_URL, and sets endpoint to versitygw's URL. Sets the EXIT trap.
bench_servers() {
	local dir=$1 port=$2 s3port=$3
	shift 3
	mkdir -p "$dir/pg" "$dir/s3data"
	# initdb refuses root: run PostgreSQL as postgres then.
	bench_as_pg=()
	[ "$(id -u)" = 0 ] && { chown postgres: "$dir/pg"; bench_as_pg=(runuser -u postgres --); }
	bench_pgdata=$dir/pg/data
	"${bench_as_pg[@]}" "$PGBIN/initdb" -D "$bench_pgdata" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
	"${bench_as_pg[@]}" "$PGBIN/pg_ctl" -D "$bench_pgdata" -l "$dir/pg/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir/pg -c fsync=off -c synchronous_commit=off" start >/dev/null
	"$VERSITYGW" --port "127.0.0.1:$s3port" --access benchaccess --secret benchsecret123 --region us-east-1 \
		--health /health --quiet --keep-alive "$@" posix "$dir/s3data" >"$dir/versitygw.log" 2>&1 &
	bench_s3pid=$!
	trap bench_stop EXIT
	"$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres regionmirror
	for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$s3port/health" && break; sleep 0.1; done
	export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret123 AWS_DEFAULT_REGION=us-east-1
	export REGIONMIRROR_DATABASE_URL="postgres://postgres@127.0.0.1:$port/regionmirror"
	# shellcheck disable=SC2034 # the scripts that source this use it
	endpoint=http://127.0.0.1:$s3port
}

# bench_stop stops what bench_servers started.
bench_stop() {
	kill "$bench_s3pid" 2>/dev/null || true
	"${bench_as_pg[@]}" "$PGBIN/pg_ctl" -D "$bench_pgdata" -m fast -w stop >/dev/null 2>&1 || true
}
