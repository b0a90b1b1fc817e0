package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// healthcheckRun runs `lectern healthcheck` with args and no environment.
func healthcheckRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = run(append([]string{"healthcheck"}, args...), func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHealthcheck: `lectern healthcheck`, given the server's settings, exits 0 when the
// server answers /healthz (or /readyz with -ready), over HTTP or HTTPS, and 1 with the
// reason when it does not.
func TestHealthcheck(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		port := freePort(t, "tcp")
		ta := startLectern(t, t.TempDir(), "-http", fmt.Sprintf(":%d", port)) // a wildcard address: checked on loopback
		for _, extra := range [][]string{nil, {"-ready"}} {
			code, stdout, stderr := healthcheckRun(append(extra, ta.args...)...)
			if code != 0 || !strings.Contains(stdout, "200 OK") {
				t.Errorf("healthcheck %v: exit %d, stdout %q, stderr %q", extra, code, stdout, stderr)
			}
		}
		wantPath := map[bool]string{false: "/healthz", true: "/readyz"}
		for ready, path := range wantPath {
			args := ta.args
			if ready {
				args = append([]string{"-ready"}, args...)
			}
			if _, stdout, _ := healthcheckRun(args...); !strings.Contains(stdout, fmt.Sprintf("http://127.0.0.1:%d%s", port, path)) {
				t.Errorf("ready=%v: checked %q, want %s on loopback", ready, stdout, path)
			}
		}
		ta.stop()
		code, _, stderr := healthcheckRun(ta.args...)
		if code != 1 || !strings.Contains(stderr, "connection refused") {
			t.Errorf("with the server stopped: exit %d, stderr %q; want 1 and the reason", code, stderr)
		}
	})
	t.Run("https", func(t *testing.T) {
		dir := t.TempDir()
		ca := newTestCA(t)
		certPath, keyPath, _ := ca.issue(t, dir, "", 2, tlsTestHost)
		ta := startTLSApp(t, filepath.Join(dir, "data"), freePort(t, "tcp"), freePort(t, "tcp"), "-tls-cert", certPath, "-tls-key", keyPath)
		code, stdout, stderr := healthcheckRun(ta.args...)
		if code != 0 || !strings.Contains(stdout, fmt.Sprintf("https://127.0.0.1:%d/healthz: 200 OK", ta.httpsPort)) {
			t.Errorf("healthcheck over HTTPS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		code, _, stderr := healthcheckRun("-http", "nowhere")
		if code != 1 || !strings.Contains(stderr, "LECTERN_HTTP") {
			t.Errorf("exit %d, stderr %q: want 1 (Docker reserves 2) naming the setting", code, stderr)
		}
	})
}
