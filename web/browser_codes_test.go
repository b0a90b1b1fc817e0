package web

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"lectern/auth"
)

// TestBrowserStudioDeviceCode: in the studio's invitation for a hall decoder the
// trainer makes a device code; the page shows the code and the RTSP address to
// give the decoder (rtsp://<name>:<code>@host:port/<session>), lists it, and the
// code works as ?token=; revoking it from the page lists it no more, and the code
// stops working.
func TestBrowserStudioDeviceCode(t *testing.T) {
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{pages: pages, timeout: 3 * time.Minute,
		config: func(c *Config) { c.RTSPURL = "rtsp://lectern.test:8554" }})
	id := s.createSession("Chuyển đổi số — Bài 1")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	b := newBrowser(t)
	studio := b.tab("studio")
	studio.open(s.url + "/studio/" + id + "?token=" + trainer)
	studio.waitJS("the studio loaded", `document.getElementById('session-title').textContent === 'Chuyển đổi số — Bài 1'`, 20*time.Second)

	if err := studio.eval(`(() => { document.getElementById('device-name').value = 'hall-a';
		document.getElementById('device-role').value = 'viewer'; return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	studio.click("#device-mint")
	studio.waitJS("the new code shown", `!document.getElementById('device-new').hidden`, 15*time.Second)
	code := studio.text("#device-code")
	if !regexp.MustCompile(`^[2-9a-hjkmnp-z]{4}(-[2-9a-hjkmnp-z]{4}){3}$`).MatchString(code) {
		t.Fatalf("the page shows code %q", code)
	}
	var rtspURL string
	if err := studio.eval(`document.getElementById('device-url').value`, &rtspURL); err != nil {
		t.Fatal(err)
	}
	if want := "rtsp://hall-a:" + code + "@lectern.test:8554/" + id; rtspURL != want {
		t.Fatalf("the page shows RTSP address %q, want %q", rtspURL, want)
	}
	studio.waitJS("the code listed", `!!document.querySelector('#devices li[data-name="hall-a"]')`, 10*time.Second)
	studio.screenshot("studio-device-code")
	if resp, body := s.do("GET", "/api/sessions/"+id+"?token="+code, "", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the code from the page as ?token=: %d %s", resp.StatusCode, body)
	}

	studio.click(`#devices li[data-name="hall-a"] button[data-action="revoke"]`)
	studio.waitJS("the code no longer listed", `!document.querySelector('#devices li')`, 10*time.Second)
	if resp, body := s.do("GET", "/api/sessions/"+id+"?token="+code, "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the revoked code: %d %s, want 401", resp.StatusCode, body)
	}
	// The page may complain about the camera (headless Chromium's fake one is fine) but not about the codes.
	studio.noConsoleErrors("getUserMedia", "NotAllowedError", "NotFoundError")
}
