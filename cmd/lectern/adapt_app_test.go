package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/internal/testpeer"
	"lectern/sfu/peer"
)

// TestAdaptationWiring: the binary's WHEP answer links the layer URL; a classroom
// pinned to audio is counted as paused in /metrics with its estimate, switches and
// pauses; with -adaptation off the layer URL still pins but reports no estimate.
func TestAdaptationWiring(t *testing.T) {
	for _, adaptation := range []string{"on", "off"} {
		t.Run(adaptation, func(t *testing.T) {
			const admin = "adapt-admin-token-0123456789"
			a := testApp(t, "-admin-token", admin, "-adaptation", adaptation)
			if err := a.start(); err != nil {
				t.Fatal(err)
			}
			base := "http://" + a.listener.Addr().String()
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			sess, pub := publishTo(ctx, t, base, admin, "Bài giảng")
			defer pub.Close()
			defer playSynthetic(ctx, pub)()
			site := mintToken(t, base, admin, sess, "site")
			var layerURL string
			sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
				code, body, hdr := post(t, base+"/whep/"+sess, site, "application/sdp", offer)
				if code != http.StatusCreated {
					return "", fmt.Errorf("WHEP: %d %s", code, body)
				}
				for _, l := range hdr.Values("Link") {
					if strings.Contains(l, `rel="urn:ietf:params:whep:ext:core:layer"`) {
						layerURL = base + l[strings.Index(l, "<")+1:strings.Index(l, ">")]
					}
				}
				return body, nil
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if layerURL == "" {
				t.Fatal("no layer link in the WHEP answer")
			}
			if err := sub.WaitPackets(ctx, 0, 20); err != nil {
				t.Fatal(err)
			}
			code, body, _ := post(t, layerURL, site, "application/json", `{"layer":"audio"}`)
			var st peer.LayerState
			if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.Pin != "audio" || !st.Paused {
				t.Fatalf("pin audio: %d %s", code, body)
			}
			// The video pauses at its frame's end; the estimate comes with the first
			// receiver report (about a second).
			deadline := time.Now().Add(10 * time.Second)
			for (st.Layer != "paused" || adaptation == "on" && st.EstimateBps == 0) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				req, _ := http.NewRequest("GET", layerURL, nil)
				req.Header.Set("Authorization", "Bearer "+site)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
			}
			if (adaptation == "on") != (st.EstimateBps > 0) {
				t.Errorf("adaptation %s: layer state %+v", adaptation, st)
			}
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := []string{`lectern_subscriber_layers{layer="paused"} 1`, `lectern_subscriber_layers{layer="high"} 0`,
				"lectern_video_pauses_total 1", "lectern_layer_switches_total 1", "lectern_nacks_refused_total 0"}
			if adaptation == "on" {
				want = append(want, "lectern_subscriber_estimate_bps_count 1")
			} else {
				want = append(want, "lectern_subscriber_estimate_bps_count 0")
			}
			for _, m := range want {
				if !strings.Contains(string(metrics), m) {
					t.Errorf("/metrics lacks %q:\n%s", m, grepLines(string(metrics), "lectern_"))
				}
			}
		})
	}
}
