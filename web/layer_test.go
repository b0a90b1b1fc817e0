package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu/peer"
)

// layerState GETs a WHEP resource's layer URL.
func (s *stack) layerState(t *testing.T, url, token string) peer.LayerState {
	t.Helper()
	resp, body := s.do("GET", url, token, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var st peer.LayerState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return st
}

// TestWHEPLayerPin: a WHEP answer links the resource's layer URL (the WHEP layer
// extension's relation); GET says which layer the subscriber gets; POST pins one.
// Pinned to audio, the video stops and the audio keeps arriving; back to auto, the
// video resumes. An unknown layer, a body naming none, or no token are refused
// with a reason; the preflight of a page from another origin allows GET and POST.
func TestWHEPLayerPin(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go pub.Play(s.ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 3000), nil)

	site := s.token(id, auth.RoleSite, "hue")
	var links []string
	signal := func(offer string) (string, error) {
		resp, body := s.do("POST", "/whep/"+id, site, "application/sdp", offer)
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("POST /whep: %d %s", resp.StatusCode, body)
		}
		links = resp.Header.Values("Link")
		return body, nil
	}
	sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, signal, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var layerURL string
	for _, l := range links {
		if strings.Contains(l, `rel="urn:ietf:params:whep:ext:core:layer"`) {
			layerURL = l[strings.Index(l, "<")+1 : strings.Index(l, ">")]
		}
	}
	if !strings.HasPrefix(layerURL, "/whep/"+id+"/") || !strings.HasSuffix(layerURL, "/layer") {
		t.Fatalf("no layer link in %q", links)
	}
	if err := sub.WaitPackets(s.ctx, 0, 30); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(s.ctx, t, "the layer state says high", func() bool {
		st := s.layerState(t, layerURL, site)
		return st.Pin == "auto" && st.Layer == "high" && !st.Paused && len(st.Layers) == 1 && st.Layers[0] == "high"
	})

	// Pinned to audio only: video stops, audio goes on.
	resp, body := s.do("POST", layerURL, site, "application/json", `{"layer":"audio"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"pin":"audio"`) || !strings.Contains(body, `"paused":true`) {
		t.Fatalf("pin audio: %d %s", resp.StatusCode, body)
	}
	testenv.WaitFor(s.ctx, t, "the layer state says paused", func() bool {
		return s.layerState(t, layerURL, site).Layer == "paused"
	})
	video, _, _ := sub.Track(0).Snapshot()
	audio, _, _ := sub.Track(1).Snapshot()
	if err := sub.WaitPackets(s.ctx, 1, audio+50); err != nil { // a second of Opus
		t.Fatalf("audio during the pause: %v", err)
	}
	if v, _, _ := sub.Track(0).Snapshot(); v > video+2 { // a frame's end may still be queued
		t.Fatalf("video went on while paused: %d packets, then %d", video, v)
	}

	// The WHEP draft's shape, with a rid: back to the best layer.
	resp, body = s.do("POST", layerURL, site, "application/json", `{"encodingId":"f"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"pin":"high"`) {
		t.Fatalf("pin encodingId f: %d %s", resp.StatusCode, body)
	}
	v, _, _ := sub.Track(0).Snapshot()
	if err := sub.WaitPackets(s.ctx, 0, v+30); err != nil {
		t.Fatalf("video after the pause: %v", err)
	}
	resp, body = s.do("POST", layerURL, site, "application/json", `{"layer":"auto"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"pin":"auto"`) {
		t.Fatalf("pin auto: %d %s", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		body   string
		status int
		reason string
	}{
		{`{"layer":"ultra"}`, http.StatusBadRequest, "unknown layer"},
		{`{"encodingId":"x"}`, http.StatusBadRequest, "unknown layer"},
		{`{}`, http.StatusBadRequest, "names no layer"},
		{`not json`, http.StatusBadRequest, "JSON"},
	} {
		resp, body := s.do("POST", layerURL, site, "application/json", tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.reason) {
			t.Errorf("POST %s: %d %s, want %d with %q", tc.body, resp.StatusCode, body, tc.status, tc.reason)
		}
	}
	if resp, body := s.do("GET", layerURL, "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/whep/"+id+"/nosuchresource/layer", site, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of an unknown resource: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("OPTIONS", layerURL, "", "", "", "Origin", "https://portal.example.edu",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	methods := headerList(resp.Header.Get("Access-Control-Allow-Methods"))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(strings.Join(methods, ","), "GET") || !strings.Contains(strings.Join(methods, ","), "POST") {
		t.Errorf("preflight: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}
