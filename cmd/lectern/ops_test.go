package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
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
