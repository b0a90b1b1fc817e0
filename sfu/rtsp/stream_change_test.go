package rtsp

import (
	"strings"
	"testing"
	"time"

	"lectern/sfu"
)

// TestStreamRemadeOnCodecChange: readers share one gortsplib stream per URL; when
// the publication's codecs change (a new encoder sends G.711 where Opus was), the
// stream is made again, so the next DESCRIBE declares what is sent now, and a
// reader playing the old stream is let go rather than fed packets it cannot decode.
func TestStreamRemadeOnCodecChange(t *testing.T) {
	f := newFixture(t, nil)
	lease, err := f.sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	h264 := sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"}
	if _, err := lease.Track("video", sfu.KindVideo, h264, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2}, nil); err != nil {
		t.Fatal(err)
	}
	url := f.url(testSession, testAdmin)
	describe := func() string {
		c := dialRaw(t, f.srv.Addr())
		res := c.do("DESCRIBE", url, nil, "")
		if res.status != 200 {
			t.Fatalf("DESCRIBE: %d %s", res.status, res.reason)
		}
		return string(res.body)
	}
	if sdp := describe(); !strings.Contains(sdp, "opus/48000") {
		t.Fatalf("first DESCRIBE:\n%s", sdp)
	}
	reader := dialRaw(t, f.srv.Addr())
	if res := reader.do("DESCRIBE", url, nil, ""); res.status != 200 {
		t.Fatalf("DESCRIBE: %d", res.status)
	}
	reader.start("PLAY", url, reader.setup(url+"/trackID=1", "RTP/AVP/TCP;unicast;interleaved=0-1", ""))

	// The audio changes codec: the track is replaced.
	if _, err := lease.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if !reader.closedWithin(5 * time.Second) {
		t.Fatal("the old stream's reader was kept")
	}
	if sdp := describe(); !strings.Contains(sdp, "PCMU/8000") || strings.Contains(sdp, "opus") {
		t.Fatalf("DESCRIBE after the change:\n%s", sdp)
	}
}
