package testpeer

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// NewOffer makes a pion peer (on NewAPI(o)) with one video transceiver of
// direction dir and returns it with its offer, for tests that hand an edge an
// offer directly and never connect. The peer is closed when the test ends.
func NewOffer(t testing.TB, o Options, dir webrtc.RTPTransceiverDirection) (*webrtc.PeerConnection, webrtc.SessionDescription) {
	t.Helper()
	pc, err := newPeerConnection(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pc, offer
}
