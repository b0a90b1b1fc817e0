package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/catalog"
)

// TestEmbedsDeletedWithRecording: deleting a recording revokes its embed tokens
// (their records leave the catalogue at once, rather than playing nothing until
// they expire); deleting it again is a 404.
func TestEmbedsDeletedWithRecording(t *testing.T) {
	var cat *catalog.Catalog
	s := newStack(t, stackOptions{recorder: true, timeout: 3 * time.Minute, config: func(c *Config) { cat = c.Catalog }})
	id := s.createSession("Bài giảng sẽ bị xoá")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	rec := recordedLecture(t, s, id, 4, publishClip(t, s, id, trainer))
	embeds := "/api/recordings/" + rec.ID + "/embeds"
	var tokens, ids []string
	for _, who := range []string{trainer, testAdmin} {
		resp, body := s.do("POST", embeds, who, "application/json", `{"label":"Cổng đào tạo"}`)
		var e embedResponse
		if err := json.Unmarshal([]byte(body), &e); resp.StatusCode != http.StatusCreated || err != nil {
			t.Fatalf("mint an embed: %d %s", resp.StatusCode, body)
		}
		tokens, ids = append(tokens, e.Token), append(ids, e.ID)
	}
	if n := len(cat.Embeds(rec.ID)); n != 2 {
		t.Fatalf("%d embed records before the deletion, want 2", n)
	}
	if resp, body := s.do("GET", "/api/recordings/"+rec.ID, tokens[0], "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the embed token before the deletion: %d %s", resp.StatusCode, body)
	}

	if resp, body := s.do("DELETE", "/api/recordings/"+rec.ID, trainer, "", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the trainer deletes the recording: %d %s", resp.StatusCode, body)
	}
	if n := len(cat.Embeds(rec.ID)); n != 2 {
		t.Fatalf("a refused deletion removed embed records: %d left", n)
	}
	if resp, body := s.do("DELETE", "/api/recordings/"+rec.ID, testAdmin, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete the recording: %d %s", resp.StatusCode, body)
	}
	if got := cat.Embeds(rec.ID); len(got) != 0 {
		t.Errorf("embed records left after the recording's deletion: %+v", got)
	}
	for i, tok := range tokens {
		if _, ok := cat.Embed(ids[i]); ok {
			t.Errorf("embed %s still honoured", ids[i])
		}
		// Revoked: the token is refused as a credential (401), wherever it is shown.
		if resp, body := s.do("GET", "/api/sessions/"+id+"/events", tok, "", ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
			t.Errorf("an embed token of the deleted recording: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := s.do("DELETE", "/api/recordings/"+rec.ID, testAdmin, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleting it again: %d %s", resp.StatusCode, body)
	}
}
