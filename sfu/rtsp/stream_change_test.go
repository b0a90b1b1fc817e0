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
	lease, _, _ := f.trainerVideoAudio(t)
	url := f.url(testSession, testAdmin)
	describe := func() string { return string(dialRaw(t, f.srv.Addr()).describe(url).body) }
	if sdp := describe(); !strings.Contains(sdp, "opus/48000") {
		t.Fatalf("first DESCRIBE:\n%s", sdp)
	}
	reader := dialRaw(t, f.srv.Addr())
	reader.describe(url)
	reader.start("PLAY", url, reader.setup(url+"/trackID=1", "RTP/AVP/TCP;unicast;interleaved=0-1", ""))

	// The audio changes codec: the track is replaced.
	mustTrack(t, lease, "audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	if !reader.closedWithin(5 * time.Second) {
		t.Fatal("the old stream's reader was kept")
	}
	if sdp := describe(); !strings.Contains(sdp, "PCMU/8000") || strings.Contains(sdp, "opus") {
		t.Fatalf("DESCRIBE after the change:\n%s", sdp)
	}
}
