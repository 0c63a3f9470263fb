#!/usr/bin/env bash
# Install PostgreSQL's server programs (used by tests/executors/test_sql_query.py, which starts a
# server of its own on loopback) from Debian's packages. Idempotent: does nothing when initdb is
# there already. Needs root (apt-get), as CI and the developers' machines run; prints where the
# programs are.
set -euo pipefail

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bin="$(find_bin || true)"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
  "$(dirname "$0")/apt-install.sh" postgresql
  bin="$(find_bin)"
fi
echo "$bin"
