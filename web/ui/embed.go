// Package ui holds the files of Lectern's web pages, embedded in the binary so the
// server needs nothing beside itself at run time (no CDN, no file tree).
//
// The pages are plain HTML, CSS and ES modules that browsers load as they are: there
// is no bundle to build. npm (package.json, package-lock.json) only supplies the
// third-party libraries, which scripts/build-ui.sh copies verbatim from node_modules
// into assets/vendor as listed in vendor.txt. Those copies are committed, so a clean
// clone builds with `go build` alone; a test in lectern/web checks they match the
// lock file's packages whenever node_modules is installed.
package ui

import "embed"

// Files holds pages/*.html, the page templates (lectern/web replaces "{{assets}}" with
// the versioned assets path), and assets/**, the CSS, the ES modules and the vendored
// libraries.
//
//go:embed pages assets
var Files embed.FS
