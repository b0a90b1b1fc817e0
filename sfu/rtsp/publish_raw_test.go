package rtsp

import (
	"testing"

	"lectern/auth"
	"lectern/sfu"
)

// TestPublisherSetupWithoutQuery: an encoder that gives its token once, in the
// ANNOUNCE URL's query, and sets up its media by path alone still publishes
// (gortsplib matches SETUP URLs whole; the server gives them the query back).
func TestPublisherSetupWithoutQuery(t *testing.T) {
	f := newFixture(t, nil)
	base := "rtsp://" + f.srv.Addr() + "/" + testSession
	c := dialRaw(t, f.srv.Addr())
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=enc\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"
	if res := c.do("ANNOUNCE", base+"?token="+f.token(t, testSession, auth.RoleTrainer), [][2]string{{"Content-Type", "application/sdp"}}, sdp); res.status != 200 {
		t.Fatalf("ANNOUNCE: %d %s", res.status, res.reason)
	}
	// The SETUP's URL has no query: the session is the ANNOUNCE's.
	c.start("RECORD", base, c.setup(base+"/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", ""))
	if _, ok := f.sess.Publication(sfu.TrainerPublication); !ok {
		t.Fatal("no trainer publication after RECORD")
	}
}
