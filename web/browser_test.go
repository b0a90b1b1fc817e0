package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests drive the real pages in headless Chromium (Debian's chromium
// package) against a full Lectern stack on 127.0.0.1, with Chromium's fake camera and
// microphone. Screenshots go to artifacts/browser/ at the repository root (gitignored),
// or to $LECTERN_ARTIFACTS.

// chromiumFlags are what Chromium needs here: no sandbox (root), fake media devices
// and permission prompts, autoplay with sound, and host candidates on loopback
// (no mDNS names, loopback allowed).
var chromiumFlags = map[string]any{
	"headless":                               true,
	"no-sandbox":                             true,
	"disable-gpu":                            true,
	"disable-quic":                           true,
	"no-first-run":                           true,
	"no-default-browser-check":               true,
	"disable-background-networking":          true,
	"disable-component-update":               true,
	"disable-sync":                           true,
	"disable-extensions":                     true,
	"disable-dev-shm-usage":                  true,
	"disable-background-timer-throttling":    true,
	"disable-backgrounding-occluded-windows": true,
	"disable-renderer-backgrounding":         true,
	"autoplay-policy":                        "no-user-gesture-required",
	"use-fake-device-for-media-stream":       true,
	"use-fake-ui-for-media-stream":           true,
	"auto-accept-this-tab-capture":           true,
	"allow-loopback-in-peer-connection":      true,
	"disable-features":                       "Translate,WebRtcHideLocalIpsWithMdns",
	"hide-scrollbars":                        true,
	"mute-audio":                             true,
	"force-color-profile":                    "srgb",
	"password-store":                         "basic",
	"use-mock-keychain":                      true,
	"enable-automation":                      true,
	"disable-client-side-phishing-detection": true,
	"disable-hang-monitor":                   true,
	"disable-popup-blocking":                 true,
	"disable-prompt-on-repost":               true,
	"metrics-recording-only":                 true,
	"safebrowsing-disable-auto-update":       true,
	"disable-ipc-flooding-protection":        true,
	"disable-breakpad":                       true,
	"disable-default-apps":                   true,
	"disable-domain-reliability":             true,
	"no-pings":                               true,
}

// browser is one headless Chromium for a test; its tabs share it.
type browser struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	dir    string // screenshots
}

// newBrowser starts Chromium, or fails the test with an install hint: a missing
// browser must never turn into a green run.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): install it with `apt-get install chromium` or run scripts/test-deps.sh", err)
	}
	return newBrowserAt(t, path, nil)
}

// newBrowserAt starts the Chromium that path runs (e.g. a script that runs it in a
// network namespace: chromedp talks to it over a pipe, which such a wrapper keeps),
// with chromiumFlags and extra (which wins).
func newBrowserAt(t *testing.T, path string, extra map[string]any) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 768)}
	for name, v := range chromiumFlags {
		if _, ok := extra[name]; !ok {
			opts = append(opts, chromedp.Flag(name, v))
		}
	}
	for name, v := range extra {
		opts = append(opts, chromedp.Flag(name, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, dir: artifactsDir(t)}
	b.cancel = func() {
		cancel()
		cancelAlloc()
	}
	t.Cleanup(b.cancel)
	return b
}

// artifactsDir is where screenshots go: $LECTERN_ARTIFACTS, or artifacts/browser at
// the repository root (which .gitignore lists).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LECTERN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// tab is one page in the browser; it records what the page writes to the console.
type tab struct {
	t      *testing.T
	name   string
	b      *browser
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// tab opens a tab with the viewport of a classroom PC (1366×768).
func (b *browser) tab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("tab %s: %v", name, err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		cancel()
		b.t.Fatalf("tab %s: viewport: %v", name, err)
	}
	tb := &tab{t: b.t, name: name, b: b, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(tb.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	b.t.Cleanup(tb.close)
	return tb
}

func (tb *tab) close() {
	tb.cancel()
	<-tb.done
}

// run runs actions with a deadline.
func (tb *tab) run(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

func (tb *tab) open(url string) {
	tb.t.Helper()
	if err := tb.run(20*time.Second, chromedp.Navigate(url)); err != nil {
		tb.t.Fatalf("%s: open %s: %v", tb.name, url, err)
	}
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	if err := tb.run(20*time.Second, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))); err != nil {
		tb.fail("click %s: %v", sel, err)
	}
}

func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	if err := tb.run(20*time.Second, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		tb.fail("type into %s: %v", sel, err)
	}
}

// eval evaluates a JavaScript expression (promises are awaited) into out.
func (tb *tab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// waitJS waits until a JavaScript expression (awaited) is true.
func (tb *tab) waitJS(what, expr string, d time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		var ok bool
		if last = tb.eval(expr, &ok); last == nil && ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	// What the page reports says why, where it has a report.
	var h map[string]any
	_ = tb.eval(`window.lectern && window.lectern.health ? window.lectern.health() : null`, &h)
	tb.fail("waiting %v for %s (%s): last error %v; health %v", d, what, expr, last, h)
}

// health returns the page's window.lectern.health() report.
func (tb *tab) health() map[string]any {
	tb.t.Helper()
	var h map[string]any
	if err := tb.eval(`window.lectern && window.lectern.health ? window.lectern.health() : null`, &h); err != nil {
		tb.fail("health: %v", err)
	}
	return h
}

// text returns the text of the first element matching sel.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var s string
	if err := tb.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel), &s); err != nil {
		tb.fail("text of %s: %v", sel, err)
	}
	return s
}

