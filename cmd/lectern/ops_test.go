package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lectern/catalog"
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
