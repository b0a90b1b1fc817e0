package web

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/events"
	"lectern/internal/testpeer"
)

// sortedKeys returns the keys of a JSON object, sorted.
func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// snapshotOf returns the data of the first event of a session's event stream
// read with token: the snapshot.
func snapshotOf(t *testing.T, s *stack, id, token string) map[string]json.RawMessage {
	t.Helper()
	ev := s.subscribeEvents(id, token)
	defer ev.close()
	first := ev.waitFor(t, events.TypeSnapshot, "")
	b, err := json.Marshal(first.Data)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("snapshot: %v: %s", err, b)
	}
	return m
}

// TestSessionFields: GET /api/sessions/{id} and its event stream's snapshot show the
// session's settings (listed, public_replays, programme_video) only to those who
// manage it, the admin and its trainer (token or device code); a classroom and a
// viewer (tokens or device codes) get what their pages read: the lobby's fields
// (title, description, schedule) and the live state (live, publications,
// subscribers, hands, speakers).
func TestSessionFields(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := createSessionWithSettings(t, s)
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	site := s.token(id, auth.RoleSite, "hue")

	// The session is live (the trainer publishes) and a classroom has raised its
	// hand: the live state the members see is not empty.
	watch := s.subscribeEvents(id, testAdmin)
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, stop := context.WithCancel(s.ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		_ = pub.Play(ctx, testpeer.SyntheticClip(time.Second, 30, 30, 1000), nil) // looped until stop
	}()
	defer func() { stop(); <-played }()
	watch.waitFor(t, events.TypeSessionLive, "")
	if resp, body := s.do("POST", "/api/sessions/"+id+"/hands", site, "", ""); resp.StatusCode/100 != 2 {
		t.Fatalf("raise a hand: %d %s", resp.StatusCode, body)
	}
	watch.waitFor(t, events.TypeHands, "hue")
	watch.close()

	live := []string{"hands", "live", "publications", "speakers", "subscribers"}
	member := slices.Sorted(slices.Values(append([]string{"created_at", "description", "id", "scheduled_at", "title"}, live...)))
	manager := slices.Sorted(slices.Values(append(slices.Clone(member), "listed", "programme_video", "public_replays")))
	for _, tc := range []struct {
		who, token string
		want       []string
	}{
		{"the admin", testAdmin, manager},
		{"the trainer", trainer, manager},
		{"the trainer's device code", s.mintCode(id, testAdmin, `{"role":"trainer","name":"studio-pc"}`).Code, manager},
		{"a classroom", site, member},
		{"a classroom's device code", s.mintCode(id, testAdmin, `{"role":"site","name":"hall-a"}`).Code, member},
		{"a viewer", s.token(id, auth.RoleViewer, "v1"), member},
	} {
		resp, body := s.do("GET", "/api/sessions/"+id, tc.token, "", "")
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("%s: GET: %d %s", tc.who, resp.StatusCode, body)
		}
		snap := snapshotOf(t, s, id, tc.token)
		for what, m := range map[string]map[string]json.RawMessage{"GET /api/sessions/{id}": got, "the events' snapshot": snap} {
			if keys := sortedKeys(m); !slices.Equal(keys, tc.want) {
				t.Errorf("%s sees in %s the fields %q, want %q", tc.who, what, keys, tc.want)
			}
			// What the pages read is there, with its value.
			for k, want := range map[string]string{"title": `"Hội thảo"`, "description": `"Bài 1"`, "scheduled_at": `"2030-01-02T08:00:00Z"`, "live": "true"} {
				if string(m[k]) != want {
					t.Errorf("%s sees in %s %s = %s, want %s", tc.who, what, k, m[k], want)
				}
			}
			if !strings.Contains(string(m["publications"]), `"name":"trainer"`) || !strings.Contains(string(m["hands"]), `"participant":"hue"`) {
				t.Errorf("%s sees in %s publications %s, hands %s; want the trainer's and hue's hand", tc.who, what, m["publications"], m["hands"])
			}
			if slices.Equal(tc.want, manager) {
				for k, want := range map[string]string{"listed": "true", "public_replays": "true", "programme_video": `"speaker"`} {
					if string(m[k]) != want {
						t.Errorf("%s sees in %s %s = %s, want %s", tc.who, what, k, m[k], want)
					}
				}
			}
		}
	}
}
