package rtsp

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"lectern/internal/clip"
	"lectern/sfu"
)

const cameraPassword = "camera-secret-pw"

// camera is an IP camera stand-in: a Lectern RTSP server of its own, serving session
// "cam" whose trainer video is a clip with SPS/PPS only in the SDP (as many cameras
// send it) in packets of up to 1400 bytes, plus Opus. It can be stopped and started
// again on the same port.
type camera struct {
	t    *testing.T
	reg  *sfu.Registry
	srv  *Server
	addr string
}

// stripParams returns c with its SPS and PPS NAL units removed, and those.
func stripParams(c *clip.Clip) (out *clip.Clip, sps, pps []byte) {
	cp := *c
	cp.Video = make([]clip.AccessUnit, len(c.Video))
	for i, au := range c.Video {
		var nalus [][]byte
		for _, n := range au.NALUs {
			switch n[0] & 0x1f {
			case naluSPS:
				sps = n
			case naluPPS:
				pps = n
			default:
				nalus = append(nalus, n)
			}
		}
		au.NALUs = nalus
		cp.Video[i] = au
	}
	return &cp, sps, pps
}

func newCamera(t *testing.T, ctx context.Context, videoMime string) *camera {
	t.Helper()
	cam := &camera{t: t, reg: sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})}
	t.Cleanup(cam.reg.CloseAll)
	c, sps, pps := stripParams(loadClip(t))
	fmtp := "packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=" +
		base64.StdEncoding.EncodeToString(sps) + "," + base64.StdEncoding.EncodeToString(pps)
	playClip(t, ctx, cam.reg.Session("cam"), c, sfu.Codec{MimeType: videoMime, ClockRate: 90000, Fmtp: fmtp},
		clip.PlayOptions{Loop: true, MTU: 1400})
	cam.start("127.0.0.1:0")
	return cam
}

func (cam *camera) start(addr string) {
	cam.t.Helper()
	srv, err := NewServer(Config{Address: addr, Sessions: sessionsOf(cam.reg, "cam"), AdminToken: cameraPassword, Logger: testLogger()})
	if err != nil {
		cam.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		cam.t.Fatal(err)
	}
	cam.srv, cam.addr = srv, srv.Addr()
	cam.t.Cleanup(func() { _ = srv.Close() })
}

func (cam *camera) url(password string) string {
	return "rtsp://admin:" + password + "@" + cam.addr + "/cam"
}

func sourceState(s *Sources, session string) SourceInfo {
	list := s.List(session)
	if len(list) == 0 {
		return SourceInfo{}
	}
	return list[0]
}

// seqGap returns the largest forward jump between successive distinct sequence
// numbers (1 means contiguous).
func seqGap(seqs []uint16) int {
	gap := 0
	for i := 1; i < len(seqs); i++ {
		if d := int(seqs[i] - seqs[i-1]); d < 0x8000 && d > gap {
			gap = d
		}
	}
	return gap
}

