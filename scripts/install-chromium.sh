#!/usr/bin/env bash
# Install Debian's chromium (the browser tests/ui drives through Playwright; nothing downloads a
# browser build). Idempotent: does nothing when chromium is there already. Needs root (apt-get),
# as CI and the developers' machines run; prints where it is.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "chromium is not installed and this is not root: apt-get install chromium" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
