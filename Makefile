# Lectern: the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: run test build bench vet ui fuzz

## run: start Lectern with embedded defaults (data in ./data, HTTP on :8080)
run: ui
	./scripts/build-deps.sh
	$(GO) run ./cmd/lectern

## test: install what the tests need (idempotent), run every test with the race detector, then each fuzz target briefly
test:
	./scripts/test-deps.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 60m ./...
	./scripts/fuzz-brief.sh

## build: the server and the load tool into ./bin
build: ui
	./scripts/build-deps.sh
	$(GO) build -o bin/lectern ./cmd/lectern
	$(GO) build -o bin/lectern-bench ./cmd/lectern-bench

## bench: Go benchmarks of the packet path
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./sfu/...

## fuzz: every fuzz target for FUZZTIME (default 8s) each
fuzz:
	./scripts/fuzz-brief.sh

vet:
	$(GO) vet ./...

# ui builds the web pages' bundle when they have an npm build (no-op otherwise).
ui:
	@if [ -f web/ui/package.json ]; then ./scripts/build-ui.sh; fi
