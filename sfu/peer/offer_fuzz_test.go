package peer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

// seedOffers returns real pion offers: a publisher's (sendonly video, screen and
// audio) and a player's (recvonly video and audio).
func seedOffers(f *testing.F) []string {
	f.Helper()
	api, err := testpeer.NewAPI(testpeer.Options{})
	if err != nil {
		f.Fatal(err)
	}
	var offers []string
	for _, dir := range []webrtc.RTPTransceiverDirection{webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPTransceiverDirectionRecvonly} {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			f.Fatal(err)
		}
		kinds := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
		for _, k := range kinds {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
				f.Fatal(err)
			}
		}
		o, err := pc.CreateOffer(nil)
		if err != nil {
			f.Fatal(err)
		}
		_ = pc.Close()
		offers = append(offers, o.SDP)
	}
	return offers
}

// addOfferSeeds gives a fuzz target real offers and their variants (LF-only,
// GStreamer's bundle-only shape) and a few broken ones.
func addOfferSeeds(f *testing.F) {
	for _, o := range seedOffers(f) {
		f.Add(o)
		f.Add(strings.ReplaceAll(o, "\r\n", "\n"))
		parts := strings.SplitAfterN(o, "m=", 3)
		if len(parts) == 3 {
			f.Add(parts[0] + parts[1] + strings.Replace(parts[2], " 9 ", " 0 ", 1) + "a=bundle-only\r\n")
		}
	}
	f.Add("")
	f.Add("v=0")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=bundle-only\r\na=rtpmap:111 opus/48000/2\r\n")
	f.Add("v= o= 0 0 IN\ns=\nt=\na=fingerprint: \na=ice-ufrag:0\na=ice-pwd:0\nm=audio 1 AVP 111 0\na=mid:0\na=rtpmap:111 opus/\na=fmtp:111 \n")
}

// FuzzParseOffer feeds arbitrary bytes to the check every WHIP and WHEP offer goes
// through first (parseOffer, then publisherNames for WHIP): no panic, errors are
// ErrBadOffer or ErrUnsupportedCodec (4xx), and an accepted offer has 1 to
// maxMediaSections audio/video sections, each with a mid. It is the coverage-guided
// half; FuzzOffer goes on through pion.
func FuzzParseOffer(f *testing.F) {
	addOfferSeeds(f)
	f.Fuzz(func(t *testing.T, offer string) {
		sections, err := parseOffer(offer)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("error %v is neither ErrBadOffer nor ErrUnsupportedCodec", err)
			}
			return
		}
		if len(sections) == 0 || len(sections) > maxMediaSections {
			t.Fatalf("accepted %d sections", len(sections))
		}
		for _, s := range sections {
			if s.mid == "" || (s.kind != sfu.KindAudio && s.kind != sfu.KindVideo) {
				t.Fatalf("accepted section %+v", s)
			}
		}
		names, err := publisherNames(sections)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) {
				t.Fatalf("publisherNames error %v is not ErrBadOffer", err)
			}
			return
		}
		if len(names) == 0 || len(names) > 3 {
			t.Fatalf("publisher names %v", names)
		}
	})
}

// FuzzOffer feeds arbitrary bytes as a WHIP and a WHEP offer through what the
// handlers call (Edge.Publish, Edge.Subscribe: the offer check, then pion): no
// panic, and either an answer or an error the HTTP layer maps to 4xx (ErrBadOffer,
// ErrUnsupportedCodec). Every resource made is closed at once. pion's goroutines
// run on between inputs, so coverage is not repeatable and Go's coverage-guided
// fuzzer stalls re-checking inputs: fuzz it with a binary built without coverage
// (go test -c; ./peer.test -test.run '^$' -test.fuzz '^FuzzOffer$'), and
// FuzzParseOffer with go test -fuzz.
func FuzzOffer(f *testing.F) {
	addOfferSeeds(f)
	// Quiet: a fuzzing worker's output is not read while it runs, and a full pipe
	// would stop it.
	quiet := slog.New(slog.DiscardHandler)
	e, err := New(Config{UDPAddr: "127.0.0.1:0", ICETimeout: time.Second, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: quiet})
	f.Cleanup(func() {
		_ = e.Close()
		reg.CloseAll()
	})
	sess := reg.Session("fuzz")
	f.Fuzz(func(t *testing.T, offer string) {
		check := func(what string, r *Resource, answer string, err error) {
			if err != nil {
				if !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrUnsupportedCodec) {
					t.Fatalf("%s: error %v is neither ErrBadOffer nor ErrUnsupportedCodec", what, err)
				}
				return
			}
			r.Delete()
			if !strings.HasPrefix(answer, "v=0") {
				t.Fatalf("%s: answer %q", what, answer)
			}
		}
		r, ans, err := e.Publish(sess, sfu.TrainerPublication, offer)
		check("publish", r, ans, err)
		r, ans, err = e.Subscribe(sess, trainerLayout, offer)
		check("subscribe", r, ans, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for e.Resources() != 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("%d resources left", e.Resources())
			case <-time.After(time.Millisecond):
			}
		}
	})
}
