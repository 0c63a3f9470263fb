#!/usr/bin/env bash
# Install Debian packages by name (the test tools the other install-*.sh scripts need). Needs
# root, as CI and the developers' machines run.
set -euo pipefail
if [[ "$(id -u)" != 0 ]]; then
  echo "$* not installed and this is not root: apt-get install $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$@" >/dev/null
