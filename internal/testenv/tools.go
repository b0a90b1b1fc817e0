package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of the executable name found in PATH. When
// it is missing, the test fails (it is never skipped: a missing tool must
// not turn into a silently green run) with hint telling how to install it,
// e.g. RequireTool(t, "ffmpeg", "apt-get install ffmpeg").
func RequireTool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testenv: %s not found in PATH (%v); install it with: %s", name, err, hint)
	}
	return p
}

// isExecutable reports whether path is a regular file someone may execute.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
