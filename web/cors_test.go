package web

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"lectern/auth"
)

// headerList splits a comma-separated header into its trimmed, upper-cased items.
func headerList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.ToUpper(strings.TrimSpace(item)); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// TestCORSPreflightEverywhere: every route that takes a Bearer token answers a CORS
// preflight from an allowed origin with 204, the origin, every method a page may use
// and the headers it asked for; WHIP/WHEP preflights keep advertising the ICE servers
// and name PATCH (trickle ICE). A plain OPTIONS to WHIP/WHEP says what it accepts. An
// unlisted origin gets no CORS headers.
func TestCORSPreflightEverywhere(t *testing.T) {
	s := newStack(t, stackOptions{recorder: true})
	id := s.createSession("Lecture")
	const origin = "https://portal.example.edu"
	for _, tc := range []struct {
		path, method string
		whip         bool
	}{
		{"/api/sessions", "POST", false},
		{"/api/sessions/" + id, "GET", false},
		{"/api/sessions/" + id, "DELETE", false},
		{"/api/sessions/" + id + "/tokens", "POST", false},
		{"/api/sessions/" + id + "/events", "GET", false},
		{"/api/sessions/" + id + "/hands", "POST", false},
		{"/api/sessions/" + id + "/speakers/hue", "PUT", false},
		{"/api/recordings", "GET", false},
		{"/api/recordings/abc", "DELETE", false},
		{"/replay/abc/index.m3u8", "GET", false},
		{"/replay/abc/seg-000001.m4s", "GET", false},
		{"/replay/abc/download.mp4", "GET", false},
		{"/whip/" + id, "POST", true},
		{"/whip/" + id + "/res", "PATCH", true},
		{"/whep/" + id, "POST", true},
		{"/whep/" + id + "/res", "PATCH", true},
		{"/whep/" + id + "/res", "DELETE", true},
	} {
		resp, body := s.do("OPTIONS", tc.path, "", "", "", "Origin", origin,
			"Access-Control-Request-Method", tc.method, "Access-Control-Request-Headers", "authorization,content-type")
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("preflight %s %s: %d %s, want 204", tc.method, tc.path, resp.StatusCode, body)
			continue
		}
		if got := h.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("preflight %s %s: Allow-Origin %q", tc.method, tc.path, got)
		}
		methods := headerList(h.Get("Access-Control-Allow-Methods"))
		if !slices.Contains(methods, tc.method) {
			t.Errorf("preflight %s %s: Allow-Methods %q lacks the method", tc.method, tc.path, methods)
		}
		if tc.whip && !slices.Contains(methods, "PATCH") {
			t.Errorf("preflight %s %s: Allow-Methods %q lacks PATCH (trickle ICE)", tc.method, tc.path, methods)
		}
		allowed := headerList(h.Get("Access-Control-Allow-Headers"))
		if !slices.Contains(allowed, "AUTHORIZATION") || !slices.Contains(allowed, "CONTENT-TYPE") {
			t.Errorf("preflight %s %s: Allow-Headers %q", tc.method, tc.path, allowed)
		}
	}

	// A WHIP client asks the endpoint itself what it supports (OPTIONS, no preflight):
	// Accept-Post and PATCH among the methods mean "offer here, trickle later".
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	resp, _ := s.do("OPTIONS", "/whip/"+id, trainer, "", "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Accept-Post") != mimeSDP ||
		!slices.Contains(headerList(resp.Header.Get("Access-Control-Allow-Methods")), "PATCH") {
		t.Errorf("plain OPTIONS /whip: %d, Accept-Post %q, Allow-Methods %q", resp.StatusCode,
			resp.Header.Get("Accept-Post"), resp.Header.Get("Access-Control-Allow-Methods"))
	}
	// Read from another origin, the answer must expose that header.
	resp, _ = s.do("OPTIONS", "/whip/"+id, trainer, "", "", "Origin", origin)
	if exposed := headerList(resp.Header.Get("Access-Control-Expose-Headers")); !slices.Contains(exposed, "ACCESS-CONTROL-ALLOW-METHODS") {
		t.Errorf("cross-origin OPTIONS /whip: exposed %q", exposed)
	}

	// An origin that is not listed learns nothing.
	resp, _ = s.do("OPTIONS", "/api/recordings", "", "", "", "Origin", "https://evil.example.com",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if got := resp.Header.Get("Access-Control-Allow-Origin") + resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
		t.Errorf("unlisted origin's preflight got %q", got)
	}
}
