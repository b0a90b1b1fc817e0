package web

import (
	"os"
	"strings"
	"testing"

	"lectern/auth"
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