// TestPullSourceReconnects pulls a camera into the session as the trainer: a WebRTC
// subscriber gets its video (≤ 1200-byte packets, SPS/PPS in-band); the camera goes
// away (the source pauses, the publication stays) and comes back on the same address
// (the source resumes, and the existing subscriber continues with contiguous
// sequence numbers). Credentials appear neither in the API nor in the logs.
func TestPullSourceReconnects(t *testing.T) {
	f := newFixture(t, nil)
	cam := newCamera(t, f.ctx, sfu.MimeH264)
	var logs lockedBuffer
	sources := NewSources(SourcesConfig{
		Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t), BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Timeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	defer sources.Close()
	edge := newEdge(t)
	h := &h264Collector{}
	sub := whepSubscriber(f.ctx, t, edge, f.sess, h)

	info, err := sources.Add(testSession, SourceSpec{URL: cam.url(cameraPassword), Name: "front-cam", As: "trainer"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(info.URL, cameraPassword) || !strings.Contains(info.URL, "REDACTED@") {
		t.Fatalf("source URL not redacted: %s", info.URL)
	}
	waitFor(f.ctx, t, "the source to go live", func() bool { return sourceState(sources, testSession).State == StateLive })
	waitFor(f.ctx, t, "two keyframes at the subscriber", func() bool {
		_, keys, _, _ := h.snapshot()
		return keys >= 2
	})

	_ = cam.srv.Close() // the camera disappears
	waitFor(f.ctx, t, "the source to pause", func() bool { return sourceState(sources, testSession).State == StatePaused })
	if st := sourceState(sources, testSession); st.LastError == "" || strings.Contains(st.LastError, cameraPassword) {
		t.Fatalf("last error %q", st.LastError)
	}
	if _, ok := f.sess.Publication(sfu.TrainerPublication); !ok {
		t.Fatal("the publication was removed while the camera was away")
	}
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	before, _, _, _ := h.snapshot()
	beforeAudio, _, _ := sub.Track(1).Snapshot()

	cam.start(cam.addr) // it comes back
	waitFor(f.ctx, t, "the source to be live again", func() bool { return sourceState(sources, testSession).State == StateLive })
	waitFor(f.ctx, t, "media to resume at the subscriber", func() bool {
		n, _, _, _ := h.snapshot()
		a, _, _ := sub.Track(1).Snapshot()
		return n > before+100 && a > beforeAudio+50
	})

	packets, keys, keysWithSPS, maxPayload := h.snapshot()
	if maxPayload > maxVideoPayload {
		t.Fatalf("largest video payload %d, want ≤ %d (camera sends 1400)", maxPayload, maxVideoPayload)
	}
	if keys < 3 || keysWithSPS != keys {
		t.Fatalf("%d of %d keyframes had SPS/PPS in-band (the camera has them only in its SDP)", keysWithSPS, keys)
	}
	for i := range 2 {
		_, _, seqs := sub.Track(i).Snapshot()
		if g := seqGap(seqs); g > 1 {
			t.Fatalf("track %d: sequence gap of %d across the reconnect", i, g)
		}
	}
	t.Logf("%d video packets, %d keyframes across the reconnect", packets, keys)

	id := sourceState(sources, testSession).ID
	if err := sources.Remove(testSession, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.sess.Publication(sfu.TrainerPublication); ok {
		t.Fatal("the publication outlived its removed source")
	}
	if err := sources.Remove(testSession, id); !errors.Is(err, ErrSourceNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if strings.Contains(logs.String(), cameraPassword) {
		t.Fatal("the camera password appears in the logs")
	}
}

// TestPullSourceRefusals: a wrong password and an H.265 camera leave the source
// retrying with a clear last error, and create no publication.
func TestPullSourceRefusals(t *testing.T) {
	f := newFixture(t, nil)
	cam := newCamera(t, f.ctx, "video/H265")
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t), BackoffMin: 50 * time.Millisecond, Timeout: 2 * time.Second, Logger: testLogger()})
	defer sources.Close()
	for _, tc := range []struct{ name, url, want string }{
		{"wrong-password", cam.url("wrong"), "401"},
		{"hevc", cam.url(cameraPassword), "H.265 is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := sources.Add(testSession, SourceSpec{URL: tc.url, Name: tc.name, As: "site"})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(f.ctx, t, "a last error", func() bool {
				for _, s := range sources.List(testSession) {
					if s.ID == info.ID {
						return strings.Contains(s.LastError, tc.want)
					}
				}
				return false
			})
			for _, s := range sources.List(testSession) {
				if s.ID == info.ID && s.State != StateConnecting {
					t.Fatalf("state %s", s.State)
				}
			}
			if _, ok := f.sess.Publication("site-" + tc.name); ok {
				t.Fatal("a refused source created its publication")
			}
		})
	}
}

// TestSourceSpecValidation covers Add's checks.
func TestSourceSpecValidation(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Allow: loopbackAllowed(t), Logger: testLogger(), BackoffMin: time.Hour})
	defer sources.Close()
	for _, tc := range []struct {
		name    string
		session string
		spec    SourceSpec
		want    error
	}{
		{"http scheme", testSession, SourceSpec{URL: "http://cam/x", Name: "a", As: "site"}, ErrInvalidSource},
		{"no host", testSession, SourceSpec{URL: "rtsp:///x", Name: "a", As: "site"}, ErrInvalidSource},
		{"bad name", testSession, SourceSpec{URL: "rtsp://cam/x", Name: "Front Cam", As: "site"}, ErrInvalidSource},
		{"bad role", testSession, SourceSpec{URL: "rtsp://cam/x", Name: "a", As: "viewer"}, ErrInvalidSource},
		{"unknown session", "nope", SourceSpec{URL: "rtsp://cam/x", Name: "a", As: "site"}, ErrSessionNotFound},
		{"ok", testSession, SourceSpec{URL: "rtsp://u:p@127.0.0.1:1/x", Name: "a", As: "site"}, nil},
		{"duplicate name", testSession, SourceSpec{URL: "rtsp://127.0.0.1:1/y", Name: "a", As: "trainer"}, ErrSourceExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sources.Add(tc.session, tc.spec)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := sources.Remove(testSession, "nope"); !errors.Is(err, ErrSourceNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rtsp://admin:secret@cam:554/live", "rtsp://REDACTED@cam:554/live"},
		{"rtsp://cam/live?user=admin&password=secret&channel=1", "rtsp://cam/live?channel=1&password=REDACTED&user=REDACTED"},
		{"rtsps://cam/live", "rtsps://cam/live"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := redactURL(u); got != tc.want {
			t.Errorf("redactURL(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
