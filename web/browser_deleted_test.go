package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"lectern/auth"
)

// requestCounter is a slog.Handler that counts the server's access-log lines
// ("request", logged when a request ends) by method and kind ("GET events",
// "POST whep"): the server side of what the pages ask for, without touching the
// handler.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// requestKind classifies a request path: an event stream, a WHEP or WHIP request.
func requestKind(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/sessions/") && strings.HasSuffix(path, "/events"):
		return "events"
	case strings.HasPrefix(path, "/whep/"):
		return "whep"
	case strings.HasPrefix(path, "/whip/"):
		return "whip"
	}
	return ""
}

func (c *requestCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *requestCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *requestCounter) WithGroup(string) slog.Handler            { return c }

func (c *requestCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "request" {
		return nil
	}
	var method, kind string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "path":
			kind = requestKind(a.Value.String())
		}
		return true
	})
	if kind != "" {
		c.mu.Lock()
		c.n[method+" "+kind]++
		c.mu.Unlock()
	}
	return nil
}

// counts returns the requests counted so far, by kind.
func (c *requestCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// TestBrowserSessionDeleted: a session deleted while its studio is live and a
// classroom plays it: both pages say "Buổi học đã bị xoá" (in English after the
// language switch), stop their media and make no further requests: no event
// stream (the server counts them), no WHEP or WHIP reconnection.
func TestBrowserSessionDeleted(t *testing.T) {
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	reqs := &requestCounter{n: map[string]int{}}
	s := newStack(t, stackOptions{pages: pages, timeout: 3 * time.Minute, config: func(c *Config) {
		c.Logger = slog.New(reqs)
	}})
	id := s.createSession("Buổi học sắp bị xoá")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	site := s.token(id, auth.RoleSite, "hue")
	b := newBrowser(t)

	studio := b.tab("studio-deleted")
	studio.open(s.url + "/studio/" + id + "?token=" + trainer)
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitJS("live badge", `document.getElementById('live-badge').dataset.live === 'on'`, 20*time.Second)
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)
	studio.waitJS("camera and microphone captured", `window.lectern.health().then(h => h.capturing)`, 5*time.Second)
	room := b.tab("room-deleted")
	room.open(s.url + "/room/" + id + "?token=" + site)
	room.waitRising("main.framesDecoded", 20, 30*time.Second)
	room.waitJS("stage playing", `document.getElementById('stage').dataset.state === 'playing'`, 10*time.Second)
	if n := reqs.counts(); n["POST whip"] < 1 || n["POST whep"] < 1 {
		t.Fatalf("the access log counted %v: the counter sees nothing", n)
	}

	if resp, body := s.do("DELETE", "/api/sessions/"+id, testAdmin, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE session: %d %s", resp.StatusCode, body)
	}
	for _, tb := range []*tab{room, studio} {
		tb.waitJS("deleted notice", `document.body.dataset.state === 'deleted'`, 15*time.Second)
		if got := tb.text("main h1"); got != "Buổi học đã bị xoá" {
			t.Errorf("%s: heading %q", tb.name, got)
		}
		if got := tb.text("main .fatal-message"); !strings.Contains(got, "không còn phát") {
			t.Errorf("%s: message %q", tb.name, got)
		}
		if got := tb.text("#live-badge"); tb.hidden("#live-badge") || got == "ĐANG PHÁT" {
			t.Errorf("%s: live badge %q after the deletion", tb.name, got)
		}
	}
	room.screenshot("room-deleted")
	studio.screenshot("studio-deleted")
	room.waitJS("the classroom's players stopped", `window.lectern.health().then(h => h.stage === 'deleted' && h.main === null && !h.speaking && Object.keys(h.speakers).length === 0)`, 10*time.Second)
	studio.waitJS("the studio's publication stopped, camera and microphone released",
		`window.lectern.health().then(h => !h.publishing && h.publisher === null && !h.capturing)`, 10*time.Second)
	room.click("#lang-switch")
	room.waitJS("English", `document.documentElement.lang === 'en'`, 5*time.Second)
	if got := room.text("main h1"); got != "The session was deleted" {
		t.Errorf("English heading %q", got)
	}
	if got := room.text("main .fatal-message"); !strings.Contains(got, "no longer plays here") {
		t.Errorf("English message %q", got)
	}
	room.click("#lang-switch")

	// Both event streams have ended (the access log counts a request when it ends).
	eventually(t, "the two event streams to end", 10*time.Second, func() bool { return reqs.counts()["GET events"] >= 2 })
	before := reqs.counts()
	// A page that still watched would ask again within Chromium's EventSource
	// reconnection delay (3 s) or the pages' own first retry (1 s); a player that
	// still played would offer WHEP (or WHIP) again within its first backoff
	// (1 s). Twice the longest of these passes in silence. (The players' DELETE
	// of their ended resources is no new connection.)
	time.Sleep(6 * time.Second)
	after := reqs.counts()
	for _, kind := range []string{"GET events", "POST whep", "POST whip"} {
		if after[kind] != before[kind] {
			t.Errorf("%s requests after the deletion: %d, then %d (the pages keep asking)", kind, before[kind], after[kind])
		}
	}
	if sess, ok := s.reg.Lookup(id); ok && (sess.Live() || sess.Subscribers() > 0) {
		t.Errorf("the deleted session is live (%v) with %d subscribers", sess.Live(), sess.Subscribers())
	}
	// The players' last DELETE of their resources (already ended by the server)
	// is a 404 the console reports.
	for _, tb := range []*tab{room, studio} {
		tb.noConsoleErrors("Failed to load resource")
	}
}