// hidden reports whether the first element matching sel is missing or hidden.
func (tb *tab) hidden(sel string) bool {
	tb.t.Helper()
	var h bool
	if err := tb.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !e || e.hidden })()`, sel), &h); err != nil {
		tb.fail("hidden %s: %v", sel, err)
	}
	return h
}

// screenshot saves the viewport as name.png.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Errorf("%s: screenshot %s: %v", tb.name, name, err)
		return
	}
	path := filepath.Join(tb.b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Errorf("writing %s: %v", path, err)
	}
}

// viewport resizes the page (e.g. to a phone's size).
func (tb *tab) viewport(w, h int64, mobile bool) {
	tb.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if mobile {
		opts = append(opts, chromedp.EmulateScale(2))
	}
	if err := tb.run(10*time.Second, chromedp.EmulateViewport(w, h, opts...)); err != nil {
		tb.fail("viewport: %v", err)
	}
}

// firstPaint checks that the page painted content and reports when. The < 1 s
// target is a figure to read in the test log (-v), not a pass/fail condition: a
// loaded CI machine must not turn a timing into a failure.
func (tb *tab) firstPaint() {
	tb.t.Helper()
	tb.waitJS("first contentful paint", `performance.getEntriesByName('first-contentful-paint').length > 0`, 10*time.Second)
	var ms float64
	if err := tb.eval(`performance.getEntriesByName('first-contentful-paint')[0].startTime`, &ms); err != nil {
		tb.fail("first paint: %v", err)
	}
	tb.t.Logf("%s: first contentful paint after %.0f ms (target < 1000 ms)", tb.name, ms)
}

// consoleErrors returns the errors and exceptions the page logged, except those
// whose text contains one of allow.
func (tb *tab) consoleErrors(allow ...string) []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		allowed := false
		for _, a := range allow {
			// The text, and after it the address it is about (a failed load's).
			allowed = allowed || strings.Contains(m.Text+" "+m.URL, a)
		}
		if !allowed {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
		}
	}
	return out
}

// noConsoleErrors fails the test if the page logged an error.
func (tb *tab) noConsoleErrors(allow ...string) {
	tb.t.Helper()
	for _, e := range tb.consoleErrors(allow...) {
		tb.t.Errorf("%s: console: %s", tb.name, e)
	}
}

// fail saves a screenshot and the console, then fails the test.
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	tb.screenshot("failed-" + tb.name)
	tb.mu.Lock()
	for _, m := range tb.console {
		tb.t.Logf("%s console: %s", tb.name, m.String())
	}
	tb.mu.Unlock()
	tb.t.Fatalf("%s: "+format, append([]any{tb.name}, args...)...)
}

// number reads a numeric field of a JSON value by path ("main.videos.1.framesDecoded").
func number(v any, path string) float64 {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return 0
			}
			v = x[i]
		default:
			return 0
		}
	}
	f, _ := v.(float64)
	return f
}

// waitRising waits until a numeric field of the page's health report grows by at
// least by, from its value now: media is flowing, not just connected.
func (tb *tab) waitRising(path string, by float64, d time.Duration) {
	tb.t.Helper()
	start := number(tb.health(), path)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if number(tb.health(), path)-start >= by {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	tb.fail("%s did not rise by %v in %v (from %v; health %v)", path, by, d, start, tb.health())
}

// apiGet GETs an API path with the admin token, with its own deadline (the stack's
// context may be older than the browser test's steps).
func apiGet(t *testing.T, s *stack, path string, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond until it is true or d passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// pagesStack is a full Lectern stack with the web pages and a recorder (see
// stackOptions.recorder), so the replay pages have a real API behind them.
func pagesStack(t *testing.T) *stack {
	t.Helper()
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	return newStack(t, stackOptions{pages: pages, recorder: true, timeout: 5 * time.Minute})
}
