#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a short while (FUZZTIME, default 8s each)
# on top of its seed corpus, which `go test` already replays. This keeps the parsers
# that face the outside (RTSP requests, SDP offers, PATCH fragments, tokens, Range
# headers, H.264/AAC payloads) under fresh random input in every test run; a crasher
# is written to the package's testdata/fuzz and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-8s}"
n=0
for pkg in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s -parallel 2 "$pkg" >/tmp/lectern-fuzz.log 2>&1 || { cat /tmp/lectern-fuzz.log; exit 1; }
    n=$((n + 1))
  done
done
echo "fuzz: $n targets, $fuzztime each, no failure"
