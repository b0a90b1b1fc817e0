package testenv

// Helpers the media tests (sfu/rtsp, internal/e2e, cmd/lectern) share: a
// logger, polling, and tools such as ffmpeg run in the background.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Logger discards logs unless LECTERN_TEST_LOG is set, then logs everything to
// stderr.
func Logger() *slog.Logger {
	if os.Getenv("LECTERN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// WaitFor polls cond every 20 ms until it holds, or fails the test when ctx
// ends.
func WaitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LastProgress returns the last value of key in ffmpeg -progress output.
func LastProgress(out, key string) string {
	v := ""
	for _, line := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			v = val
		}
	}
	return v
}

// LockedBuffer is a bytes.Buffer a process's output copiers and the test may
// share.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartBackground starts cmd with its stderr collected; the returned stop (also
// run when the test ends) interrupts it, kills it if it has not exited 5 s
// later, and returns its stderr. stop may be called more than once.
func StartBackground(t testing.TB, cmd *exec.Cmd) (stop func() string) {
	t.Helper()
	var errb LockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		return errb.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}
