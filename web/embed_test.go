package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
)

// TestEmbedTokens: the trainer (or the admin) mints an embed token for one
// recording; it plays that recording's replay and does nothing else; it lasts a
// year by default; the trainer lists and revokes it, and a revoked token stops
// working at once. Learners and other sessions' trainers cannot mint one.
func TestEmbedTokens(t *testing.T) {
	s := newStack(t, stackOptions{recorder: true, timeout: 3 * time.Minute})
	id := s.createSession("Bài giảng nhúng")
	other := s.createSession("Buổi khác")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	otherTrainer := s.token(other, auth.RoleTrainer, "trainer")
	rec := recordedLecture(t, s, id, 4, publishClip(t, s, id, trainer))
	embeds := "/api/recordings/" + rec.ID + "/embeds"

	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"no token":                {"", http.StatusUnauthorized},
		"learner":                 {learner, http.StatusForbidden},
		"another session trainer": {otherTrainer, http.StatusForbidden},
	} {
		if resp, body := s.do("POST", embeds, tc.token, "application/json", `{}`); resp.StatusCode != tc.want {
			t.Errorf("%s mints an embed: %d %s, want %d", name, resp.StatusCode, body, tc.want)
		}
	}
	if resp, body := s.do("POST", embeds, trainer, "application/json", `{"ttl":"87600h"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a ten-year embed: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("POST", "/api/sessions/"+id+"/tokens", testAdmin, "application/json", `{"role":"embed","name":"embed"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an embed token through the session tokens: %d %s", resp.StatusCode, body)
	}

	resp, body := s.do("POST", embeds, trainer, "application/json", `{"label":"Cổng đào tạo tỉnh"}`)
	var e embedResponse
	if err := json.Unmarshal([]byte(body), &e); resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("trainer mints an embed: %d %s", resp.StatusCode, body)
	}
	if e.Token == "" || e.ID == "" || e.Label != "Cổng đào tạo tỉnh" || e.CreatedBy != "trainer" ||
		time.Until(e.ExpiresAt) < 364*24*time.Hour ||
		!strings.Contains(e.EmbedHTML, `src="http://lectern.test/replays/`+rec.ID+`/embed?token=`+e.Token+`"`) ||
		strings.Contains(e.EmbedHTML, learner) || strings.Contains(e.EmbedHTML, trainer) {
		t.Fatalf("embed: %+v", e)
	}
	if c, err := s.issuer.Verify(e.Token); err != nil || c.Role != auth.RoleEmbed || c.Recording != rec.ID || c.Name != "embed" {
		t.Fatalf("embed token claims %+v, %v", c, err)
	}

	// What the embedded player needs: the recording, its playlist and segments
	// (token in the query or as a header), the download.
	for _, path := range []string{"/api/recordings/" + rec.ID, "/replay/" + rec.ID + "/index.m3u8?token=" + e.Token,
		"/replay/" + rec.ID + "/init.mp4", "/replay/" + rec.ID + "/seg-000001.m4s"} {
		if resp, body := s.do("GET", path, e.Token, "", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("embed token GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	if resp, _ := s.do("HEAD", "/replay/"+rec.ID+"/download.mp4", e.Token, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("embed token HEAD download: %d", resp.StatusCode)
	}
	// Nothing else.
	for _, tc := range []struct{ method, path, ct, body string }{
		{"GET", "/api/sessions/" + id, "", ""},
		{"GET", "/api/sessions/" + id + "/events", "", ""},
		{"POST", "/whep/" + id, "application/sdp", "v=0\r\n"},
		{"POST", "/api/sessions/" + id + "/hands", "", ""},
		{"GET", embeds, "", ""},
		{"POST", embeds, "application/json", "{}"},
		{"DELETE", "/api/recordings/" + rec.ID, "", ""},
	} {
		if resp, body := s.do(tc.method, tc.path, e.Token, tc.ct, tc.body); resp.StatusCode != http.StatusForbidden {
			t.Errorf("embed token %s %s: %d %.200s, want 403", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	resp, body = s.do("GET", "/api/recordings?session="+id, e.Token, "", "")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, rec.ID) {
		t.Errorf("an embed token lists the session's recordings: %d %.300s", resp.StatusCode, body)
	}

	// The admin mints one too; the trainer lists both and revokes the first.
	resp, body = s.do("POST", embeds, testAdmin, "application/json", `{"ttl":"720h"}`)
	var byAdmin embedResponse
	if err := json.Unmarshal([]byte(body), &byAdmin); resp.StatusCode != http.StatusCreated || err != nil || byAdmin.CreatedBy != "admin" {
		t.Fatalf("admin mints an embed: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("GET", embeds, trainer, "", "")
	var list struct{ Embeds []embedResponse }
	if err := json.Unmarshal([]byte(body), &list); resp.StatusCode != http.StatusOK || err != nil || len(list.Embeds) != 2 ||
		list.Embeds[0].ID != e.ID || list.Embeds[0].Token != "" || strings.Contains(body, e.Token) {
		t.Fatalf("list embeds: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("DELETE", embeds+"/"+e.ID, learner, "", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a learner revokes: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("DELETE", embeds+"/"+e.ID, trainer, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/replay/"+rec.ID+"/index.m3u8?token="+e.Token, "", "", ""); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(body, "revoked") {
		t.Errorf("a revoked embed token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("DELETE", embeds+"/"+e.ID, trainer, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoking twice: %d", resp.StatusCode)
	}
	if resp, _ := s.do("GET", "/api/recordings/"+rec.ID, byAdmin.Token, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("the other embed token after one was revoked: %d", resp.StatusCode)
	}
}
