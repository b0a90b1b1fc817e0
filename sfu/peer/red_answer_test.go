package peer

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"

	"lectern/sfu"
)

// chromiumOffer reads an offer Chromium 156 made (testdata; a WHIP one with
// sendonly audio and video, a WHEP one recvonly), as SDP with CRLF line ends.
func chromiumOffer(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
	return s
}

// redFirst moves Chromium's red payload type (63) before opus (111) on the
// audio m-line, the order Chromium used from M96.
func redFirst(t *testing.T, offer string) string {
	t.Helper()
	const m = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 "
	if !strings.Contains(offer, m) {
		t.Fatal("offer has no audio m-line with opus then red")
	}
	return strings.Replace(offer, m, "m=audio 9 UDP/TLS/RTP/SAVPF 63 111 ", 1)
}

// audioCodecs returns the audio section's codecs of an SDP by name (lower case):
// their payload type and fmtp, and the m-line's format order.
func audioCodecs(t *testing.T, s string) (map[string]sdp.Codec, []string) {
	t.Helper()
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(s); err != nil {
		t.Fatal(err)
	}
	for _, md := range desc.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		codecs := map[string]sdp.Codec{}
		for _, c := range (&sdp.SessionDescription{MediaDescriptions: []*sdp.MediaDescription{md}}).GetCodecMap() {
			codecs[strings.ToLower(c.Name)] = c
		}
		return codecs, md.MediaName.Formats
	}
	t.Fatal("no audio section")
	return nil, nil
}

// TestOpusAnswerFEC checks the answers to a Chromium publisher (WHIP) and
// subscriber (WHEP): Opus carries useinbandfec=1 (the publisher's encoder adds
// in-band FEC only when the receiver's fmtp asks for it) and no stereo=1 (a
// lecturer's microphone is mono; asking for stereo would double the bitrate of
// a stereo one for nothing); the publisher is not offered RED (it must send
// plain Opus, which the recorder and RTSP readers take), the subscriber is, with
// its blocks the answer's Opus payload type, whether the offer lists red after
// opus (Chromium today) or before (Chromium from M96).
func TestOpusAnswerFEC(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	checkOpus := func(t *testing.T, codecs map[string]sdp.Codec) sdp.Codec {
		t.Helper()
		opus, ok := codecs["opus"]
		if !ok {
			t.Fatalf("answer has no opus: %v", codecs)
		}
		if opus.ClockRate != 48000 || opus.EncodingParameters != "2" {
			t.Errorf("opus %d/%s, want 48000/2", opus.ClockRate, opus.EncodingParameters)
		}
		if sfu.FmtpParam(opus.Fmtp, "useinbandfec") != "1" {
			t.Errorf("opus fmtp %q lacks useinbandfec=1", opus.Fmtp)
		}
		if sfu.FmtpParam(opus.Fmtp, "stereo") == "1" {
			t.Errorf("opus fmtp %q asks for stereo", opus.Fmtp)
		}
		return opus
	}

	// An encoder that offers Opus without useinbandfec (GStreamer's webrtcbin, some
	// hardware encoders) or asking for stereo (OBS) is still answered with it: the
	// answer's fmtp is what the answerer wants to receive.
	for _, fmtp := range []string{"minptime=10;useinbandfec=1", "minptime=10", "stereo=1;sprop-stereo=1"} {
		t.Run("whip "+fmtp, func(t *testing.T) {
			offer := strings.Replace(chromiumOffer(t, "chromium-whip-offer.sdp"), "a=fmtp:111 minptime=10;useinbandfec=1", "a=fmtp:111 "+fmtp, 1)
			_, ans, err := f.edge.Publish(f.sess, sfu.TrainerPublication, offer)
			if err != nil {
				t.Fatal(err)
			}
			codecs, _ := audioCodecs(t, ans)
			checkOpus(t, codecs)
			if red, ok := codecs["red"]; ok {
				t.Errorf("publisher offered RED: %+v", red)
			}
			t.Logf("answer opus fmtp %q", codecs["opus"].Fmtp)
		})
	}
	for _, order := range []string{"opus first", "red first", "opus at 109"} {
		t.Run("whep "+order, func(t *testing.T) {
			offer := chromiumOffer(t, "chromium-whep-offer.sdp")
			switch order {
			case "red first":
				offer = redFirst(t, offer)
			case "opus at 109": // another payload type for Opus, RED's blocks naming it
				offer = strings.NewReplacer("SAVPF 111 63 ", "SAVPF 109 63 ", "a=rtpmap:111 opus", "a=rtpmap:109 opus",
					"a=rtcp-fb:111 ", "a=rtcp-fb:109 ", "a=fmtp:111 ", "a=fmtp:109 ", "a=fmtp:63 111/111", "a=fmtp:63 109/109").Replace(offer)
			}
			_, ans, err := f.edge.Subscribe(f.sess, trainerLayout, offer)
			if err != nil {
				t.Fatal(err)
			}
			codecs, formats := audioCodecs(t, ans)
			opus := checkOpus(t, codecs)
			red, ok := codecs["red"]
			if !ok {
				t.Fatalf("subscriber not answered RED: formats %v", formats)
			}
			if red.ClockRate != 48000 || red.PayloadType != 63 {
				t.Errorf("red %d at %d, want payload type 63 at 48000", red.PayloadType, red.ClockRate)
			}
			if !redBlocksAre(red.Fmtp, opus.PayloadType) {
				t.Errorf("red fmtp %q does not name opus's payload type %d", red.Fmtp, opus.PayloadType)
			}
			t.Logf("answer audio formats %v, opus fmtp %q, red fmtp %q", formats, opus.Fmtp, red.Fmtp)
		})
	}
}
