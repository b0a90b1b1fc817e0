#!/usr/bin/env bash
# Installs what building the server needs beyond Go, idempotently: a C compiler and
# libopus/libopusfile (Debian's libopus-dev, libopusfile-dev), which the programme's
# audio mixer links through cgo (gopkg.in/hraban/opus.v2). `make run` and `make build`
# call it; it does nothing when they are there.
set -euo pipefail
if pkg-config --exists opus opusfile >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1; then
  exit 0
fi
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
echo "build-deps: installing gcc, pkg-config, libopus-dev, libopusfile-dev (Debian packages)"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
  gcc libc6-dev pkg-config libopus-dev libopusfile-dev >/dev/null
