package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"lectern/auth"
	"lectern/catalog"
)

// TestAuthFailuresLimited: an address that sends too many wrong tokens gets 429
// with Retry-After and a reason, even for the right admin token, while tokens we
// signed keep working from it.
func TestAuthFailuresLimited(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Bài 1")
	viewer := s.token(id, auth.RoleViewer, "v1")
	for i := range auth.DefaultFailureBurst {
		resp, body := s.do("POST", "/api/sessions", fmt.Sprintf("guess-%02d-xxxxxxxxxxxxxxxx", i), "application/json", `{"title":"x"}`)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong admin token %d: %d %s", i, resp.StatusCode, body)
		}
	}
	for _, tok := range []string{"guess-again-xxxxxxxxxxxxxxxx", testAdmin} {
		resp, body := s.do("POST", "/api/sessions", tok, "application/json", `{"title":"x"}`)
		var e errorBody
		_ = json.Unmarshal([]byte(body), &e)
		retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || e.Status != http.StatusTooManyRequests || !strings.Contains(e.Error, "too many failed") ||
			err != nil || retry < 1 {
			t.Fatalf("after %d wrong tokens: %d Retry-After %q %s", auth.DefaultFailureBurst, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := s.do("GET", "/api/sessions/"+id, viewer, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a valid viewer token from the same address: %d %s", resp.StatusCode, body)
	}
}

// TestDisplayNameRefusesBidi: a display name with a right-to-left override (or any
// bidirectional control) is refused with 400 and a reason.
func TestDisplayNameRefusesBidi(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Bài 1")
	for _, display := range []string{"Lớp \u202egnp.exe", "a\u2066b", "a\u200fb"} {
		body, _ := json.Marshal(map[string]string{"role": "site", "name": "hue", "display": display})
		resp, got := s.do("POST", "/api/sessions/"+id+"/tokens", testAdmin, "application/json", string(body))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, "bidirectional") {
			t.Errorf("display %q: %d %s", display, resp.StatusCode, got)
		}
	}
	resp, got := s.do("POST", "/api/sessions", testAdmin, "application/json", `{"title":"Bài \u202e1"}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("title with a bidi control: %d %s", resp.StatusCode, got)
	}
}

// lobbyIDs lists the session ids GET /api/sessions shows with token.
func lobbyIDs(t *testing.T, s *stack, token string) map[string]bool {
	t.Helper()
	resp, body := s.do("GET", "/api/sessions", token, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/sessions: %d %s", resp.StatusCode, body)
	}
	var list []sessionSummary
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range list {
		ids[c.ID] = true
	}
	return ids
}

func createListed(t *testing.T, s *stack, title string, listed bool) string {
	t.Helper()
	resp, body := s.do("POST", "/api/sessions", testAdmin, "application/json", fmt.Sprintf(`{"title":%q,"listed":%v}`, title, listed))
	var c catalog.Session
	if err := json.Unmarshal([]byte(body), &c); resp.StatusCode != http.StatusCreated || err != nil || c.Listed != listed {
		t.Fatalf("create %q listed=%v: %d %s", title, listed, resp.StatusCode, body)
	}
	return c.ID
}

// TestLobbyPrivacy: the lobby list shows anyone only the listed sessions; a token
// adds its own session; the admin sees all; -lobby-public shows all to anyone.
func TestLobbyPrivacy(t *testing.T) {
	s := newStack(t, stackOptions{})
	open := createListed(t, s, "Hội thảo công khai", true)
	private := createListed(t, s, "Họp nội bộ", false)
	other := createListed(t, s, "Lớp khác", false)
	site := s.token(private, auth.RoleSite, "hue")

	if got := lobbyIDs(t, s, ""); !got[open] || got[private] || got[other] {
		t.Errorf("anyone sees %v; want only the listed %s", got, open)
	}
	if got := lobbyIDs(t, s, site); !got[open] || !got[private] || got[other] {
		t.Errorf("a classroom of %s sees %v", private, got)
	}
	if got := lobbyIDs(t, s, testAdmin); !got[open] || !got[private] || !got[other] {
		t.Errorf("the admin sees %v", got)
	}
	if resp, _ := s.do("GET", "/api/sessions", "not-a-token", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a bad token: %d, want 401", resp.StatusCode)
	}
	if resp, body := s.do("GET", "/api/sessions/"+private, "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unlisted session read without a token: %d %s", resp.StatusCode, body)
	}

	pub := newStack(t, stackOptions{lobbyPublic: true})
	a := createListed(t, pub, "A", false)
	if got := lobbyIDs(t, pub, ""); !got[a] {
		t.Errorf("with LobbyPublic, anyone sees %v; want %s", got, a)
	}
}
