#!/usr/bin/env bash
# Install Debian's chromium (the browser tests/ui drives through Playwright; nothing downloads a
# browser build). Idempotent: does nothing when chromium is there already. Needs root (apt-get),
# as CI and the developers' machines run; prints where it is.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  "$(dirname "$0")/apt-install.sh" chromium
fi
command -v chromium
