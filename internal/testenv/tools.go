package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lectern/internal/clip"
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

// clips holds the clips made so far by this test binary, by options; the
// result (clip or error) of the first Clip call with those options stands.
var clips struct {
	mu   sync.Mutex
	made map[clip.Options]clipResult
}

type clipResult struct {
	clip *clip.Clip
	err  error
}

// Clip returns the clip ffmpeg makes with o: made once per test binary and
// options, and cached across runs in the system temp directory. A test that
// cannot find ffmpeg fails with an install hint.
func Clip(t testing.TB, o clip.Options) *clip.Clip {
	t.Helper()
	RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	clips.mu.Lock()
	defer clips.mu.Unlock()
	r, ok := clips.made[o]
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		r.clip, r.err = clip.Generate(ctx, filepath.Join(os.TempDir(), "lectern-test-clips"), o)
		if clips.made == nil {
			clips.made = make(map[clip.Options]clipResult)
		}
		clips.made[o] = r
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.clip
}
