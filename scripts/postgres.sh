#!/usr/bin/env bash
# Throwaway PostgreSQL server for tests and local experiments.
#
#   scripts/postgres.sh start DIR PORT   -> prints postgresql+psycopg://postgres@127.0.0.1:PORT/reel_test
#   scripts/postgres.sh stop DIR
#   scripts/postgres.sh url DIR          -> prints the URL of the server running in DIR
#
# start: installs the Debian `postgresql` package with apt-get when initdb cannot be found (needs
# root), creates a cluster in DIR/data (trust authentication, superuser `postgres`, durability
# switched off: fsync=off, synchronous_commit=off -- never put data you care about in it),
# listens on 127.0.0.1:PORT only (and a Unix socket in DIR), and creates the database
# `reel_test`. Running `start` again on a running server only prints its URL (with the port it
# really listens on). initdb and postgres refuse to run as root, so as root the server runs as
# the `postgres` system user and DIR is handed to that user (DIR's parent folders must be
# traversable by it: use a folder under /tmp, not /root).
# Everything but the URL goes to stderr.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

find_bindir() {
    local d
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    # Debian keeps the server binaries out of PATH; take the newest major version.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

install_postgresql() {
    [ "$(id -u)" -eq 0 ] || die "initdb not found and not root: install PostgreSQL (Debian: apt-get install postgresql)"
    command -v apt-get >/dev/null 2>&1 || die "initdb not found and apt-get is unavailable: install PostgreSQL"
    log "installing the Debian postgresql package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
}

# Run a command as the cluster owner (the postgres system user when we are root).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            local q
            q=$(printf '%q ' "$@")
            su postgres -s /bin/sh -c "$q"
        fi
    else
        "$@"
    fi
}

running_port() {
    # Line 4 of postmaster.pid is the port the server listens on.
    sed -n '4p' "$1/data/postmaster.pid" 2>/dev/null
}

is_running() {
    [ -f "$1/data/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

ensure_database() {
    local dir=$1 port=$2
    local exists
    exists=$(as_owner "$BINDIR/psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'reel_test'")
    if [ "$exists" != "1" ]; then
        as_owner "$BINDIR/createdb" -h 127.0.0.1 -p "$port" -U postgres reel_test
    fi
}

print_url() {
    echo "postgresql+psycopg://postgres@127.0.0.1:$1/reel_test"
}

cmd_start() {
    [ $# -eq 2 ] || usage
    local dir=$1 port=$2
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    cd /  # the postgres user may not be allowed into the caller's working directory

    BINDIR=$(find_bindir) || { install_postgresql; BINDIR=$(find_bindir) || die "initdb still not found after installing postgresql"; }
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "the 'postgres' system user does not exist (install the Debian postgresql package)"
        chown postgres: "$dir"
        chmod 700 "$dir"
        as_owner test -w "$dir" || die "user postgres cannot write $dir (are its parent folders traversable?)"
    fi

    if is_running "$dir"; then
        port=$(running_port "$dir")
        log "already running in $dir on port $port"
        ensure_database "$dir" "$port"
        print_url "$port"
        return 0
    fi

    if [ ! -f "$dir/data/PG_VERSION" ]; then
        log "initdb $dir/data ($("$BINDIR/initdb" --version))"
        as_owner "$BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
            --no-locale >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi

    log "starting on 127.0.0.1:$port (log: $dir/postgres.log)"
    if ! as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2; then
        tail -n 20 "$dir/postgres.log" >&2 || true
        die "pg_ctl start failed (port $port in use?)"
    fi
    ensure_database "$dir" "$port"
    print_url "$port"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    local dir=$1
    [ -d "$dir" ] || { log "no such folder $dir"; return 0; }
    dir=$(cd "$dir" && pwd -P)
    cd /
    BINDIR=$(find_bindir) || die "pg_ctl not found"
    if is_running "$dir"; then
        as_owner "$BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    else
        log "not running in $dir"
    fi
}

cmd_url() {
    [ $# -eq 1 ] || usage
    local dir=$1
    [ -d "$dir" ] || die "no such folder $dir"
    dir=$(cd "$dir" && pwd -P)
    cd /
    BINDIR=$(find_bindir) || die "pg_ctl not found"
    is_running "$dir" || die "not running in $dir"
    print_url "$(running_port "$dir")"
}

[ $# -ge 1 ] || usage
action=$1
shift
case "$action" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    url) cmd_url "$@" ;;
    *) usage ;;
esac
