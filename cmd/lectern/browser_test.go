package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The secure-origin tests drive the real pages in headless Chromium (Debian's chromium)
// against the real server, on a name that is not localhost: browsers treat localhost as
// secure, so only another name shows what a classroom on the network sees. The name
// reaches 127.0.0.1 through --host-resolver-rules.

// chromium is one headless Chromium for a test, with a fake camera and microphone.
type chromium struct {
	t   *testing.T
	ctx context.Context
}

// newChromium starts Chromium with the extra flags, or fails the test with an install
// hint: a missing browser must never turn into a green run.
func newChromium(t *testing.T, extra map[string]any) *chromium {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): install it with `apt-get install chromium` or run scripts/test-deps.sh", err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 768)}
	flags := map[string]any{
		"headless": true, "no-sandbox": true, "disable-gpu": true, "disable-quic": true, "no-first-run": true,
		"disable-background-networking": true, "disable-component-update": true, "disable-sync": true,
		"disable-extensions": true, "disable-dev-shm-usage": true, "mute-audio": true, "password-store": "basic",
		"use-fake-device-for-media-stream": true, "use-fake-ui-for-media-stream": true,
		"allow-loopback-in-peer-connection": true, "disable-features": "Translate,WebRtcHideLocalIpsWithMdns",
		"autoplay-policy":     "no-user-gesture-required",
		"host-resolver-rules": "MAP " + tlsTestHost + " 127.0.0.1",
	}
	for k, v := range extra {
		flags[k] = v
	}
	for k, v := range flags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &chromium{t: t, ctx: ctx}
}

func (c *chromium) open(url string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		c.t.Fatalf("open %s: %v", url, err)
	}
}

func (c *chromium) click(sel string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))); err != nil {
		c.t.Fatalf("click %s: %v (page: %s)", sel, err, c.text("body"))
	}
}

// eval evaluates a JavaScript expression (promises awaited) into out.
func (c *chromium) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// waitJS waits until a JavaScript expression is true.
func (c *chromium) waitJS(what, expr string, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		var ok bool
		if last = c.eval(expr, &ok); last == nil && ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("waiting %v for %s (%s): last error %v; page text: %q", d, what, expr, last, c.text("body"))
}

// text returns the text of the first element matching sel.
func (c *chromium) text(sel string) string {
	var s string
	_ = c.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ''`, sel), &s)
	return s
}

// apiJSON sends a JSON request with the admin token and decodes the answer, which
// must have the wanted status.
func apiJSON(t *testing.T, client *http.Client, method, url, token, body string, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", method, url, resp.StatusCode, want)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

// sessionWithTokens creates a session and mints a token for each role.
func sessionWithTokens(t *testing.T, client *http.Client, base, admin string, roles ...string) (id string, tokens map[string]string) {
	t.Helper()
	var s struct{ ID string }
	apiJSON(t, client, "POST", base+"/api/sessions", admin, `{"title":"Bài giảng an toàn"}`, 201, &s)
	tokens = map[string]string{}
	for _, role := range roles {
		var m struct{ Token string }
		apiJSON(t, client, "POST", base+"/api/sessions/"+s.ID+"/tokens", admin, `{"role":"`+role+`","name":"`+role+`-hue"}`, 201, &m)
		tokens[role] = m.Token
	}
	return s.ID, tokens
}

// TestStudioOverHTTPSGetsCamera: the studio opened on https://lectern.test (not
// localhost) is a secure context, gets the camera and microphone and goes live: the
// server receives the trainer's video and audio.
func TestStudioOverHTTPSGetsCamera(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath, keyPath, leaf := ca.issue(t, dir, "", 2, tlsTestHost)
	ta := startTLSApp(t, dir+"/data", freePort(t, "tcp"), freePort(t, "tcp"), "-tls-cert", certPath, "-tls-key", keyPath)
	client := tlsTestClient(t, ca.pool())
	base := fmt.Sprintf("https://%s:%d", tlsTestHost, ta.httpsPort)
	id, tokens := sessionWithTokens(t, client, base, ta.admin, "trainer")

	// Chromium trusts this one certificate (by its key), as if a public CA had signed it.
	b := newChromium(t, map[string]any{"ignore-certificate-errors-spki-list": spkiHash(leaf)})
	// Plain HTTP leads there: the redirect.
	b.open(fmt.Sprintf("http://%s:%d/studio/%s?token=%s", tlsTestHost, ta.httpPort, id, tokens["trainer"]))
	b.waitJS("the studio on its https origin", fmt.Sprintf(`location.origin === %q && window.isSecureContext`, base), 20*time.Second)
	b.waitJS("the camera preview", `(() => { const s = document.getElementById('camera-preview').srcObject;
		return !!s && s.getVideoTracks().length === 1 && s.getVideoTracks()[0].readyState === 'live'; })()`, 20*time.Second)
	if strings.Contains(b.text("body"), "HTTPS") {
		t.Errorf("the studio on https shows the insecure-origin notice: %q", b.text("body"))
	}
	b.click("#golive")
	b.waitJS("the studio live", `window.lectern.health().then((h) => h.state === 'connected')`, 30*time.Second)

	// The server receives the trainer's camera and microphone.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var s struct {
			Publications []struct {
				Name   string
				Tracks []struct {
					Name, Kind string
					Packets    uint64
				}
			}
		}
		apiJSON(t, client, "GET", base+"/api/sessions/"+id, ta.admin, "", 200, &s)
		kinds := map[string]bool{}
		for _, p := range s.Publications {
			for _, tr := range p.Tracks {
				kinds[tr.Kind] = kinds[tr.Kind] || tr.Packets > 0
			}
		}
		if kinds["video"] && kinds["audio"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server has no trainer video and audio: %+v", s)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestPagesSayCameraNeedsHTTPS: opened over plain HTTP on a name that is not
// localhost, the studio says plainly that the camera and microphone need HTTPS (in the
// page's language), and so does a classroom, which speaks with them.
func TestPagesSayCameraNeedsHTTPS(t *testing.T) {
	port := freePort(t, "tcp")
	ta := startLectern(t, t.TempDir(), "-http", fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://%s:%d", tlsTestHost, port)
	id, tokens := sessionWithTokens(t, tlsTestClient(t, nil), base, ta.admin, "trainer", "site")

	b := newChromium(t, nil)
	b.open(fmt.Sprintf("%s/studio/%s?token=%s", base, id, tokens["trainer"]))
	b.waitJS("the studio's notice", `document.body.dataset.state === 'fatal'`, 20*time.Second)
	msg := b.text(".fatal-message")
	for _, want := range []string{"camera và micro", "HTTPS", base} {
		if !strings.Contains(msg, want) {
			t.Errorf("studio on %s says %q, want it to mention %q", base, msg, want)
		}
	}

	b.open(fmt.Sprintf("%s/room/%s?token=%s", base, id, tokens["site"]))
	b.waitJS("the classroom's notice", `[...document.querySelectorAll('.notice')].some((n) => n.textContent.includes('HTTPS'))`, 20*time.Second)
	if !strings.Contains(b.text("#notices"), "camera và micro") {
		t.Errorf("classroom notice %q is not the Vietnamese one", b.text("#notices"))
	}
}
