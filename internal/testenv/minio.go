// Package testenv provides test helpers that run real external programs: a
// MinIO server for S3 tests ([StartMinIO]) and lookups of tools such as
// ffmpeg ([RequireTool]). Missing programs fail the test with an install
// hint; they never skip it.
//
// Helpers take a testing.TB and must be called from the test's goroutine;
// everything they start is stopped by t.Cleanup.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// MinIOInstall is the command that installs the MinIO version the tests
// are written against.
const MinIOInstall = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// minioStartTimeout bounds how long a MinIO start may take to become live.
const minioStartTimeout = 30 * time.Second

// MinIO is a MinIO server process serving plain HTTP on 127.0.0.1, with its
// data in a test temporary directory. Create it with [StartMinIO].
type MinIO struct {
	// Endpoint is the S3 API address, "127.0.0.1:port". It stays the same
	// across Stop and Start.
	Endpoint string
	// AccessKey and SecretKey are the (random) root credentials.
	AccessKey string
	SecretKey string

	t           testing.TB
	bin         string
	consoleAddr string
	dataDir     string
	certsDir    string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// StartMinIO starts a MinIO server on kernel-chosen loopback ports with a
// fresh data directory and random root credentials, waits until it serves
// requests, and registers a cleanup that kills it and waits for it to exit.
// It fails the test when the minio binary is missing (with the install
// command) or the server does not come up within 30 s (with its output).
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{
		AccessKey: "lectern-" + randomHex(6),
		SecretKey: randomHex(20),
		t:         t,
		bin:       findMinIO(t),
		dataDir:   t.TempDir(),
		certsDir:  t.TempDir(),
	}
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.kill()
	})
	// A port picked by listening on :0 and closing can be taken by someone
	// else before MinIO binds it; such a start fails fast, so try anew.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if m.Endpoint, err = freeAddr(); err != nil {
			break
		}
		if m.consoleAddr, err = freeAddr(); err != nil {
			break
		}
		if err = m.start(); err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: start MinIO: %v", err)
	}
	return m
}

// URL returns the server's base URL, "http://127.0.0.1:port".
func (m *MinIO) URL() string { return "http://" + m.Endpoint }

// Stop kills the server, as a crash would, and waits for it to exit. The
// data directory and port are kept for [MinIO.Start]. Call it from the
// test goroutine.
func (m *MinIO) Stop() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		m.t.Fatalf("testenv: MinIO.Stop: server is not running")
	}
	m.kill()
}

// Start restarts a stopped server on the same address with the same data
// and credentials, and waits until it serves requests. Call it from the
// test goroutine.
func (m *MinIO) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.t.Fatalf("testenv: MinIO.Start: server is already running")
	}
	if err := m.start(); err != nil {
		m.t.Fatalf("testenv: restart MinIO: %v", err)
	}
}

// errExited reports a server process that ended before becoming ready.
var errExited = errors.New("minio exited before it was ready")

// start launches the binary and waits until it is live. m.mu must be held
// (or m not yet shared).
func (m *MinIO) start() error {
	cmd := exec.Command(m.bin, "server",
		"--address", m.Endpoint,
		"--console-address", m.consoleAddr,
		"--certs-dir", m.certsDir,
		m.dataDir)
	cmd.Env = append(environWithout("MINIO_"),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_UPDATE=off",
	)
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	p, err := startProcess(cmd, readiness{name: "minio", addr: m.Endpoint,
		ready:   func() bool { return minioLive(client, "http://"+m.Endpoint+"/minio/health/live") },
		every:   50 * time.Millisecond,
		timeout: minioStartTimeout,
		exited:  errExited,
	})
	if err != nil {
		return err
	}
	m.proc = p
	return nil
}

// kill ends the current process, if any, and waits for it. m.mu must be
// held.
func (m *MinIO) kill() {
	if m.proc == nil {
		return
	}
	m.proc.kill()
	m.proc = nil
}

// minioLive reports whether a liveness probe succeeds. MinIO answers 200
// before its object layer is ready, flagging that with a header.
func minioLive(client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "offline"
}

// findMinIO looks for the minio binary in PATH, then in the bin directory
// of GOPATH (as `go install` puts it), then in $HOME/go/bin.
func findMinIO(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	var tried []string
	for _, dir := range []string{goEnvGOPATH(), build.Default.GOPATH, homeGo()} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, "bin", "minio")
		if isExecutable(p) {
			return p
		}
		tried = append(tried, p)
	}
	t.Fatalf("testenv: minio binary not found in PATH nor at %s; install it with: %s",
		strings.Join(tried, ", "), MinIOInstall)
	return ""
}

// goEnvGOPATH returns the first entry of `go env GOPATH`, or "".
func goEnvGOPATH() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), string(filepath.ListSeparator))
	return first
}

// homeGo returns $HOME/go, or "".
func homeGo() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, "go")
}

// NewBucketName returns a valid, unique S3 bucket name derived from the
// test's name, such as "t-tests3-roundtrip-3f9a0c12e4b7".
func NewBucketName(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	if name == "" {
		return "t-" + randomHex(6)
	}
	return "t-" + name + "-" + randomHex(6)
}

// freeAddr returns a loopback address whose port the kernel just chose.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// environWithout returns the environment minus variables starting with
// prefix, so a developer's MinIO settings cannot leak into the test server.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, per crypto/rand
	return hex.EncodeToString(b)
}
