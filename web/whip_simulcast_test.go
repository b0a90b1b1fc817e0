package web

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
)

// TestWHIPSimulcastOffers: over HTTP, Chromium's simulcast offer is answered 201
// with the rids received and the rid header extension negotiated; simulcast offers
// the edge cannot take are answered 400 with the reason.
func TestWHIPSimulcastOffers(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	b, err := os.ReadFile("../sfu/peer/testdata/chromium-simulcast-offer.sdp")
	if err != nil {
		t.Fatal(err)
	}
	offer := string(b)
	for _, tc := range []struct {
		name, old, new string
		want           int
		mention        []string
	}{
		{"three layers", "", "", 201, []string{"a=simulcast:recv q;h;f", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"}},
		{"four layers", "a=simulcast:send q;h;f", "a=rid:x send\r\na=simulcast:send q;h;f;x", 400, []string{"4 simulcast streams, at most 3"}},
		{"duplicate rid", "a=rid:f send\r\n", "a=rid:f send\r\na=rid:f send\r\n", 400, []string{"declared twice"}},
		{"unknown rid", "a=simulcast:send q;h;f", "a=simulcast:send q;h;z", 400, []string{"unknown rid", "z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := offer
			if tc.old != "" {
				body = strings.Replace(offer, tc.old, tc.new, 1)
			}
			resp, answer := s.do("POST", "/whip/"+id, trainer, "application/sdp", body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, answer)
			}
			for _, m := range tc.mention {
				if !strings.Contains(answer, m) {
					t.Fatalf("body does not mention %q:\n%s", m, answer)
				}
			}
			if resp.StatusCode == 201 {
				if resp, body := s.do("DELETE", resp.Header.Get("Location"), trainer, "", ""); resp.StatusCode != 200 {
					t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
				}
			}
		})
	}
}

// TestWHIPSimulcastICERestart: a simulcast publisher (a studio whose network
// changed) restarts ICE with a PATCH; the server re-applies the offer it kept, the
// publisher reconnects, and all three layers go on arriving.
func TestWHIPSimulcastICERestart(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	var layers []*clip.Clip
	for _, o := range testpeer.SimulcastClipOptions(4 * time.Second) {
		layers = append(layers, testenv.Clip(t, o))
	}
	var loc string
	pub, err := testpeer.NewSimulcastPublisher(s.ctx, s.signal("/whip/"+id, trainer, &loc), testpeer.SimulcastOptions{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	allLayersGrow := func(what string) {
		t.Helper()
		base := layerPackets(t, s, id)
		testenv.WaitFor(s.ctx, t, what, func() bool {
			now := layerPackets(t, s, id)
			for _, l := range []string{"video", "video~1", "video~2"} {
				if now[l] < base[l]+30 {
					return false
				}
			}
			return true
		})
	}
	allLayersGrow("three layers arriving")

	states, frag := offerICERestart(t, pub.PC)
	resp, reply := s.do("PATCH", loc, trainer, "application/trickle-ice-sdpfrag", frag)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ICE restart: %d %s", resp.StatusCode, reply)
	}
	applyRestartAnswer(t, pub.PC, reply)
	var seen []string
	testenv.WaitFor(s.ctx, t, "reconnection on the new credentials", func() bool {
		for {
			select {
			case st := <-states:
				seen = append(seen, st.String())
				if st == webrtc.ICEConnectionStateFailed {
					t.Fatalf("ICE failed after the restart: %v", seen)
				}
			default:
				return slices.Contains(seen, "checking") && seen[len(seen)-1] == "connected"
			}
		}
	})
	allLayersGrow("three layers arriving after the restart")
}
