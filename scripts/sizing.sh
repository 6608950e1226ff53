#!/usr/bin/env bash
# What each partition costs, measured: for each partition count given (16,
# 128 and 512 by default), on a Redis server of the script's own and the
# local PostgreSQL (scripts/services.sh starts it):
#   - Redis memory of an empty partition: used_memory after a flusher drain
#     of an empty namespace (which stores the partition count and gives each
#     partition its stream and the group), less before, per partition;
#   - the flusher's Redis connections: idle (`flusher run` with nothing to
#     read, after 3 s), and the most seen during a drain (connected_clients
#     sampled every 20 ms);
#   - the commands per second an idle `flusher run` sends (over 3 s);
#   - the flusher's peak RSS draining a backlog of `writer load --ops $OPS
#     --keys $KEYS --concurrency 32 --value-bytes 256` (/usr/bin/time -f %M;
#     OPS and KEYS are 100000 and 10000 unless set).
# Prints one tab-separated line per count.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OPS="${OPS:-100000}" KEYS="${KEYS:-10000}"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(16 128 512)

export WB_POSTGRES_URL="${WB_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
tmp="$(mktemp -d)"
# A port nothing answers on.
port=$((20000 + RANDOM % 20000))
while redis-cli -p "$port" ping >/dev/null 2>&1; do port=$((20000 + RANDOM % 20000)); done
# ours: the server on the port is the one started here, in $tmp.
ours() { [ "$(redis-cli -p "$port" config get dir 2>/dev/null | sed -n 2p)" = "$(cd "$tmp" && pwd -P)" ]; }
cleanup() {
	if ours; then redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; fi
	psql -q "$WB_POSTGRES_URL" -c 'DROP SCHEMA IF EXISTS sizing CASCADE' >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/" ./cmd/writer ./cmd/flusher
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly yes \
	--auto-aof-rewrite-min-size 1gb --maxmemory-policy noeviction --daemonize yes --logfile "$tmp/redis.log"
for _ in $(seq 100); do ours && break; sleep 0.1; done
ours || { echo "sizing: redis-server did not start on port $port:" >&2; cat "$tmp/redis.log" >&2; exit 1; }

export WB_REDIS_URL="redis://127.0.0.1:$port/0"
export WB_ENTITIES=user=sizing.users WB_LOG_LEVEL=error WB_METRICS_ADDR=
psql -q "$WB_POSTGRES_URL" -c 'CREATE SCHEMA IF NOT EXISTS sizing' >/dev/null
WB_NAMESPACE=sizing "$tmp/flusher" migrate

info() { redis-cli -p "$port" info "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

# Loads the scripts into Redis once, so no count pays for them.
WB_NAMESPACE=sizingwarm WB_PARTITIONS=1 "$tmp/flusher" drain >/dev/null

printf 'partitions\tbytes_per_empty_partition\tidle_connections\tidle_commands_per_s\tpeak_connections_draining\tpeak_rss_kib_draining\n'
for n in "${counts[@]}"; do
	export WB_NAMESPACE="sizing$n" WB_PARTITIONS="$n" WB_CONSUMER="sizing$n"
	before="$(info memory used_memory)"
	"$tmp/flusher" drain >/dev/null
	after="$(info memory used_memory)"
	per=$(((after - before) / n))

	# The sampler's own connection is the baseline.
	base="$(info clients connected_clients)"
	"$tmp/flusher" run &
	pid=$!
	sleep 3
	idle=$(($(info clients connected_clients) - base))
	cmds="$(info stats total_commands_processed)"
	sleep 3
	cmds=$((($(info stats total_commands_processed) - cmds) / 3))
	kill -TERM "$pid"
	wait "$pid" || true

	"$tmp/writer" load --entity user --ops "$OPS" --keys "$KEYS" --concurrency 32 --value-bytes 256 >/dev/null
	base="$(info clients connected_clients)"
	/usr/bin/time -f %M -o "$tmp/rss" "$tmp/flusher" drain >/dev/null &
	pid=$!
	peak=0
	while kill -0 "$pid" 2>/dev/null; do
		c=$(($(info clients connected_clients) - base))
		[ "$c" -le "$peak" ] || peak=$c
		sleep 0.02
	done
	wait "$pid"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$per" "$idle" "$cmds" "$peak" "$(cat "$tmp/rss")"
done
