package recorder

import (
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
)

// Recording happens once, on the origin: a publication relayed from another
// cluster node is not recorded here, until a publisher connects here.
func TestRelayedPublicationNotRecorded(t *testing.T) {
	r, sess, _ := recordSession(t, testrec.DirStore(t), "relayedsess", time.Minute, time.Minute, nil)
	active := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.active)
	}
	lease, err := sess.ClaimRelay(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Track("video", sfu.KindVideo, h264Codec, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Track("audio", sfu.KindAudio, opusCodec, nil); err != nil {
		t.Fatal(err)
	}
	if n := active(); n != 0 {
		t.Fatalf("%d recordings of a relayed publication", n)
	}
	// This node becomes the origin: it records from now on.
	local, err := sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := active(); n != 1 {
		t.Fatalf("%d recordings once the publisher is local, want 1", n)
	}
	local.End()
}
