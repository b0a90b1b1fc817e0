package rtsp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// publishArgs returns ffmpeg arguments that publish a test pattern with audio in
// codec audio to url over transport, for 30 s at most. x264 runs with global
// headers (the RTSP muxer asks for them), so SPS and PPS are only in the SDP, as
// with many cameras.
func publishArgs(url, transport, audio string) []string {
	args := []string{"-v", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "30",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", "30", "-b:v", "1500k"}
	switch audio {
	case "opus":
		args = append(args, "-c:a", "libopus", "-ac", "2", "-ar", "48000")
	case "aac":
		args = append(args, "-c:a", "aac", "-ac", "2", "-ar", "48000")
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", transport, url)
}

// h264Collector reassembles the H.264 a WebRTC subscriber receives into an Annex-B
// stream, and checks packet sizes and in-band parameter sets on the way.
type h264Collector struct {
	mu          sync.Mutex
	annexB      bytes.Buffer
	fu          []byte
	started     bool // first keyframe seen: output starts there
	packets     int
	maxPayload  int
	keyframes   int // IDR access units
	keysWithSPS int // … that had an SPS before their first IDR slice
	sawSPS      bool
	ts          uint32 // RTP timestamp of the current access unit
	auIDR       bool
}

func (h *h264Collector) add(pkt *rtp.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := pkt.Payload
	if h.packets == 0 || pkt.Timestamp != h.ts {
		h.ts, h.sawSPS, h.auIDR = pkt.Timestamp, false, false
	}
	h.packets++
	h.maxPayload = max(h.maxPayload, len(p))
	if len(p) < 2 {
		return
	}
	switch p[0] & 0x1f {
	case naluSTAPA:
		_ = sfu.WalkH264(p, func(n sfu.H264NALU) bool { h.nalu(n.Data); return true })
	case naluFUA:
		switch {
		case p[1]&0x80 != 0:
			h.fu = append(h.fu[:0], p[0]&0xe0|p[1]&0x1f)
			h.fu = append(h.fu, p[2:]...)
		case len(h.fu) > 0:
			h.fu = append(h.fu, p[2:]...)
		}
		if p[1]&0x40 != 0 && len(h.fu) > 0 {
			h.nalu(h.fu)
			h.fu = h.fu[:0]
		}
	default:
		h.nalu(p)
	}
}

// nalu takes one NAL unit; mu is held.
func (h *h264Collector) nalu(n []byte) {
	switch n[0] & 0x1f {
	case naluSPS:
		h.sawSPS, h.started = true, true
	case naluIDR:
		if !h.auIDR {
			h.auIDR = true
			h.keyframes++
			if h.sawSPS {
				h.keysWithSPS++
			}
		}
		h.started = true
	}
	if h.started {
		h.annexB.Write([]byte{0, 0, 0, 1})
		h.annexB.Write(n)
	}
}

func (h *h264Collector) snapshot() (packets, keyframes, keysWithSPS, maxPayload int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.packets, h.keyframes, h.keysWithSPS, h.maxPayload
}

// decodeAnnexB decodes an H.264 Annex-B stream with ffmpeg and returns the frame
// count; any decoder complaint fails the test.
func decodeAnnexB(ctx context.Context, t *testing.T, data []byte) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "received.h264")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := ffmpeg(ctx, t, "-v", "error", "-f", "h264", "-i", path, "-f", "null", "-", "-progress", "pipe:1")
	if err != nil || strings.TrimSpace(stderr) != "" {
		t.Fatalf("decoding what the subscriber received: %v\n%s", err, stderr)
	}
	n, _ := strconv.Atoi(lastProgress(out, "frame"))
	return n
}

