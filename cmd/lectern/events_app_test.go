package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// TestEventStreamSettings: -events-per-token reaches the server: with 1, a token's
// second event stream is refused with 429 while its first stays open.
func TestEventStreamSettings(t *testing.T) {
	const admin = "events-admin-token-0123456789"
	a := testApp(t, "-admin-token", admin, "-events-per-token", "1")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	code, body, _ := post(t, base+"/api/sessions", admin, "application/json", `{"title":"Bài giảng"}`)
	var sess struct{ ID string }
	if err := json.Unmarshal([]byte(body), &sess); code != http.StatusCreated || err != nil {
		t.Fatalf("create session: %d %s", code, body)
	}
	code, body, _ = post(t, base+"/api/sessions/"+sess.ID+"/tokens", admin, "application/json", `{"role":"viewer","name":"hall"}`)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); code != http.StatusCreated || err != nil {
		t.Fatalf("mint: %d %s", code, body)
	}
	open := func() int {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/sessions/"+sess.ID+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return resp.StatusCode
	}
	if first, second := open(), open(); first != http.StatusOK || second != http.StatusTooManyRequests {
		t.Fatalf("two streams of one token with -events-per-token 1: %d then %d, want 200 then 429", first, second)
	}
}
