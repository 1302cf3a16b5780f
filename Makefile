# The README's two commands: `make demo` (the main job on embedded defaults) and `make test`.
GO ?= go
BIN := bin/regionmirror

.PHONY: all build demo test deps fmt-check vet bench-build clean bench-push bench-serve bench-apt-push fuzz load

all: build

build:
	$(GO) build -o $(BIN) ./cmd/regionmirror

# The main job on embedded defaults: a private PostgreSQL, three local regions, the sample
# repository pushed, scanned and served on 127.0.0.1:8080. Ctrl-C stops it.
demo: build
	./.ci/deps demo
	./$(BIN) demo --dir .tmp/demo

# Installs what the tests need where it can (apt-get as root, go install), else names it.
deps:
	./.ci/deps

fmt-check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

vet:
	$(GO) vet ./...

# The benchmark programs and the GeoIP generator are `//go:build ignore` programs, outside
# ./...: vet compiles each one by itself, so a change to an API they use fails here.
IGNORED_PROGRAMS := $(sort $(wildcard testdata/bench/*.go)) testdata/geoip/gen/main.go
bench-build:
	@set -e; for f in $(IGNORED_PROGRAMS); do echo "vet $$f"; $(GO) vet "$$f"; done
	$(GO) build -o /dev/null ./pusher/internal/benchpush

test: deps fmt-check vet bench-build
	$(GO) test -race -count=1 ./...

# The push benchmark of BENCHMARKS.md (not a test: several minutes, ~5 GiB of temporary disk).
# Extra flags: make bench-push BENCH_FLAGS='-rounds 2 -profile .tmp/prof'
BENCH_FLAGS ?=
bench-push:
	$(GO) run ./pusher/internal/benchpush $(BENCH_FLAGS)

# The real serve binary (request log on, then off) against bare echo, pinned (BENCHMARKS.md,
# issue 16): a demo database in .tmp/bench-serve with 20,000 files and a synthetic one of
# 1,000,000, about 10 minutes (the first run builds both: a few minutes more).
# Shorter: make bench-serve BENCH_SERVE_ARGS='2 64 1' (seconds per run, connections, rounds).
# Before and after in one run: make bench-serve BENCH_SERVE_BEFORE=path/to/old/regionmirror
BENCH_SERVE_ARGS ?= 10 64 3
bench-serve:
	BENCH_SERVE_BEFORE=$(BENCH_SERVE_BEFORE) ./testdata/bench/serve-ab.sh $(BENCH_SERVE_ARGS)

# An APT archive of about 10,000 files pushed to three versitygw buckets by regionmirror and
# by three ordered aws s3 sync runs, two publishes each: seconds and S3 requests (issue 17).
BENCH_APT_ARGS ?= 2
bench-apt-push:
	./testdata/bench/apt-push-ab.sh $(BENCH_APT_ARGS)

clean:
	rm -rf bin .tmp

# Every fuzz target for a short, fixed time (RELIABILITY.md). A crasher fails the run and is
# written to the package's testdata/fuzz/, where it stays as regression corpus. Minimizing a
# new interesting input may take a minute by default, and its executions are not counted:
# FuzzParse spent 27 of its 30 s there (8 600 inputs tried instead of 300 000).
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 3s
FUZZ_TARGETS := ./server:FuzzParseQuery ./server:FuzzClientAddr ./server:FuzzDownloadPath ./server:FuzzHandler \
	./internal/config:FuzzLoad ./internal/config:FuzzRedactURL ./internal/repomd:FuzzParse ./internal/repomd:FuzzParsePrimary ./internal/repomd:FuzzParseRelease \
	./internal/model:FuzzPublicReason ./internal/accesslog:FuzzFormat ./server:FuzzParseAptListPath ./internal/plot:FuzzFigure
# testdata/fuzz.sh runs them; it does not count go1.26's "context deadline exceeded" at the
# end of -fuzztime when nothing else failed and no input was written (golang/go#75804).
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) ./testdata/fuzz.sh $(FUZZ_TARGETS)

# The load test: the real server under wrk with thousands of connections (RELIABILITY.md).
load:
	./testdata/load/run.sh

# Fill throughput of BENCHMARKS.md (issue 14): 1,000 mixed files copied bucket to bucket by
# `regionmirror fill` (server-side), by `aws s3 cp`, and by fill from the origin; a few minutes.
# More rounds: make bench-fill BENCH_FILL_ARGS=3
.PHONY: bench-fill
bench-fill:
	./testdata/bench/fill-ab.sh $(BENCH_FILL_ARGS)

# The freshness benchmark of BENCHMARKS.md (issue 15): a 100,000-file origin with a yum
# repository, three versitygw regions, `watch` then `cron` (*/1) with `serve`: ten
# publications each, timed from createrepo_c's exit to every region fresh, every metalink
# listing the new repomd.xml and dnf installing the new package; then the no-op push with
# the watcher live against the full walk, the binary before issue 15 and rclone. The setup
# (several minutes the first time) stays in .tmp/bench-freshness for the next run.
# Shorter: make bench-freshness BENCH_FRESHNESS_ARGS=3 (publications per mode).
.PHONY: bench-freshness
bench-freshness:
	./testdata/bench/freshness.sh $(BENCH_FRESHNESS_ARGS)
