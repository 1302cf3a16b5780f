#!/usr/bin/env bash
# Load test (RELIABILITY.md): the real server -- `regionmirror demo`: a private PostgreSQL,
# three regions, the sample repository pushed and scanned, `serve` answering from its
# snapshot -- under wrk on loopback with thousands of connections for a fixed time, one run
# per endpoint. It fails on any error (socket errors, timeouts, answers other than 2xx/3xx)
# and prints the figures and the server's memory (RSS now, and its peak). It asserts no
# times: wrk and the server share the machine, so the rates are for the record only.
#
#   CONNS=2000 DURATION=30s THREADS=2 ./testdata/load/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-2000}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
dir=.tmp/load
mkdir -p "$dir"
command -v wrk >/dev/null || { echo "load: wrk is missing: apt-get install -y wrk" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
go build -o "$dir/regionmirror" ./cmd/regionmirror
# A loopback port nobody listens on.
freeport() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range, where outgoing connections take ports
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
port=$(freeport)
rport=$(freeport)
"$dir/regionmirror" demo --dir "$dir/demo" --reset --listen "127.0.0.1:$port" --regions-listen "127.0.0.1:$rport" >"$dir/demo.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 1 600); do
	curl -fsS "$base/readyz" >/dev/null 2>&1 && break
	kill -0 $pid 2>/dev/null || { echo "load: the demo exited:" >&2; tail -20 "$dir/demo.log" >&2; exit 1; }
	sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null
mem() { awk '/^VmRSS|^VmHWM/ {printf "%s %s %s  ", $1, $2, $3}' /proc/$pid/status; echo; }
echo "load: server pid $pid on $base; $CONNS connections, $THREADS threads, $DURATION per endpoint"
echo "memory before: $(mem)"
status=0
for path in \
	"/metalink?repo=demo-1&arch=x86_64&countme=1" \
	"/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm" \
	"/mirrorlist?repo=demo-1&arch=x86_64&location=us-east-1" \
	"/api/v1/status"; do
	echo "== GET $path"
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s --latency "$base$path" 2>&1)
	echo "$out" | grep -E 'Requests/sec|Latency  |50%|99%|requests in|Socket errors|Non-2xx' | sed 's/^/  /'
	if echo "$out" | grep -qE 'Socket errors|Non-2xx'; then
		echo "  ERRORS above" >&2
		status=1
	fi
	echo "  memory after: $(mem)"
done
kill -0 $pid 2>/dev/null || { echo "load: the server died" >&2; exit 1; }
curl -fsS "$base/readyz"
exit $status
