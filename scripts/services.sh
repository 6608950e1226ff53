#!/usr/bin/env bash
# Makes sure a Redis 7 and a PostgreSQL server are reachable for the tests and
# the demo, starting throwaway local instances only when nothing answers yet:
#
#   redis://127.0.0.1:6379/0
#   postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#
# Started instances keep their data and logs under <repo>/.services/ and keep
# running after this script exits; Redis keeps an append-only file, as a
# deployment must. `scripts/services.sh stop` (make stop-services) stops the
# instances this script started, and only those.
set -euo pipefail

readonly HOST=127.0.0.1
readonly REDIS_PORT=6379
readonly PG_PORT=5432
readonly WAIT_SECONDS=30

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$ROOT/.services"

log() { printf '%s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# wait_for SECONDS CMD...: polls CMD until it succeeds or SECONDS pass.
wait_for() {
	local seconds="$1" i
	shift
	for ((i = 0; i < seconds * 4; i++)); do
		"$@" && return 0
		sleep 0.25
	done
	return 1
}

# tcp_open PORT: true when something accepts TCP connections on HOST:PORT.
tcp_open() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
	else
		(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
	fi
}

# apt_install PKG...: installs Debian packages, or fails when that is not possible.
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "missing $*, and apt-get is not available to install it"
	local sudo=()
	if ! is_root; then
		command -v sudo >/dev/null 2>&1 || die "missing $*: installing it needs root or sudo"
		sudo=(sudo)
	fi
	log "services: installing $* with apt-get"
	${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
		die "apt-get update failed"
	${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
		die "apt-get install $* failed"
}

# ---------------------------------------------------------------- Redis

redis_ready() {
	if command -v redis-cli >/dev/null 2>&1; then
		[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
	else
		tcp_open "$REDIS_PORT"
	fi
}

ensure_redis() {
	if redis_ready; then
		log "redis: already running on $HOST:$REDIS_PORT"
		return
	fi
	if tcp_open "$REDIS_PORT"; then
		# Something listens: give a server that is still loading a moment.
		if wait_for "$WAIT_SECONDS" redis_ready; then
			log "redis: already running on $HOST:$REDIS_PORT"
			return
		fi
		die "port $REDIS_PORT is in use but does not answer a Redis PING"
	fi

	if ! command -v redis-server >/dev/null 2>&1; then
		apt_install redis-server
		command -v redis-server >/dev/null 2>&1 || die "redis-server is still not on PATH after installing it"
		# The package may have started its own server.
		if redis_ready; then
			log "redis: already running on $HOST:$REDIS_PORT (started by the package)"
			return
		fi
	fi

	local version
	version="$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
	if [ -n "$version" ] && [ "$version" -lt 7 ]; then
		log "redis: warning: redis-server major version $version found, Redis 7 is expected"
	fi

	local dir="$SERVICES_DIR/redis"
	mkdir -p "$dir"
	redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" \
		--save "" --appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb --maxmemory-policy noeviction \
		--dir "$dir" --logfile "$dir/redis.log" >/dev/null ||
		die "redis-server failed to start, see $dir/redis.log"

	if wait_for "$WAIT_SECONDS" redis_ready; then
		log "redis: started on $HOST:$REDIS_PORT (data and log in $dir)"
		printf '%s\n' "$REDIS_PORT" >"$SERVICES_DIR/redis.started"
		return
	fi
	tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
	die "redis did not answer on $HOST:$REDIS_PORT within ${WAIT_SECONDS}s, see $dir/redis.log"
}

# ensure_redis_binaries: the tests start Redis servers, a cluster and a
# Sentinel of their own, whatever Redis already runs.
ensure_redis_binaries() {
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		apt_install redis-server redis-tools
	fi
}

# ----------------------------------------------------------- PostgreSQL

pg_ready() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h "$HOST" -p "$PG_PORT" >/dev/null 2>&1
	else
		tcp_open "$PG_PORT"
	fi
}

# find_pg_bin: prints the directory holding both initdb and pg_ctl, preferring
# the ones on PATH, then the highest version under /usr/lib/postgresql.
find_pg_bin() {
	local initdb dir
	if initdb="$(command -v initdb 2>/dev/null)"; then
		dir="$(dirname "$initdb")"
		if [ -x "$dir/pg_ctl" ]; then
			printf '%s\n' "$dir"
			return 0
		fi
	fi
	local candidates=(/usr/lib/postgresql/*/bin)
	[ -d "${candidates[0]}" ] || return 1
	while IFS= read -r dir; do
		if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
			printf '%s\n' "$dir"
			return 0
		fi
	done < <(printf '%s\n' "${candidates[@]}" | sort -Vr)
	return 1
}

# as_pg CMD...: runs a command as the cluster owner. initdb and postgres refuse
# to run as root, so root runs them as the postgres system user.
as_pg() {
	if ! is_root; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
	fi
}

ensure_postgres_user() {
	is_root || return 0
	id -u postgres >/dev/null 2>&1 && return 0
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin postgres ||
		die "could not create the postgres system user"
}

ensure_postgres() {
	if pg_ready; then
		log "postgres: already running on $HOST:$PG_PORT"
		return
	fi
	if tcp_open "$PG_PORT"; then
		# Something listens: give a server that is still starting a moment.
		if wait_for "$WAIT_SECONDS" pg_ready; then
			log "postgres: already running on $HOST:$PG_PORT"
			return
		fi
		die "port $PG_PORT is in use but PostgreSQL does not accept connections there"
	fi

	local bin
	if ! bin="$(find_pg_bin)"; then
		apt_install postgresql postgresql-client
		# The package may have created and started its own cluster.
		if pg_ready; then
			log "postgres: already running on $HOST:$PG_PORT (started by the package)"
			return
		fi
		bin="$(find_pg_bin)" || die "initdb/pg_ctl still not found after installing postgresql"
	fi

	ensure_postgres_user

	local dir="$SERVICES_DIR/pg"
	mkdir -p "$dir"
	if is_root; then
		chown postgres: "$dir"
		if ! as_pg test -w "$dir"; then
			# A parent directory is closed to the postgres user (e.g. a
			# checkout under /root): keep the cluster in a world-reachable place.
			rmdir "$dir" 2>/dev/null || true
			dir="${TMPDIR:-/tmp}/writebehind-services-pg-$PG_PORT"
			mkdir -p "$dir"
			chown postgres: "$dir"
			chmod 700 "$dir"
		fi
	fi
	local data="$dir/data" logfile="$dir/postgres.log"

	# A cluster left by another major version is useless to this one: it is
	# throwaway, so start over.
	local major
	major="$("$bin/pg_ctl" --version | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p' | head -n1)"
	if [ -f "$data/PG_VERSION" ] && [ -n "$major" ] && [ "$(cat "$data/PG_VERSION")" != "$major" ]; then
		rm -rf "$data"
	fi

	if [ ! -f "$data/PG_VERSION" ]; then
		rm -rf "$data"
		if ! (cd "$dir" && as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale) \
			>"$dir/initdb.log" 2>&1; then
			cat "$dir/initdb.log" >&2
			die "initdb failed, see $dir/initdb.log"
		fi
	fi

	if ! (cd "$dir" && as_pg "$bin/pg_ctl" -D "$data" \
		-o "-p $PG_PORT -k /tmp -c listen_addresses=$HOST" \
		-l "$logfile" -w -t "$WAIT_SECONDS" start) >/dev/null 2>&1; then
		tail -n 20 "$logfile" >&2 2>/dev/null || true
		die "postgres failed to start, see $logfile"
	fi

	if wait_for "$WAIT_SECONDS" pg_ready; then
		log "postgres: started on $HOST:$PG_PORT (data and log in $dir)"
		printf '%s\n%s\n' "$bin" "$data" >"$SERVICES_DIR/pg.started"
		return
	fi
	tail -n 20 "$logfile" >&2 2>/dev/null || true
	die "postgres did not accept connections on $HOST:$PG_PORT within ${WAIT_SECONDS}s, see $logfile"
}

# stop_started: stops the instances an earlier run started (recorded under
# .services/), leaving alone servers this script found running.
stop_started() {
	local port bin data
	if [ -f "$SERVICES_DIR/redis.started" ]; then
		port="$(cat "$SERVICES_DIR/redis.started")"
		redis-cli -h "$HOST" -p "$port" shutdown >/dev/null 2>&1 || true
		rm -f "$SERVICES_DIR/redis.started"
		log "redis: stopped on $HOST:$port"
	fi
	if [ -f "$SERVICES_DIR/pg.started" ]; then
		{ read -r bin; read -r data; } <"$SERVICES_DIR/pg.started"
		as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
		rm -f "$SERVICES_DIR/pg.started"
		log "postgres: stopped ($data)"
	fi
}

case "${1:-start}" in
start)
	mkdir -p "$SERVICES_DIR"
	ensure_redis
	ensure_redis_binaries
	ensure_postgres
	;;
stop)
	stop_started
	;;
*)
	die "usage: services.sh [start|stop]"
	;;
esac
