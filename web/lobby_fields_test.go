package web

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"lectern/auth"
)

// lobbyFields returns the JSON fields of session id in GET /api/sessions with
// token, sorted; nil when the list does not have it.
func lobbyFields(t *testing.T, s *stack, token, id string) []string {
	t.Helper()
	resp, body := s.do("GET", "/api/sessions", token, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/sessions: %d %s", resp.StatusCode, body)
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("GET /api/sessions: %v: %s", err, body)
	}
	for _, c := range list {
		var got string
		if err := json.Unmarshal(c["id"], &got); err != nil || got != id {
			continue
		}
		return sortedKeys(c)
	}
	return nil
}

// createSessionWithSettings creates a session with the lobby's fields (title,
// description, schedule) and every setting (listed, public_replays,
// programme_video), and returns its id.
func createSessionWithSettings(t *testing.T, s *stack) string {
	t.Helper()
	resp, body := s.do("POST", "/api/sessions", testAdmin, "application/json",
		`{"title":"Hội thảo","description":"Bài 1","scheduled_at":"2030-01-02T08:00:00Z","listed":true,"public_replays":true,"programme_video":"speaker"}`)
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(body), &created); resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return created.ID
}

// TestLobbyFields: the lobby's list shows anyone, and a participant, only what a
// lobby needs (id, title, description, schedule, creation time, live); the
// session's settings (listed, public_replays, programme_video) only the admin.
func TestLobbyFields(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := createSessionWithSettings(t, s)
	public := []string{"created_at", "description", "id", "live", "scheduled_at", "title"}
	admin := []string{"created_at", "description", "id", "listed", "live", "programme_video", "public_replays", "scheduled_at", "title"}
	for _, tc := range []struct {
		who, token string
		want       []string
	}{
		{"anyone", "", public},
		{"a viewer", s.token(id, auth.RoleViewer, "v1"), public},
		{"a classroom", s.token(id, auth.RoleSite, "hue"), public},
		{"the trainer", s.token(id, auth.RoleTrainer, "trainer"), public},
		{"the admin", testAdmin, admin},
	} {
		if got := lobbyFields(t, s, tc.token, id); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees the fields %q, want %q", tc.who, got, tc.want)
		}
	}
}
