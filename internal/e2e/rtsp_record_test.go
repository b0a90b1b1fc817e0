package e2e

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu/peer"
)

// publishFor is how long ffmpeg publishes.
const publishFor = 8 * time.Second

// sectionAudio is the WHEP subscriber's audio section (after camera and screen).
const sectionAudio = 2

// TestRTSPPublishReachesWebRTCAndRecording: ffmpeg publishes H.264 + Opus, then
// H.264 + AAC, over RTSP with a trainer token. A pion WHEP subscriber receives
// video that decodes (and the Opus audio; AAC does not go to browsers); when
// ffmpeg ends, the publication goes and its recording is finalised: its HLS
// playlist and its MP4 download decode with ffprobe, with the frames ffmpeg sent
// and the audio track in its codec.
func TestRTSPPublishReachesWebRTCAndRecording(t *testing.T) {
	for _, tc := range []struct {
		name         string
		encoder      string  // ffmpeg audio encoder
		codec        string  // what ffprobe calls the recorded audio
		meta         string  // RFC 6381 string in the recording's meta.json
		frameSeconds float64 // one audio frame, in seconds
		toBrowser    bool    // the audio reaches WebRTC subscribers
	}{
		{name: "h264-opus", encoder: "libopus", codec: "opus", meta: "opus", frameSeconds: 0.020, toBrowser: true},
		{name: "h264-aac", encoder: "aac", codec: "aac", meta: "mp4a.40.2", frameSeconds: 1024.0 / 48000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			s := newStack(t)
			video := &annexB{}
			sub := subscribe(ctx, t, s, video.add)
			pub := publishRTSP(t, s.rtspURL(s.token(t, auth.RoleTrainer)), tc.encoder, publishFor)

			testenv.WaitFor(ctx, t, "three keyframes at the WebRTC subscriber", func() bool { return video.keyframes() >= 3 })
			if tc.toBrowser {
				if err := sub.WaitPackets(ctx, sectionAudio, 100); err != nil {
					t.Fatalf("Opus audio at the WebRTC subscriber: %v", err)
				}
			}
			var sent published
			select {
			case sent = <-pub:
			case <-ctx.Done():
				t.Fatal("ffmpeg did not finish")
			}
			if sent.err != nil || sent.frames < 200 {
				t.Fatalf("ffmpeg: %v, %d frames sent\n%s", sent.err, sent.frames, sent.stderr)
			}

			// What the WebRTC subscriber got decodes (it joined before the publisher).
			received := video.write(t)
			if errs := decodeErrors(ctx, t, received); errs != "" {
				t.Errorf("decoding the video the WebRTC subscriber received: %s", errs)
			}
			got := ffprobe(ctx, t, received)
			if v, _ := got.stream("video"); v.Frames < sent.frames-30 {
				t.Errorf("WebRTC subscriber: %d frames decode, %d were sent", v.Frames, sent.frames)
			}
			audioPackets, _, _ := sub.Track(sectionAudio).Snapshot()
			t.Logf("WebRTC subscriber: %d keyframes, %d video frames decoded, %d audio packets", video.keyframes(), got.Streams[0].Frames, audioPackets)

			// The recording of the publication, finalised when ffmpeg left.
			m := s.waitRecording(ctx, t)
			if m.Publication != "trainer" || !slices.Contains(m.Codecs, tc.meta) || !strings.HasPrefix(m.Codecs[0], "avc1.") {
				t.Errorf("recording meta: %+v", m)
			}
			hls := filepath.Join(s.store.Root(), m.Prefix, "index.m3u8")
			mp4 := s.writeDownload(ctx, t, m.ID)
			for _, f := range []struct{ name, path string }{{"HLS", hls}, {"MP4 download", mp4}} {
				checkRecorded(ctx, t, f.name, f.path, sent.frames, tc.codec, tc.frameSeconds)
			}
			t.Logf("recording %s: %.2f s in %d segments, codecs %v", m.ID, m.Duration, m.Segments, m.Codecs)
		})
	}
}

// subscribe connects a pion WHEP subscriber to the trainer's camera, screen and
// audio, giving each packet of the video sections to onVideo (the screen section
// stays silent: the publishers in these tests send one video). It is closed when
// the test ends.
func subscribe(ctx context.Context, t testing.TB, s *stack, onVideo func(*rtp.Packet)) *testpeer.Subscriber {
	t.Helper()
	sess := s.reg.Session(testSession)
	layout := peer.Layout{Video: []string{"trainer/video", "trainer/screen"}, Audio: []string{"trainer/audio"}}
	signal := func(offer string) (string, error) {
		_, answer, err := s.edge.Subscribe(sess, layout, offer)
		return answer, err
	}
	sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 2, 1, signal, func(k webrtc.RTPCodecType, p *rtp.Packet) {
		if k == webrtc.RTPCodecTypeVideo {
			onVideo(p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// checkRecorded checks that a recorded file decodes cleanly, with the video
// frames that were sent (give or take a few at the edges) and an audio stream of
// codec lasting as long.
func checkRecorded(ctx context.Context, t *testing.T, name, path string, sentFrames int, codec string, frameSeconds float64) {
	t.Helper()
	if errs := decodeErrors(ctx, t, path); errs != "" {
		t.Errorf("%s: decode errors: %s", name, errs)
	}
	p := ffprobe(ctx, t, path)
	v, okV := p.stream("video")
	a, okA := p.stream("audio")
	switch {
	case !okV || v.Codec != "h264" || abs(v.Frames-sentFrames) > 3:
		t.Errorf("%s: video %+v, want h264 with %d frames (%+v)", name, v, sentFrames, p)
	case !okA || a.Codec != codec:
		t.Errorf("%s: audio %+v, want %s (%+v)", name, a, codec, p)
	case math.Abs(float64(a.Frames)*frameSeconds-publishFor.Seconds()) > 0.5:
		t.Errorf("%s: %d audio frames (%.2f s), want about %v", name, a.Frames, float64(a.Frames)*frameSeconds, publishFor)
	case math.Abs(p.Duration-publishFor.Seconds()) > 0.5:
		t.Errorf("%s: duration %.3f s, want about %v", name, p.Duration, publishFor)
	}
	t.Logf("%s: %.3f s, video %d frames (%d sent), audio %s %d frames", name, p.Duration, v.Frames, sentFrames, a.Codec, a.Frames)
}

func abs(x int) int { return max(x, -x) }
