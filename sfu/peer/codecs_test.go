package peer

import (
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"

	"lectern/sfu"
)

func TestSectionCodecOK(t *testing.T) {
	section := func(media string, formats []string, attrs ...string) *sdp.MediaDescription {
		md := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: media, Formats: formats}}
		for _, a := range attrs {
			key, value, _ := strings.Cut(a, ":")
			md.Attributes = append(md.Attributes, sdp.Attribute{Key: key, Value: value})
		}
		return md
	}
	for _, tc := range []struct {
		name    string
		md      *sdp.MediaDescription
		kind    sfu.Kind
		ok      bool
		offered []string
	}{
		{"browser h264", section("video", []string{"96", "102"},
			"rtpmap:96 VP8/90000", "rtpmap:102 H264/90000",
			"fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"), sfu.KindVideo, true, nil},
		{"h264 mode 0 only", section("video", []string{"102"},
			"rtpmap:102 H264/90000", "fmtp:102 profile-level-id=42e01f;packetization-mode=0"), sfu.KindVideo, false, []string{"H264"}},
		{"h264 without fmtp", section("video", []string{"102"}, "rtpmap:102 H264/90000"), sfu.KindVideo, false, []string{"H264"}},
		{"vp8 and its rtx", section("video", []string{"96", "97"},
			"rtpmap:96 VP8/90000", "rtpmap:97 rtx/90000", "fmtp:97 apt=96"), sfu.KindVideo, false, []string{"VP8"}},
		{"opus", section("audio", []string{"111"}, "rtpmap:111 opus/48000/2", "fmtp:111 minptime=10;useinbandfec=1"), sfu.KindAudio, true, nil},
		{"opus at another rate", section("audio", []string{"111"}, "rtpmap:111 opus/16000/2"), sfu.KindAudio, false, []string{"opus"}},
		// Static payload types need no rtpmap (RFC 3551): the error still names them.
		{"static pcmu", section("audio", []string{"0"}), sfu.KindAudio, false, []string{"PCMU"}},
		{"nothing", section("audio", []string{"x"}), sfu.KindAudio, false, []string{"nothing usable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offered, ok := sectionCodecOK(tc.md, tc.kind)
			if ok != tc.ok || !slices.Equal(offered, tc.offered) {
				t.Fatalf("got %v %v, want %v %v", offered, ok, tc.offered, tc.ok)
			}
		})
	}
}
