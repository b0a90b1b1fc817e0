package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	putBackSpool := replaceWithFile(t, spool)
	waitReadyz(t, a, 503, "recording spool")
	putBackSpool()
	waitReadyz(t, a, 200, "ready")
}

// replaceWithFile moves directory dir aside and puts an empty file in its place,
// so that nothing can be written below it; putBack restores the directory.
func replaceWithFile(t *testing.T, dir string) (putBack func()) {
	t.Helper()
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir+".away", dir); err != nil {
			t.Fatal(err)
		}
	}
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

// dialFrom opens a TCP connection to the app's HTTP listener from a local
// address (127.0.0.2 is a second client on loopback).
func dialFrom(t *testing.T, a *app, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", a.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends GET path on c (keep-alive) and returns the status, or an error
// when the server closed the connection instead of answering.
func roundTrip(c net.Conn, br *bufio.Reader, path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: lectern\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedByServer waits (10 s at most) for the server to close c: true when it
// did, false when c is still open.
func closedByServer(c net.Conn, br *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestIdleConnectionsAreClosed: a keep-alive connection idle after a request is
// closed after -http-idle-timeout (it used to stay open for ever).
func TestIdleConnectionsAreClosed(t *testing.T) {
	a := testApp(t, "-http-idle-timeout", "1s")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, a, "127.0.0.1")
	br := bufio.NewReader(c)
	if code, err := roundTrip(c, br, "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %v", code, err)
	}
	if !closedByServer(c, br) {
		t.Fatal("a keep-alive connection idle for 10 s is still open with -http-idle-timeout 1s")
	}
}

// TestSlowRequestBodyIsCut: a request body trickling in (1 byte per 100 ms) is
// cut after -http-request-timeout instead of holding the connection for as long
// as the client likes.
func TestSlowRequestBodyIsCut(t *testing.T) {
	a := testApp(t, "-http-request-timeout", "1s")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, a, "127.0.0.1")
	const size = 100 // 10 s at this pace: ten times the timeout
	if _, err := io.WriteString(c, "POST /api/sessions HTTP/1.1\r\nHost: lectern\r\nAuthorization: Bearer "+a.adminToken+
		"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "closed: " + err.Error()
			return
		}
		resp.Body.Close()
		answered <- resp.Status
	}()
	for i := 0; i < size; i++ {
		select {
		case how := <-answered:
			if !strings.HasPrefix(how, "408") {
				t.Fatalf("cut after %d of %d bytes with %q, want a 408 answer", i, size, how)
			}
			t.Logf("cut after %d of %d bytes: %s", i, size, how)
			return
		default:
		}
		if _, err := c.Write([]byte{' '}); err != nil {
			if how := <-answered; !strings.HasPrefix(how, "408") {
				t.Fatalf("cut after %d of %d bytes (%v) with %q, want a 408 answer", i, size, err, how)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("a %d-byte body sent at 10 bytes/s was read to its end (answer %q): no request timeout", size, <-answered)
}

// TestConnectionsPerAddressAreCapped: with -max-conns-per-ip 3, a fourth
// connection from 127.0.0.1 is closed at once and counted, while another address
// (127.0.0.2) is still served; a connection that ends frees its place.
func TestConnectionsPerAddressAreCapped(t *testing.T) {
	a := testApp(t, "-max-conns-per-ip", "3")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, a, "127.0.0.1")
		if code, err := roundTrip(c, bufio.NewReader(c), "/healthz"); err != nil || code != 200 {
			t.Fatalf("connection %d: %d %v", i+1, code, err)
		}
		held = append(held, c)
	}
	extra := dialFrom(t, a, "127.0.0.1")
	if code, err := roundTrip(extra, bufio.NewReader(extra), "/healthz"); err == nil {
		t.Fatalf("a fourth connection from 127.0.0.1 was served (%d)", code)
	}
	other := dialFrom(t, a, "127.0.0.2")
	br := bufio.NewReader(other)
	if code, err := roundTrip(other, br, "/healthz"); err != nil || code != 200 {
		t.Fatalf("127.0.0.2 is refused too: %d %v", code, err)
	}
	_ = other.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(other, "GET /metrics HTTP/1.1\r\nHost: lectern\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "lectern_http_connections_refused_total 1") {
		t.Errorf("the refusal is not counted in /metrics:\n%s", grepLines(string(metrics), "lectern_http_conn"))
	}

	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialFrom(t, a, "127.0.0.1")
		code, err := roundTrip(c, bufio.NewReader(c), "/healthz")
		c.Close()
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection did not free its place: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEventStreamOutlivesRequestTimeout: the request timeout bounds ordinary
// requests only. An event stream opened on a keep-alive connection after an
// ordinary request (whose deadlines it must not inherit) lives past the
// timeout and still delivers the session's end.
func TestEventStreamOutlivesRequestTimeout(t *testing.T) {
	a := testApp(t, "-http-request-timeout", "1s")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	code, body, _ := post(t, base+"/api/sessions", a.adminToken, "application/json", `{"title":"Dài hơn một giây"}`)
	if code != 201 {
		t.Fatalf("create session: %d %s", code, body)
	}
	var sess struct{ ID string }
	_ = json.Unmarshal([]byte(body), &sess)

	c := dialFrom(t, a, "127.0.0.1")
	br := bufio.NewReader(c)
	if code, err := roundTrip(c, br, "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz: %d %v", code, err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /api/sessions/"+sess.ID+"/events HTTP/1.1\r\nHost: lectern\r\nAuthorization: Bearer "+a.adminToken+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("event stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	waitEvent := func(typ string) {
		t.Helper()
		for events.Scan() {
			if events.Text() == "event: "+typ {
				return
			}
		}
		t.Fatalf("the stream ended before %q: %v", typ, events.Err())
	}
	waitEvent("snapshot")
	time.Sleep(3 * time.Second) // past the request timeout, and twice it
	req, _ := http.NewRequest("DELETE", base+"/api/sessions/"+sess.ID, nil)
	req.Header.Set("Authorization", "Bearer "+a.adminToken)
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	del.Body.Close()
	waitEvent("session.ended")
}

// TestReadyzReportsLostMedia: while a lecture is recorded and its segments
// cannot be written to the spool, /readyz says recordings are losing media; once
// the spool takes them again it is ready again.
func TestReadyzReportsLostMedia(t *testing.T) {
	a := testApp(t, "-segment-duration", "1s")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, pub := publishTo(ctx, t, base, a.adminToken, "Đĩa đầy")
	defer pub.Close()
	defer playSynthetic(ctx, pub)()
	waitReadyz(t, a, 200, "ready")

	// The recording's segments go to <spool>/<recording>/: with the spool
	// replaced by a file once the recording has begun, each one is lost. (Replaced
	// before, the recording could not start at all: the spool probe reports that.)
	spool := filepath.Join(a.cfg.DataDir, "spool")
	deadline := time.Now().Add(20 * time.Second)
	for {
		dirs, _ := os.ReadDir(spool)
		started := false
		for _, d := range dirs {
			started = started || d.IsDir()
		}
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no recording began in the spool")
		}
		time.Sleep(50 * time.Millisecond)
	}
	putBackSpool := replaceWithFile(t, spool)
	waitReadyz(t, a, 503, "recordings are losing media")
	putBackSpool()
	waitReadyz(t, a, 200, "ready")
}
