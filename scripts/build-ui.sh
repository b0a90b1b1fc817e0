#!/usr/bin/env bash
# Builds Lectern's web pages (web/ui). The pages are plain ES modules served as they
# are, so "building" is: install the npm packages pinned by package-lock.json (only
# when the lock file changed since the last install) and copy the third-party files
# listed in web/ui/vendor.txt into web/ui/assets/vendor, where go:embed finds them.
# The copies are committed, so `go build` works from a clean clone without Node; this
# script refreshes them after a dependency upgrade (npm install <pkg>@<version> in
# web/ui, then run it, then commit). Without npm it keeps the committed copies.
#
# Usage: scripts/build-ui.sh [--check]   (--check: fail if a copy is out of date)
set -euo pipefail
cd "$(dirname "$0")/../web/ui"

check=false
[ "${1:-}" = "--check" ] && check=true

if ! command -v npm >/dev/null 2>&1; then
  echo "build-ui: npm not found; using the committed files in web/ui/assets/vendor" >&2
  exit 0
fi
stamp=node_modules/.lectern-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "build-ui: installing the web pages' npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

stale=0
while read -r src dst; do
  case "$src" in ''|'#'*) continue ;; esac
  from="node_modules/$src" to="assets/vendor/$dst"
  [ -f "$from" ] || { echo "build-ui: $from is missing (is package.json in step with vendor.txt?)" >&2; exit 1; }
  if ! cmp -s "$from" "$to"; then
    if $check; then
      echo "build-ui: $to differs from $from" >&2
      stale=1
    else
      cp "$from" "$to"
      echo "build-ui: updated $to"
    fi
  fi
done < vendor.txt
if [ $stale -ne 0 ]; then
  echo "build-ui: run scripts/build-ui.sh and commit web/ui/assets/vendor" >&2
  exit 1
fi
