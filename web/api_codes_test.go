package web

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/catalog"
)

// mintCode asks for a device code and returns the answer.
func (s *stack) mintCode(session, token, body string) codeResponse {
	s.t.Helper()
	resp, b := s.do("POST", "/api/sessions/"+session+"/codes", token, "application/json", body)
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("mint code %s: %d %s", body, resp.StatusCode, b)
	}
	var c codeResponse
	if err := json.Unmarshal([]byte(b), &c); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// TestDeviceCodes: the admin and the session's trainer mint short device codes;
// a code works as ?token= and as a Bearer token with the rights of its role and
// name (a site code cannot publish, is for its session only), lists without the
// code, and stops working when revoked or expired; who may not mint gets 403, bad
// requests 400.
func TestDeviceCodes(t *testing.T) {
	var cat *catalog.Catalog
	st := newStack(t, stackOptions{config: func(c *Config) {
		cat = c.Catalog
		c.RTSPURL = "rtsp://lectern.test:8554"
	}})
	sess := st.createSession("Bài 1")
	other := st.createSession("Bài 2")
	trainer := st.token(sess, auth.RoleTrainer, "gv")

	c := st.mintCode(sess, testAdmin, `{"role":"site","name":"hall-a","display":"Hội trường A","ttl":"720h"}`)
	if len(c.Code) < 12 || len(c.Code) > 20 {
		t.Fatalf("code %q is %d characters, want 12-20", c.Code, len(c.Code))
	}
	if c.Role != auth.RoleSite || c.Name != "hall-a" || c.Display != "Hội trường A" || c.CreatedBy != "admin" {
		t.Fatalf("code answer = %+v", c)
	}
	if d := time.Until(c.ExpiresAt); d < 719*time.Hour || d > 721*time.Hour {
		t.Fatalf("code expires in %v, want 720h", d)
	}
	if want := "rtsp://hall-a:" + c.Code + "@lectern.test:8554/" + sess; c.RTSPURL != want {
		t.Fatalf("rtsp_url = %q, want %q", c.RTSPURL, want)
	}

	// As ?token= and as Bearer, typed in upper case without dashes too.
	for _, tok := range []string{c.Code, strings.ToUpper(strings.ReplaceAll(c.Code, "-", ""))} {
		if resp, b := st.do("GET", "/api/sessions/"+sess+"?token="+url.QueryEscape(tok), "", "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET session with the code as ?token=: %d %s", resp.StatusCode, b)
		}
		if resp, b := st.do("GET", "/api/sessions/"+sess, tok, "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET session with the code as Bearer: %d %s", resp.StatusCode, b)
		}
	}
	// Its role's rules: a classroom raises its hand (as participant hall-a), does not publish without the floor.
	if resp, b := st.do("POST", "/api/sessions/"+sess+"/hands", c.Code, "", ""); resp.StatusCode/100 != 2 {
		t.Fatalf("a site code raising its hand: %d %s", resp.StatusCode, b)
	}
	if resp, b := st.do("GET", "/api/sessions/"+sess, testAdmin, "", ""); !strings.Contains(b, `"hall-a"`) {
		t.Fatalf("the hand is not the code's participant: %d %s", resp.StatusCode, b)
	}
	if resp, b := st.do("POST", "/whip/"+sess, c.Code, "application/sdp", "v=0\r\n"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a site code publishing without the floor: %d %s, want 403", resp.StatusCode, b)
	}
	if resp, b := st.do("GET", "/api/sessions/"+other, c.Code, "", ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a code of one session in another: %d %s, want 403", resp.StatusCode, b)
	}
	if resp, b := st.do("POST", "/api/sessions/"+sess+"/codes", c.Code, "application/json", `{"role":"site"}`); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a site code minting codes: %d %s, want 403", resp.StatusCode, b)
	}

	// The trainer mints too, never past its own token (1h); the list shows no code or hash.
	v := st.mintCode(sess, trainer, `{"role":"viewer","name":"screen-2","ttl":"2160h"}`)
	if v.CreatedBy != "gv" || time.Until(v.ExpiresAt) > time.Hour+time.Minute {
		t.Fatalf("trainer's code: by %q, expires in %v (the trainer's token ends in 1h)", v.CreatedBy, time.Until(v.ExpiresAt))
	}
	resp, b := st.do("GET", "/api/sessions/"+sess+"/codes", trainer, "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(b, c.ID) || !strings.Contains(b, v.ID) {
		t.Fatalf("list codes: %d %s", resp.StatusCode, b)
	}
	h, _ := auth.HashCode(c.Code)
	if strings.Contains(b, c.Code) || strings.Contains(b, v.Code) || strings.Contains(b, hex.EncodeToString(h[:])) {
		t.Fatalf("the list shows a code or its hash: %s", b)
	}
	if resp, _ := st.do("GET", "/api/sessions/"+sess+"/codes", st.token(sess, auth.RoleSite, "hue"), "", ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a site listing codes: %d, want 403", resp.StatusCode)
	}

	for _, bad := range []string{`{"role":"learner"}`, `{"role":"embed"}`, `{"role":"admin"}`, `{"role":"site","name":"Hall A"}`,
		`{"role":"site","ttl":"forever"}`, `{"role":"site","ttl":"1s"}`, `{"role":"site","ttl":"9000h"}`, `{"role":"site","display":"a\u202eb"}`} {
		resp, b := st.do("POST", "/api/sessions/"+sess+"/codes", testAdmin, "application/json", bad)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, `"status":400`) {
			t.Errorf("mint %s: %d %s, want 400", bad, resp.StatusCode, b)
		}
	}

	// Revoked: 401 at once; revoking again or through another session: 404.
	if resp, b := st.do("DELETE", "/api/sessions/"+other+"/codes/"+v.ID, testAdmin, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking through another session: %d %s", resp.StatusCode, b)
	}
	if resp, b := st.do("DELETE", "/api/sessions/"+sess+"/codes/"+v.ID, trainer, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	if resp, b := st.do("GET", "/api/sessions/"+sess+"?token="+v.Code, "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked code: %d %s, want 401", resp.StatusCode, b)
	}
	if resp, _ := st.do("DELETE", "/api/sessions/"+sess+"/codes/"+v.ID, trainer, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking twice: %d, want 404", resp.StatusCode)
	}

	// Expired: 401 saying so.
	code, hash, _ := auth.GenerateCode()
	if _, err := cat.AddCode(catalog.Code{ID: "old", Hash: hex.EncodeToString(hash[:]), Session: sess, Role: "viewer", Name: "old",
		CreatedBy: "admin", CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if resp, b := st.do("GET", "/api/sessions/"+sess+"?token="+code, "", "", ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "expired") {
		t.Fatalf("an expired code: %d %s, want 401 expired", resp.StatusCode, b)
	}

	// Deleting the session takes its codes.
	if resp, _ := st.do("DELETE", "/api/sessions/"+other, testAdmin, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete session: %d", resp.StatusCode)
	}
}

// TestDeviceCodeGuessesLimited: wrong codes count toward the failed-authentication
// limiter of the address; past it even the right code gets 429 with Retry-After,
// while a signed token still works from there.
func TestDeviceCodeGuessesLimited(t *testing.T) {
	st := newStack(t, stackOptions{})
	sess := st.createSession("Bài 1")
	site := st.token(sess, auth.RoleSite, "hue")
	c := st.mintCode(sess, testAdmin, `{"role":"viewer","name":"hall"}`)
	for i := range auth.DefaultFailureBurst {
		wrong, _, _ := auth.GenerateCode()
		resp, b := st.do("GET", "/api/sessions/"+sess+"?token="+wrong, "", "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d %s, want 401", i, resp.StatusCode, b)
		}
	}
	resp, b := st.do("GET", "/api/sessions/"+sess+"?token="+c.Code, "", "", "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right code after %d wrong ones: %d %s (Retry-After %q), want 429", auth.DefaultFailureBurst, resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if resp, b := st.do("GET", "/api/sessions/"+sess, site, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a signed token from the same address: %d %s", resp.StatusCode, b)
	}
}
