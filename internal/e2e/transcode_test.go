package e2e

import (
	"bytes"
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"gopkg.in/hraban/opus.v2"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu/peer"
)

// TestAACPublisherHeardInBrowsers: a studio encoder (ffmpeg) publishes H.264 and a
// 440 Hz tone in AAC over RTSP. A pion WHEP subscriber, which takes Opus (and
// G.711) audio only, receives Opus (the server's transcoding) that decodes to the
// tone; an RTSP reader still gets the AAC itself.
func TestAACPublisherHeardInBrowsers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: ffmpeg publishes for 8 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newStack(t)
	sess := s.reg.Session(testSession)
	sub, audio := audioSubscriber(ctx, t, s)
	pub := publishRTSP(t, s.rtspURL(s.token(t, auth.RoleTrainer)), "aac", publishFor)

	// An RTSP reader meanwhile: the original AAC.
	bin := testenv.RequireTool(t, "ffmpeg", installFFmpeg)
	readBack := filepath.Join(t.TempDir(), "read-back.mkv")
	testenv.WaitFor(ctx, t, "the trainer's audio and its Opus variant", func() bool {
		for _, p := range sess.Publications() {
			for _, tr := range p.Tracks {
				if tr.Name == "trainer/audio.opus" && tr.Packets > 10 {
					return true
				}
			}
		}
		return false
	})
	out, err := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-v", "error",
		"-rtsp_transport", "tcp", "-i", s.rtspURL(s.token(t, auth.RoleSite)),
		"-t", "3", "-map", "0", "-c", "copy", readBack).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg reading the session: %v\n%s", err, out)
	}
	if a, ok := ffprobe(ctx, t, readBack).stream("audio"); !ok || a.Codec != "aac" || a.Frames < 90 {
		t.Errorf("RTSP reader's audio %+v, want aac", a)
	}
	if err := sub.WaitPackets(ctx, 1, 200); err != nil {
		t.Fatalf("audio at the WebRTC subscriber: %v", err)
	}
	select {
	case sent := <-pub:
		if sent.err != nil {
			t.Fatalf("ffmpeg: %v\n%s", sent.err, sent.stderr)
		}
	case <-ctx.Done():
		t.Fatal("ffmpeg did not finish")
	}

	// ffmpeg's sine (amplitude 1/8) made stereo: 1/8/√2 on each channel.
	checkOpusTone(t, sub, audio(), 0.125/math.Sqrt2)
}

// audioSubscriber connects a pion WHEP subscriber (Opus and G.711 audio, H.264
// video) to the trainer's camera and audio; audio returns the audio payloads
// received so far.
func audioSubscriber(ctx context.Context, t *testing.T, s *stack) (sub *testpeer.Subscriber, audio func() [][]byte) {
	t.Helper()
	var mu sync.Mutex
	var payloads [][]byte
	sess := s.reg.Session(testSession)
	layout := peer.Layout{Video: []string{"trainer/video"}, Audio: []string{"trainer/audio"}}
	signal := func(offer string) (string, error) {
		_, answer, err := s.edge.Subscribe(sess, layout, offer)
		return answer, err
	}
	sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, signal, func(k webrtc.RTPCodecType, p *rtp.Packet) {
		if k == webrtc.RTPCodecTypeAudio {
			mu.Lock()
			payloads = append(payloads, bytes.Clone(p.Payload))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(payloads)
	}
}

// checkOpusTone checks that the subscriber's audio is Opus decoding to a 440 Hz
// tone of amplitude want (within 3 dB), 1 kHz 30 dB below it.
func checkOpusTone(t *testing.T, sub *testpeer.Subscriber, pkts [][]byte, want float64) {
	t.Helper()
	if c := sub.Track(1).Codec; !strings.EqualFold(c, webrtc.MimeTypeOpus) {
		t.Fatalf("the WebRTC subscriber's audio is %s, want Opus", c)
	}
	if len(pkts) < 100 {
		t.Fatalf("%d audio packets at the WebRTC subscriber", len(pkts))
	}
	pcm := decodeOpusLeft(t, pkts[10:])
	tone, other := toneAmplitude(pcm, 440), toneAmplitude(pcm, 1000)
	if rel := 20 * math.Log10(tone/want); rel < -3 || rel > 3 || other > tone/30 {
		t.Fatalf("440 Hz at %.1f dB of the source, 1 kHz at %.4f (440 Hz %.4f)", rel, other, tone)
	}
	t.Logf("WebRTC subscriber: %d Opus packets, 440 Hz amplitude %.4f, 1 kHz %.5f", len(pkts), tone, other)
}

// TestG711CameraRecordingHasSound: an IP camera's G.711 (ffmpeg publishing
// pcm_mulaw over RTSP) is recorded through its Opus variant: the recording's
// audio is Opus and plays the camera's 440 Hz tone. A WHEP subscriber, which
// could take G.711, gets the Opus variant too.
func TestG711CameraRecordingHasSound(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: ffmpeg publishes for 8 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newStack(t)
	sub, audio := audioSubscriber(ctx, t, s)
	pub := publishRTSP(t, s.rtspURL(s.token(t, auth.RoleTrainer)), "pcm_mulaw", publishFor)
	select {
	case sent := <-pub:
		if sent.err != nil || sent.frames < 200 {
			t.Fatalf("ffmpeg: %v, %d frames\n%s", sent.err, sent.frames, sent.stderr)
		}
	case <-ctx.Done():
		t.Fatal("ffmpeg did not finish")
	}
	checkOpusTone(t, sub, audio(), 0.125)
	m := s.waitRecording(ctx, t)
	if !slices.Contains(m.Codecs, "opus") {
		t.Fatalf("recording codecs %v, want opus audio", m.Codecs)
	}
	mp4 := s.writeDownload(ctx, t, m.ID)
	if a, ok := ffprobe(ctx, t, mp4).stream("audio"); !ok || a.Codec != "opus" {
		t.Fatalf("recorded audio %+v, want opus", a)
	}
	levels := testenv.ToneLevels(t, mp4, 440, time.Second)
	loud := 0
	for _, l := range levels {
		if l.At >= 1 && l.At < publishFor.Seconds()-1.5 {
			if l.RMS < -30 {
				t.Errorf("440 Hz at %.1f dBFS at %.0f s", l.RMS, l.At)
			}
			loud++
		}
	}
	if loud < 4 {
		t.Fatalf("%d windows of sound: %+v", loud, levels)
	}
	t.Logf("recording %s: codecs %v, 440 Hz levels %+v", m.ID, m.Codecs, levels)
}

// decodeOpusLeft decodes Opus packets (48 kHz stereo) to their left channel.
func decodeOpusLeft(t *testing.T, pkts [][]byte) []float64 {
	t.Helper()
	dec, err := opus.NewDecoder(48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 5760*2)
	var out []float64
	for _, p := range pkts {
		n, err := dec.Decode(p, pcm)
		if err != nil {
			t.Fatalf("Opus packet of %d bytes: %v", len(p), err)
		}
		for i := range n {
			out = append(out, float64(pcm[2*i])/32768)
		}
	}
	return out
}

// toneAmplitude is the amplitude of the freq Hz component of 48 kHz samples
// (Goertzel).
func toneAmplitude(x []float64, freq float64) float64 {
	c := 2 * math.Cos(2*math.Pi*freq/48000)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	return 2 * math.Sqrt(math.Max(s1*s1+s2*s2-c*s1*s2, 0)) / float64(len(x))
}
