#!/usr/bin/env bash
# End-to-end demo against the local Redis and PostgreSQL (scripts/services.sh
# starts them). A shop's tables already exist with rows in them (users,
# products, orders with their items); configs/entities.yaml maps entities
# onto them, and sessions are documents in a table migrate makes. Writes go
# to Redis through the writer, are read back from Redis, then the flusher
# drains them into PostgreSQL, where psql shows them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export WB_NAMESPACE=demo
export WB_ENTITIES_FILE=configs/entities.yaml
export WB_ENTITIES=session=demo.sessions
PG_URL="${WB_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

step() { printf '\n== %s\n' "$*"; }

if ! command -v psql >/dev/null 2>&1; then
	echo "psql not found: install the postgresql-client package to run the demo" >&2
	exit 1
fi
sql() { psql "$PG_URL" -X -q -P pager=off -v ON_ERROR_STOP=1 "$@"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "build writer and flusher"
go build -o "$tmp/" ./cmd/writer ./cmd/flusher
writer="$tmp/writer"
flusher="$tmp/flusher"

step "the shop's tables, as the app made them, with rows already in them"
sql <<'SQL'
DROP SCHEMA IF EXISTS demo CASCADE;
CREATE SCHEMA demo;
CREATE TABLE demo.users (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE demo.products (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), category text, inventory int);
CREATE TABLE demo.orders (id bigint PRIMARY KEY, user_id bigint REFERENCES demo.users, status text NOT NULL DEFAULT 'new', total numeric(10,2));
CREATE TABLE demo.order_items (order_id bigint NOT NULL REFERENCES demo.orders ON DELETE CASCADE, product_id bigint REFERENCES demo.products, quantity int NOT NULL, price numeric(10,2));
INSERT INTO demo.users (id, name, email) VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', 'grace@example.com');
INSERT INTO demo.products VALUES (10, 'Pen', 1.50, 'office', 100), (11, 'Ink', 4.25, 'office', 20);
SQL

step "flusher migrate --dry-run: what migrate would run"
"$flusher" migrate --dry-run

step "flusher migrate: the version columns, the tombstone table and demo.sessions"
"$flusher" migrate

step "writer put: each prints the new version"
"$writer" put user 1 '{"name":"Ada Lovelace","email":"ada@example.com"}'
"$writer" put user 3 '{"name":"Linus","email":null}'
"$writer" put product 12 '{"name":"Paper","price":"3.99","category":"office","inventory":500}'
"$writer" put order 100 '{"user_id":1,"status":"paid","total":7.25,"items":[{"product_id":10,"quantity":2,"price":1.50},{"product_id":11,"quantity":1,"price":4.25}]}'
"$writer" put session s1 '{"user":"1","device":"phone"}'

step "writer put order 100 again: a newer version replaces its items"
"$writer" put order 100 '{"user_id":1,"status":"shipped","total":4.25,"items":[{"product_id":11,"quantity":1,"price":4.25}]}'

step "writer del product 11 (soft: discontinued) and user 2 (hard)"
"$writer" del product 11
"$writer" del user 2

step "writer put with a field no column takes: refused at once"
"$writer" put user 4 '{"name":"Barbara","nickname":"Babs"}' || true

step "writer get order 100, user 1 and 2: read from Redis before any flush"
"$writer" get order 100
"$writer" get user 1 2

step "flusher drain: flush everything to PostgreSQL"
"$flusher" drain

step "demo.users: created_at kept or defaulted, user 2 deleted"
sql -c 'select id, name, email, created_at is not null as has_created_at, wb_version from demo.users order by id'

step "demo.products: product 11 discontinued, its other columns kept"
sql -c 'select * from demo.products order by id'

step "demo.orders and demo.order_items"
sql -c 'select * from demo.orders order by id'
sql -c 'select * from demo.order_items order by order_id, product_id'

step "demo.writebehind_tombstones: the deletes' versions"
sql -c 'select * from demo.writebehind_tombstones order by tbl, key'

step "demo.sessions: documents"
sql -c 'select id, data, version, deleted from demo.sessions order by id'
