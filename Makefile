GO ?= go

.PHONY: services stop-services test linearize demo bench build fmt-check

# Starts local Redis and PostgreSQL for the tests and the demo when none runs.
services:
	scripts/services.sh

# Stops the Redis and PostgreSQL that `make services` started (never a server
# it found running).
stop-services:
	scripts/services.sh stop

test: services
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# Long linearizability rounds (promise 6): many seeds and shapes, flushers
# and clients killed on the way; WB_LINEARIZE_DURATION sets the total.
WB_LINEARIZE_DURATION ?= 2m
linearize: services
	WB_LINEARIZE_DURATION=$(WB_LINEARIZE_DURATION) $(GO) test -run Linearizable -count=1 -timeout 30m -v ./internal/linearize/

demo: services
	scripts/demo.sh

# Flush throughput against its ceiling, into document and mapped tables (one
# run each: every run is 200k ops), and the writer at concurrency 32, each on
# one Redis server and on a Redis Cluster of three primaries with a replica
# each that the benchmarks start (testenv.Shapes), then reads against plain
# go-redis.
bench: services
	$(GO) test -run '^$$' -bench Flush -benchtime=1x -timeout 30m ./internal/flusher/
	$(GO) test -run '^$$' -bench Load -benchtime=1x -timeout 10m ./cmd/writer/
	$(GO) test -run '^$$' -bench 'VsGET|VsMGET' -benchtime=2s -timeout 10m ./internal/readpath/

build:
	$(GO) build -o bin/ ./cmd/...

# Fails when a Go file is not gofmt-formatted (.services/ holds server data).
fmt-check:
	@out="$$(find . \( -path ./.git -o -path ./.services -o -path ./bin \) -prune -o -name '*.go' -print | xargs -r gofmt -l)"; \
	if [ -n "$$out" ]; then \
		echo "gofmt needed on:"; echo "$$out"; exit 1; \
	fi
