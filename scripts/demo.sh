#!/usr/bin/env bash
# End-to-end demo against the local Redis and PostgreSQL (scripts/services.sh
# starts them): writes go to Redis through the writer, are read back from
# Redis, then the flusher drains them into PostgreSQL, where psql shows them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export WB_NAMESPACE=demo
export WB_ENTITIES=user=demo.users,session=demo.sessions
PG_URL="${WB_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

step() { printf '\n== %s\n' "$*"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "build writer and flusher"
go build -o "$tmp/" ./cmd/writer ./cmd/flusher
writer="$tmp/writer"
flusher="$tmp/flusher"

step "flusher migrate: create the demo.users and demo.sessions tables"
"$flusher" migrate

step "writer put: each prints the new version"
"$writer" put user 1 '{"name":"Ada","plan":"pro"}'
"$writer" put user 2 '{"name":"Grace","plan":"free"}'
"$writer" put user 3 '{"name":"Linus","plan":"free"}'
"$writer" put session s0 '{"user":"2"}'

step "writer put user 1 again: a newer version replaces the first"
"$writer" put user 1 '{"name":"Ada","plan":"enterprise"}'

step "writer del user 3"
"$writer" del user 3

step "writer apply: NDJSON from stdin"
"$writer" apply <<'NDJSON'
{"op":"put","entity":"session","id":"s1","data":{"user":"1"}}
{"op":"put","entity":"session","id":"s2","data":{"user":"1","device":"phone"}}
{"op":"put","entity":"user","id":"4","data":{"name":"Barbara","plan":"pro"}}
{"op":"del","entity":"user","id":"2"}
NDJSON

step "writer get user 1 2 3: read from Redis before any flush"
"$writer" get user 1 2 3

step "flusher drain: flush everything to PostgreSQL"
"$flusher" drain

if ! command -v psql >/dev/null 2>&1; then
	echo "psql not found: install the postgresql-client package to see the rows" >&2
	exit 1
fi

step "demo.users in PostgreSQL"
psql "$PG_URL" -X -P pager=off -c 'select id, data, version, deleted from demo.users order by id'

step "demo.sessions in PostgreSQL"
psql "$PG_URL" -X -P pager=off -c 'select id, data, version, deleted from demo.sessions order by id'
