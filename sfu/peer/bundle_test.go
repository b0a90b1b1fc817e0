package peer

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

// transportAttributes are the TRANSPORT and IDENTICAL category attributes (RFC 9143
// §7.1.3) an initial offer leaves out of its bundle-only sections.
var transportAttributes = map[string]bool{
	"ice-ufrag": true, "ice-pwd": true, "ice-options": true, "fingerprint": true, "setup": true,
	"candidate": true, "end-of-candidates": true, "rtcp-mux": true, "rtcp-mux-only": true, "tls-id": true,
}

// bundleOnly rewrites a pion offer into the shape GStreamer's webrtcbin offers with
// its default bundle-policy=max-bundle (RFC 9143 §7.2.1): every section but the
// first (the BUNDLE tag section) has port 0 and a=bundle-only. strict also drops the
// sections' transport attributes, as the RFC has it; webrtcbin keeps them.
func bundleOnly(t *testing.T, offer string, strict bool) string {
	t.Helper()
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	for _, md := range desc.MediaDescriptions[1:] {
		md.MediaName.Port = sdp.RangedPort{Value: 0}
		if strict {
			kept := md.Attributes[:0]
			for _, a := range md.Attributes {
				if !transportAttributes[a.Key] {
					kept = append(kept, a)
				}
			}
			md.Attributes = kept
		}
		md.Attributes = append(md.Attributes, sdp.NewPropertyAttribute("bundle-only"))
	}
	out, err := desc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "a=bundle-only"); n != len(desc.MediaDescriptions)-1 {
		t.Fatalf("rewritten offer has %d bundle-only sections", n)
	}
	return string(out)
}

// TestBundleOnlySections: a publisher and a player whose offers put audio (and the
// screen share) in bundle-only sections, as GStreamer's webrtcbin does by default,
// get every section: the publisher's audio becomes trainer/audio and reaches the
// player, whose own audio section is bundle-only too.
func TestBundleOnlySections(t *testing.T) {
	for _, strict := range []bool{false, true} {
		name := "webrtcbin"
		if strict {
			name = "rfc9143-strict"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, Config{}, time.Second)
			pubSignal := f.publishSignal(sfu.TrainerPublication)
			_, stopPub := f.startPublisherSignal(t, testpeer.Options{}, func(offer string) (string, error) {
				return pubSignal(bundleOnly(t, offer, strict))
			})
			defer stopPub()

			subSignal := f.subscribeSignal(trainerLayout)
			sub, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
				return subSignal(bundleOnly(t, offer, strict))
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := sub.WaitPackets(f.ctx, 0, 30); err != nil {
				t.Fatalf("video: %v", err)
			}
			if err := sub.WaitPackets(f.ctx, 1, 20); err != nil {
				t.Fatalf("audio: %v", err)
			}
			var names []string
			for _, p := range f.sess.Publications() {
				for _, tr := range p.Tracks {
					names = append(names, tr.Name)
				}
			}
			for _, want := range []string{"trainer/video", "trainer/audio"} {
				if !strings.Contains(strings.Join(names, " "), want) {
					t.Fatalf("session tracks %v lack %s", names, want)
				}
			}
		})
	}
}
