package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testrec"
)

// TestBrowserReplayRedirect: with replay redirects on (segments answered with a 302 to
// a presigned URL of a real MinIO), the replay page in Chromium plays: its
// Content-Security-Policy lets hls.js follow the redirect to the store, and the
// segments come from MinIO, not through Lectern. No CSP violation, no console error.
func TestBrowserReplayRedirect(t *testing.T) {
	s3, m := testrec.MinIOStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	origin, err := PresignedOrigin(ctx, s3)
	if err != nil || origin != "http://"+m.Endpoint {
		t.Fatalf("PresignedOrigin = %q, %v; want http://%s", origin, err, m.Endpoint)
	}
	pages, err := NewPages(WithMediaOrigin(origin))
	if err != nil {
		t.Fatal(err)
	}
	logged := &keyLog{testStore: s3}
	s := newStack(t, stackOptions{pages: pages, recorder: true, store: logged, replayRedirect: true, timeout: 5 * time.Minute})
	id := s.createSession("Bài giảng lưu trên S3")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	rec := recordedLecture(t, s, id, 6, publishClip(t, s, id, trainer))

	// A segment is a redirect to MinIO.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/replay/"+rec.ID+"/seg-000001.m4s", nil)
	req.Header.Set("Authorization", "Bearer "+learner)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), origin+"/") {
		t.Fatalf("segment: %d, Location %q; want a redirect to %s", resp.StatusCode, resp.Header.Get("Location"), origin)
	}
	if csp := pagesCSP(t, s.url+"/replays/"+rec.ID); !strings.Contains(csp, "connect-src 'self' "+origin) {
		t.Fatalf("replay page CSP %q does not let hls.js reach %s", csp, origin)
	}
	logged.reset()

	b := newBrowser(t)
	player := b.tab("replay-redirect")
	player.open(s.url + "/replays/" + rec.ID + "?token=" + learner)
	player.waitJS("player ready", `!!(window.lectern && window.lectern.player) && document.getElementById('video').readyState >= 1`, 30*time.Second)
	if err := player.eval(`document.getElementById('video').play().then(() => true)`, nil); err != nil {
		player.fail("play: %v", err)
	}
	player.waitJS("playing", `document.getElementById('video').currentTime > 2`, 30*time.Second)
	player.advancing("playing on", 0.5, 10*time.Second)
	player.noPlaybackError()
	player.screenshot("replay-redirect")
	player.noConsoleErrors()

	// The media came from MinIO: Lectern opened playlists only.
	for _, key := range logged.reset() {
		if strings.HasSuffix(key, ".m4s") || strings.HasSuffix(key, ".mp4") {
			t.Errorf("Lectern read %s itself: the redirect was not followed", key)
		}
	}
}

// pagesCSP returns the Content-Security-Policy of a page.
func pagesCSP(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Content-Security-Policy")
}
