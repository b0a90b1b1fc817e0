package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testpeer"
)

// openStream opens an event stream with token and returns its status; an accepted
// stream stays open until the test ends or close is called.
func (s *stack) openStream(session, token string) (status int, body string, close func()) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/api/sessions/"+session+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return resp.StatusCode, string(b), func() {}
	}
	close = func() {
		cancel()
		resp.Body.Close()
	}
	s.t.Cleanup(close)
	return resp.StatusCode, "", close
}

// TestEventStreamLimits: one token holds at most DefaultEventStreamsPerToken streams
// and one address at most DefaultEventStreamsPerAddress; beyond, 429 with the reason.
// A stream that ends gives its place back.
func TestEventStreamLimits(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	tokens := []string{s.token(id, auth.RoleViewer, "hall")}
	var first func()
	for i := range DefaultEventStreamsPerToken {
		status, body, closeStream := s.openStream(id, tokens[0])
		if status != http.StatusOK {
			t.Fatalf("stream %d of one token: %d %s", i+1, status, body)
		}
		if i == 0 {
			first = closeStream
		}
	}
	status, body, _ := s.openStream(id, tokens[0])
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != http.StatusTooManyRequests ||
		e.Status != http.StatusTooManyRequests || !strings.Contains(e.Error, "this token") {
		t.Fatalf("stream beyond the token's limit: %d %s", status, body)
	}

	// A stream closed gives its place back (once the server has seen it go).
	first()
	eventually(t, "a place back for the token", 10*time.Second, func() bool {
		status, _, _ := s.openStream(id, tokens[0])
		return status == http.StatusOK
	})

	// Other tokens from the same address, up to the address's limit.
	open := DefaultEventStreamsPerToken
	for open < DefaultEventStreamsPerAddress {
		tok := s.token(id, auth.RoleSite, fmt.Sprintf("site-%d", len(tokens)))
		tokens = append(tokens, tok)
		for range min(DefaultEventStreamsPerToken, DefaultEventStreamsPerAddress-open) {
			if status, body, _ := s.openStream(id, tok); status != http.StatusOK {
				t.Fatalf("stream %d from the address: %d %s", open+1, status, body)
			}
			open++
		}
	}
	status, body, _ = s.openStream(id, s.token(id, auth.RoleSite, "one-more"))
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != http.StatusTooManyRequests ||
		!strings.Contains(e.Error, "this address") {
		t.Fatalf("stream beyond the address's limit: %d %s", status, body)
	}
}

// TestDeleteSessionEndsStreams: deleting a live session sends its streams exactly one
// session.ended, then ends them; a new stream for it gets 404.
func TestDeleteSessionEndsStreams(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	viewer := s.token(id, auth.RoleViewer, "watcher")
	ev := s.subscribeEvents(id, viewer)
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	playing, stop := context.WithCancel(s.ctx)
	played := make(chan error, 1)
	go func() { played <- pub.Play(playing, testpeer.SyntheticClip(time.Second, 30, 30, 3000), nil) }()
	defer func() { stop(); <-played }()
	ev.waitFor(t, "session.live", "")

	if resp, body := s.do("DELETE", "/api/sessions/"+id, testAdmin, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	select {
	case <-ev.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream of a deleted session stays open")
	}
	ended := 0
	for len(ev.events) > 0 {
		if e := <-ev.events; e.Type == "session.ended" {
			ended++
		}
	}
	if ended != 1 {
		t.Fatalf("%d session.ended events, want 1", ended)
	}
	if status, body, _ := s.openStream(id, viewer); status != http.StatusNotFound {
		t.Fatalf("stream of a deleted session: %d %s, want 404", status, body)
	}
}
