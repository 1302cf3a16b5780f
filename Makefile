# The README's two commands: `make demo` (arrives with the operations issue) and `make test`.
GO ?= go
BIN := bin/regionmirror

.PHONY: all build test deps fmt-check vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/regionmirror

# Installs what the tests need where it can (apt-get as root, go install), else names it.
deps:
	./.ci/deps

fmt-check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

vet:
	$(GO) vet ./...

test: deps fmt-check vet
	$(GO) test -race -count=1 ./...

clean:
	rm -rf bin .tmp
