# prapush — build, test, demo. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/prapush
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure ("context deadline exceeded", no
# failing input; golang/go#75804, fixed in Go 1.27), which failed a CI run.
FUZZTIME ?= 50000x

.PHONY: help build test unit lint fuzz bench demo clean

help:
	@echo "make build   build $(BIN)"
	@echo "make test    every test: lint, unit, in-process SSH, real sshd, lab e2e, fuzz (builds the lab images first)"
	@echo "make demo    build the lab, start it, run verify and a restore of the latest generation, print the report path"
	@echo "make bench   benchmarks (verify against 100 local sshd nodes, restore overhead and memory on a lab of its own)"
	@echo "make lab-up | lab-down | lab-reset | lab-images"

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/prapush

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck ./...; \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then "$$($(GO) env GOPATH)/bin/staticcheck" ./...; \
	else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

unit:
	$(GO) test -count=1 ./...

# Run every fuzz target briefly (one package and target at a time: go test
# accepts one -fuzz target per run).
fuzz:
	@set -e; for f in $$(grep -rlE '^func Fuzz' --include='*_test.go' .); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' $$f | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) >/tmp/prapush-fuzz.log 2>&1 || { cat /tmp/prapush-fuzz.log; exit 1; }; \
	  done; \
	done

test: lint
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory lab-images; \
	else echo "no Docker engine: the lab e2e tests will skip (or fail with PRAPUSH_TEST_DISALLOW_SKIP=1)"; fi
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz

# The main job on the embedded lab: build, start 3 container nodes, verify
# them, restore the latest generation on all of them (data nodes, then the
# core), run the post-operations, print the report path. `make lab-reset`
# puts the lab back to its freshly installed state.
demo: build lab-up
	@set -u; inv=lab/.state/inventory.toml; dir=prapush-reports/demo-$$(date -u +%Y%m%dT%H%M%SZ); \
	echo "== prapush verify"; ./$(BIN) -i $$inv verify --report-dir $$dir/verify || exit $$?; \
	echo; echo "== prapush restore --generation latest --yes"; ./$(BIN) -i $$inv restore --generation latest --yes --report-dir $$dir/restore; rc=$$?; \
	echo; echo "demo report: $$dir/restore/report.html (verdict: $$(sed -n 's/^  "verdict": "\(.*\)",/\1/p' $$dir/restore/report.json))"; \
	exit $$rc

clean:
	rm -rf bin prapush-reports

include lab/lab.mk

# Benchmarks: measured, printed, never asserted by timed tests.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash bench/verify100.sh
	bash bench/restore_overhead.sh
	bash bench/restore_output.sh
