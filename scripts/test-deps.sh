#!/usr/bin/env bash
# Installs what Lectern's tests use, idempotently: libopus (the server's build), Redis, ffmpeg/ffprobe, Chromium, GStreamer
# and VLC from Debian, iproute2 (ip, tc) for the link-shaping tests, MinIO from the Go module proxy, Pebble (an ACME server), the web
# pages' npm packages. Safe to run on every test run: each step is skipped when its tool is there.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

apt_missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || apt_missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
# GStreamer's webrtcbin driven from Python: the bundle-only interop test (web/gstreamer_test.go).
{ gst-inspect-1.0 webrtcbin && gst-inspect-1.0 nicesrc && gst-inspect-1.0 x264enc && gst-inspect-1.0 opusenc &&
  /usr/bin/python3 -c 'import gi; gi.require_version("GstWebRTC", "1.0"); from gi.repository import GstWebRTC'; } >/dev/null 2>&1 ||
  apt_missing+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
                gstreamer1.0-plugins-ugly gstreamer1.0-nice python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
                gir1.2-gst-plugins-bad-1.0)
# GStreamer's rtspsrc as an RTSP reader not written by us (internal/e2e/rtsp_clients_test.go):
# rtspsrc (good), avdec_h264 and avdec_aac (libav), opusdec (base).
{ gst-inspect-1.0 rtspsrc && gst-inspect-1.0 avdec_h264 && gst-inspect-1.0 avdec_aac && gst-inspect-1.0 opusdec; } >/dev/null 2>&1 ||
  apt_missing+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav)
# VLC plays HLS replays (web/vlc_replay_test.go); Debian's VLC cannot open rtsp:// (no live555).
command -v cvlc >/dev/null 2>&1 || apt_missing+=(vlc-bin vlc-plugin-base)
# ip and tc: classrooms behind kernel-limited links (network namespaces, veth, tbf) in the
# adaptation tests (internal/netns).
{ command -v ip && command -v tc; } >/dev/null 2>&1 || apt_missing+=(iproute2)
# The server itself links libopus through cgo (the programme's audio mix): see build-deps.sh.
pkg-config --exists opus opusfile >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 ||
  apt_missing+=(gcc libc6-dev pkg-config libopus-dev libopusfile-dev)
# Redis: the coordinator of a cluster of nodes (cluster tests start their own on loopback).
command -v redis-server >/dev/null 2>&1 || apt_missing+=(redis-server)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${apt_missing[*]} (Debian packages)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if ! command -v minio >/dev/null 2>&1 && [ ! -x "$gobin/minio" ]; then
  echo "test-deps: installing MinIO $MINIO_VERSION (go install; takes a few minutes the first time)"
  go install "github.com/minio/minio@$MINIO_VERSION"
fi

# Pebble, a small ACME server (the HTTPS tests get certificates from it): Debian's
# package when the release has one, else the pinned version from the Go module proxy.
PEBBLE_VERSION=v2.10.3
if ! command -v pebble >/dev/null 2>&1 && [ ! -x "$gobin/pebble" ]; then
  $sudo_cmd apt-get update -qq
  if apt-cache policy pebble 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    echo "test-deps: installing pebble (Debian package)"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends pebble >/dev/null
  else
    echo "test-deps: installing pebble $PEBBLE_VERSION (go install)"
    go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
  fi
fi

if [ -f web/ui/package.json ]; then
  # npm ci only when the lock file changed since the last install.
  stamp=web/ui/node_modules/.lectern-lock
  if [ ! -f "$stamp" ] || ! cmp -s web/ui/package-lock.json "$stamp"; then
    echo "test-deps: installing the web pages' npm packages"
    (cd web/ui && npm ci --no-audit --no-fund --loglevel=error)
    cp web/ui/package-lock.json "$stamp"
  fi
fi
echo "test-deps: ok (ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3), $(chromium --version 2>/dev/null | head -1), minio in ${gobin}, $(command -v pebble || echo "$gobin/pebble"))"