// newEdge starts an in-process WebRTC edge on loopback.
func newEdge(t *testing.T) *peer.Edge {
	t.Helper()
	e, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// whepSubscriber connects a pion subscriber to the trainer's tracks; H.264 payloads
// go to h.
func whepSubscriber(ctx context.Context, t *testing.T, e *peer.Edge, sess *sfu.Session, h *h264Collector) *testpeer.Subscriber {
	t.Helper()
	layout := peer.Layout{Video: []string{"trainer/video"}, Audio: []string{"trainer/audio"}}
	s, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, func(offer string) (string, error) {
		_, ans, err := e.Subscribe(sess, layout, offer)
		return ans, err
	}, func(k webrtc.RTPCodecType, p *rtp.Packet) {
		if k == webrtc.RTPCodecTypeVideo {
			h.add(p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// trackCodecs returns the trainer publication's track codecs by name.
func trackCodecs(sess *sfu.Session) map[string]sfu.Codec {
	out := map[string]sfu.Codec{}
	if p, ok := sess.Publication(sfu.TrainerPublication); ok {
		for _, tr := range p.Tracks() {
			out[tr.Name()] = tr.Codec()
		}
	}
	return out
}

// TestFFmpegPublishesToWebRTC: ffmpeg publishes H.264 + Opus over RTSP with a
// trainer token; a pion WHEP subscriber receives video that decodes, in packets of
// at most 1200 bytes, with SPS/PPS in-band before the IDR pictures (ffmpeg sends
// them only in its SDP), and the audio.
func TestFFmpegPublishesToWebRTC(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			f := newFixture(t, nil)
			edge := newEdge(t)
			tok := f.token(t, testSession, auth.RoleTrainer)
			h := &h264Collector{}
			sub := whepSubscriber(f.ctx, t, edge, f.sess, h)
			stop := startFFmpeg(t, publishArgs(f.url(testSession, tok), transport, "opus")...)

			waitFor(f.ctx, t, "three keyframes at the WebRTC subscriber", func() bool {
				_, keys, _, _ := h.snapshot()
				return keys >= 3
			})
			if err := sub.WaitPackets(f.ctx, 1, 50); err != nil {
				t.Fatalf("audio: %v", err)
			}
			codecs := trackCodecs(f.sess)
			if c := codecs["trainer/video"]; c.MimeType != sfu.MimeH264 || !strings.Contains(c.Fmtp, "sprop-parameter-sets=") {
				t.Fatalf("video codec %+v: want H.264 with its parameter sets", c)
			}
			if c := codecs["trainer/audio"]; c.MimeType != sfu.MimeOpus {
				t.Fatalf("audio codec %+v", c)
			}
			if stderr := stop(); strings.Contains(stderr, "failed") {
				t.Fatalf("ffmpeg: %s", stderr)
			}
			packets, keys, keysWithSPS, maxPayload := h.snapshot()
			if maxPayload > maxVideoPayload {
				t.Fatalf("largest video payload %d bytes, want ≤ %d", maxPayload, maxVideoPayload)
			}
			if keysWithSPS != keys {
				t.Fatalf("%d of %d keyframes had SPS/PPS in-band before them", keysWithSPS, keys)
			}
			h.mu.Lock()
			data := bytes.Clone(h.annexB.Bytes())
			h.mu.Unlock()
			frames := decodeAnnexB(f.ctx, t, data)
			if frames < 60 {
				t.Fatalf("decoded %d frames from %d packets", frames, packets)
			}
			t.Logf("%d packets, %d keyframes, %d frames decoded, largest payload %d", packets, keys, frames, maxPayload)
		})
	}
}

// TestFFmpegPublishesAAC: H.264 + AAC. The video reaches WebRTC subscribers; the AAC
// track carries its config, is reported as not playable in browsers, and reaches
// RTSP readers.
func TestFFmpegPublishesAAC(t *testing.T) {
	f := newFixture(t, nil)
	edge := newEdge(t)
	h := &h264Collector{}
	whepSubscriber(f.ctx, t, edge, f.sess, h)
	startFFmpeg(t, publishArgs(f.url(testSession, f.token(t, testSession, auth.RoleTrainer)), "tcp", "aac")...)
	waitFor(f.ctx, t, "two keyframes at the WebRTC subscriber", func() bool {
		_, keys, _, _ := h.snapshot()
		return keys >= 2
	})
	c := trackCodecs(f.sess)["trainer/audio"]
	if c.MimeType != sfu.MimeAAC || sfu.FmtpParam(c.Fmtp, "config") == "" || c.ClockRate != 48000 {
		t.Fatalf("audio codec %+v: want AAC with its config", c)
	}
	for _, pub := range f.sess.Publications() {
		for _, tr := range pub.Tracks {
			if tr.Name == "trainer/audio" && tr.BrowserPlayable {
				t.Fatal("AAC reported as playable in browsers")
			}
		}
	}
	out, err := ffprobeStreams(t, f, auth.RoleSite, "codec_name,sample_rate,channels")
	if err != nil || !strings.Contains(out, "codec_name=aac|sample_rate=48000|channels=2") || !strings.Contains(out, "codec_name=h264") {
		t.Fatalf("ffprobe of the RTSP reader side: %v\n%s", err, out)
	}
}
