#!/bin/bash
# Redirects A B A B A B for one hot file: the real /pub handler (A) against a bare echo 302
# (B), both from testdata/bench/serve.go -files 1000000 in one process, server on CPU 0 and
# wrk on CPU 1, with the server's CPU time per request (as metalink-ab.sh). Run from the
# repository root:
#
#	testdata/bench/download-ab.sh [seconds per run]
set -euo pipefail
secs=${1:-5}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
mkdir -p .tmp
go build -o .tmp/benchserve testdata/bench/serve.go
taskset -c 0 .tmp/benchserve -files 1000000 -real 127.0.0.1:8091 -bare 127.0.0.1:8092 >.tmp/benchserve-dl.log 2>&1 &
pid=$!
trap 'kill $pid' EXIT
HOT=/pub/fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-7-1.2.3-1.fc40.noarch.rpm
for _ in $(seq 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8091$HOT)" = 302 ] && break; sleep 0.5
done
sleep 1
printf '%-4s %-5s %10s %16s\n' run which 'req/s' 'CPU µs/request'
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
for i in 1 2 3; do
  for p in 8091 8092; do
    name=real; [ $p = 8092 ] && name=bare
    c0=$(cpu)
    out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency "http://127.0.0.1:$p$HOT")
    c1=$(cpu)
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    printf '%-4s %-5s %10s %16s\n' $i $name "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
      "$(awk -v c=$((c1 - c0)) -v t="$tck" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1e6 / t / n}')"
  done
done
