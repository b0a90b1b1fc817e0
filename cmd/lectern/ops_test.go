package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lectern/catalog"
	"lectern/internal/testenv"
	"lectern/sfu/rtsp"
)

// testApp builds an app on loopback with free ports and a fresh data dir, from
// the same flags a user would give, plus extra ones. It is shut down at cleanup.
func testApp(t *testing.T, extra ...string) *app {
	t.Helper()
	a, err := newApp(testConfig(t, extra...), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.shutdown(ctx)
	})
	return a
}

// testConfig is the configuration of testApp.
func testConfig(t *testing.T, extra ...string) config {
	t.Helper()
	args := append([]string{"-http", "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp")), "-webrtc-ip", "127.0.0.1",
		"-webrtc-udp-port", strconv.Itoa(freePort(t, "udp")), "-webrtc-tcp-port", "0",
		"-rtsp", "off", "-data-dir", t.TempDir()}, extra...)
	cfg, err := parseConfig(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBannerShowsOnlyAGeneratedAdminToken: the banner goes to stdout (journald,
// docker logs). A token generated for this run must be shown (it is the only way
// to learn it); a configured one must never be, not even inside the curl lines.
func TestBannerShowsOnlyAGeneratedAdminToken(t *testing.T) {
	const configured = "configured-admin-token-0123456789"
	a := testApp(t, "-admin-token", configured)
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	banner := a.banner()
	if strings.Contains(banner, configured) {
		t.Fatalf("the banner shows the configured admin token:\n%s", banner)
	}
	if !strings.Contains(banner, "curl -s -X POST") || !strings.Contains(banner, "$LECTERN_ADMIN_TOKEN") {
		t.Fatalf("the banner's curl lines should use $LECTERN_ADMIN_TOKEN:\n%s", banner)
	}

	g := testApp(t)
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	if !g.generated || !strings.Contains(g.banner(), "Bearer "+g.adminToken) {
		t.Fatalf("the banner should show the token generated for this run (%v):\n%s", g.generated, g.banner())
	}
}

// openFilesUnder lists this process's open files below dir.
func openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir) {
			open = append(open, target)
		}
	}
	return open
}

// checkAppReleased checks that a failed newApp left nothing open: no goroutine,
// no file in its data dir, its WebRTC port free again.
func checkAppReleased(t *testing.T, cfg config) {
	t.Helper()
	goleak.VerifyNone(t)
	if open := openFilesUnder(t, cfg.DataDir); len(open) > 0 {
		t.Errorf("files still open in the data dir: %v", open)
	}
	c, err := net.ListenPacket("udp", net.JoinHostPort(cfg.WebRTCIP, strconv.Itoa(cfg.UDPPort)))
	if err != nil {
		t.Errorf("the WebRTC UDP port is still taken: %v", err)
	} else {
		c.Close()
	}
}

// TestNewAppFailingLateClosesEverything makes the last step of newApp (the HTTP
// layer) fail and checks that everything opened before it was closed: the
// recorder and its store, the WebRTC edge, the RTSP server, the pull sources.
func TestNewAppFailingLateClosesEverything(t *testing.T) {
	cfg := testConfig(t, "-rtsp", "127.0.0.1:0", "-rtsp-udp-rtp-port", "0")
	var opened *app
	testHookNewApp = func(a *app) error {
		opened = a
		return errors.New("injected: the HTTP layer failed")
	}
	defer func() { testHookNewApp = nil }()
	if _, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("newApp: %v, want the injected failure", err)
	}
	if opened == nil {
		t.Fatal("the hook did not run")
	}
	sess, err := opened.catalog.Create(catalog.NewSession{Title: "after failure"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opened.sources.Add(sess.ID, rtsp.SourceSpec{URL: "rtsp://192.0.2.1/cam", Name: "cam", As: "trainer"}); !errors.Is(err, rtsp.ErrClosed) {
		t.Errorf("pull sources still accept a source after newApp failed: %v", err)
		opened.sources.Close()
	}
	if err := opened.rtsp.Start(); !errors.Is(err, rtsp.ErrClosed) {
		t.Errorf("the RTSP server can still start after newApp failed: %v", err)
		_ = opened.rtsp.Close()
	}
	checkAppReleased(t, cfg)
}

// TestNewAppFailingOnRTSPCertificateClosesEverything: a real late failure (the
// RTSPS certificate is missing) after the recorder and the WebRTC edge opened.
func TestNewAppFailingOnRTSPCertificateClosesEverything(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cfg := testConfig(t, "-rtsp", "127.0.0.1:0", "-rtsp-cert", missing, "-rtsp-key", missing)
	if _, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("newApp: %v, want a certificate error", err)
	}
	checkAppReleased(t, cfg)
}

// readyz answers GET /readyz: the status and the reason given.
func readyz(t *testing.T, a *app) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.listener.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReadyz polls /readyz (its answer is cached for a moment) until it answers
// status with a body containing want.
func waitReadyz(t *testing.T, a *app, status int, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := readyz(t, a)
		if code == status && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d %q, want %d with %q", code, body, status, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unwritable makes dir refuse new files until the returned function is called:
// chmod for an ordinary user; root ignores permissions, so then the immutable
// attribute (chattr, e2fsprogs; needs a filesystem that supports it, e.g. ext4).
func unwritable(t *testing.T, dir string) (restore func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		return func() { _ = os.Chmod(dir, 0o755) }
	}
	chattr := testenv.RequireTool(t, "chattr", "apt-get install e2fsprogs")
	if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v %s (the test runs as root: it needs a filesystem with the immutable attribute, e.g. ext4, for its temporary directory; set TMPDIR)", dir, err, out)
	}
	restored := false
	restore = func() {
		if !restored {
			restored = true
			if out, err := exec.Command(chattr, "-i", dir).CombinedOutput(); err != nil {
				t.Errorf("chattr -i %s: %v %s", dir, err, out)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestReadyzReportsStoreAndSpool: /readyz is 503 with the reason while the
// local recording store or the spool cannot be written, and 200 again after.
func TestReadyzReportsStoreAndSpool(t *testing.T) {
	a := testApp(t)
	if err := a.ready(); err == nil || !strings.Contains(err.Error(), "not serving") {
		t.Fatalf("ready before start: %v, want not serving", err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, a, 200, "ready")

	restore := unwritable(t, filepath.Join(a.cfg.DataDir, "store"))
	waitReadyz(t, a, 503, "recording store")
	restore()
	waitReadyz(t, a, 200, "ready")

	spool := filepath.Join(a.cfg.DataDir, "spool")
	if err := os.Rename(spool, spool+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, a, 503, "recording spool")
	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(spool+".away", spool); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, a, 200, "ready")
}

// TestReadyzReportsAStoppedMinIO: with recordings in S3, /readyz is 503 while
// the object store is down and 200 once it is back.
func TestReadyzReportsAStoppedMinIO(t *testing.T) {
	m := testenv.StartMinIO(t)
	a := testApp(t, "-s3-endpoint", m.URL(), "-s3-bucket", testenv.NewBucketName(t),
		"-s3-access-key", m.AccessKey, "-s3-secret-key", m.SecretKey, "-s3-path-style", "on")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, a, 200, "ready")
	m.Stop()
	waitReadyz(t, a, 503, "recording store")
	m.Start()
	waitReadyz(t, a, 200, "ready")
}
