package rtsp

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// minFramesIn6s is what a reader must decode of 6 s of the 30 fps clip: 4 s of
// it. The clip is played into the session at wall-clock pace by a goroutine of
// the test, which a loaded CI machine delays (149 of 180 frames were seen once
// under the full suite); a reader that gets no video, or only a GOP, is far below.
const minFramesIn6s = 120

// TestFFmpegReads plays a session's trainer tracks to ffmpeg over both transports
// and checks that it decodes at least five seconds of video and the audio.
func TestFFmpegReads(t *testing.T) {
	f := newFixture(t, nil)
	c := loadClip(t)
	playIntoSession(t, f.ctx, f.sess, c, "packetization-mode=1;profile-level-id=42e01f")
	tok := f.token(t, testSession, auth.RoleSite)
	waitFor(f.ctx, t, "a keyframe in the track cache", func() bool { return f.sess.Publications()[0].Tracks[0].Packets > 40 })

	for _, tc := range []struct{ name, transport, url string }{
		{"tcp", "tcp", f.url(testSession, tok)},
		{"udp", "udp", f.url(testSession, tok)},
		{"tcp admin token as basic password", "tcp", f.basicURL(testSession, testAdmin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
			defer cancel()
			out, stderr, err := ffmpeg(ctx, t, "-v", "error", "-rtsp_transport", tc.transport, "-i", tc.url,
				"-t", "6", "-f", "null", "-", "-progress", "pipe:1")
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr)
			}
			frames, _ := strconv.Atoi(lastProgress(out, "frame"))
			if frames < minFramesIn6s {
				t.Fatalf("ffmpeg decoded %d frames in 6 s, want ≥ %d\n%s", frames, minFramesIn6s, stderr)
			}
			if strings.Contains(stderr, "error while decoding") || strings.Contains(stderr, "non-existing PPS") {
				t.Fatalf("decode errors:\n%s", stderr)
			}
			t.Logf("%s: %d frames; stderr: %q", tc.name, frames, stderr)
		})
	}
	if n := f.sess.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers left after the readers quit", n)
	}
}

// TestFFprobeSeesAllStreams checks the SDP: H.264 with parameter sets and Opus.
func TestFFprobeSeesAllStreams(t *testing.T) {
	f := newFixture(t, nil)
	c := loadClip(t)
	playIntoSession(t, f.ctx, f.sess, c, "packetization-mode=1;profile-level-id=42e01f")
	waitFor(f.ctx, t, "a keyframe in the track cache", func() bool { return f.sess.Publications()[0].Tracks[0].Packets > 40 })
	out, err := ffprobeStreams(t, f, auth.RoleViewer, "codec_name,width,height,sample_rate")
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	if !strings.Contains(out, "codec_name=h264|width=640|height=360") || !strings.Contains(out, "codec_name=opus") {
		t.Fatalf("ffprobe streams:\n%s", out)
	}
	// The publisher declared no parameter sets: the SDP has them from the keyframe.
	c2 := dialRaw(t, f.srv.Addr())
	res := c2.do("DESCRIBE", f.url(testSession, testAdmin), nil, "")
	if res.status != 200 || !strings.Contains(string(res.body), "sprop-parameter-sets=") || !strings.Contains(string(res.body), "a=rtpmap:97 opus/48000/2") {
		t.Fatalf("DESCRIBE: %d\n%s", res.status, res.body)
	}
}

// TestReaderLimit: readers count against the session's subscriber limit.
func TestReaderLimit(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{MaxSubscribers: 1, Logger: testLogger()})
	defer reg.CloseAll()
	f := newFixture(t, func(c *Config) { c.Sessions = sessionsOf(reg, testSession) })
	playIntoSession(t, f.ctx, reg.Session(testSession), loadClip(t), "packetization-mode=1")
	url := f.url(testSession, testAdmin)
	play := func() *rawResponse {
		c := dialRaw(t, f.srv.Addr())
		id := c.setup(url+"/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1", "")
		return c.do("PLAY", url, [][2]string{{"Session", id}}, "")
	}
	if res := play(); res.status != 200 {
		t.Fatalf("first reader: %d %s", res.status, res.reason)
	}
	if res := play(); res.status != 503 || !strings.Contains(res.reason, "limit") {
		t.Fatalf("second reader: %d %s", res.status, res.reason)
	}
}

// TestWHIPPublisherToFFmpeg: a real pion WHIP publisher feeds the session through
// the WebRTC edge; ffmpeg reads it over RTSP and decodes at least five seconds.
func TestWHIPPublisherToFFmpeg(t *testing.T) {
	f := newFixture(t, nil)
	edge := newEdge(t)
	c := loadClip(t)
	pub, err := testpeer.NewPublisher(f.ctx, testpeer.Options{}, false, func(offer string) (string, error) {
		_, ans, err := edge.Publish(f.sess, sfu.TrainerPublication, offer)
		return ans, err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pub.Play(ctx, c, nil)
	}()
	defer func() {
		cancel()
		<-done
		pub.Close()
	}()
	waitFor(f.ctx, t, "the WHIP publisher's tracks", func() bool {
		p, ok := f.sess.Publication(sfu.TrainerPublication)
		return ok && len(p.Tracks()) == 2 && p.Tracks()[0].Packets() > 40 && p.Tracks()[1].Packets() > 10
	})
	rctx, rcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer rcancel()
	out, stderr, err := ffmpeg(rctx, t, "-v", "error", "-rtsp_transport", "tcp", "-i", f.url(testSession, f.token(t, testSession, auth.RoleSite)),
		"-t", "6", "-f", "null", "-", "-progress", "pipe:1")
	if frames, _ := strconv.Atoi(lastProgress(out, "frame")); err != nil || frames < minFramesIn6s {
		t.Fatalf("ffmpeg: %v, %d frames (want ≥ %d)\n%s", err, frames, minFramesIn6s, stderr)
	}
}
