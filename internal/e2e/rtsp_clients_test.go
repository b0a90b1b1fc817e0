package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/sfu"
)

// RTSP readers Lectern did not write, against a session an ffmpeg camera stand-in
// publishes into over RTSP: GStreamer's rtspsrc, and ffmpeg reading AAC back.
// They are black-box tests: only RTSP on loopback between the clients and the
// server, whatever protocol stack the server runs on.

const installGStreamer = "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav"

// cameraFor is how long the ffmpeg camera stand-in publishes: longer than any
// reader of these tests reads; it is killed when the test ends.
const cameraFor = 60 * time.Second

// startCamera publishes H.264 and audioCodec (libopus or aac) into testSession with
// a trainer token, as a studio encoder or IP camera would, and waits until both
// tracks carry media, so readers find a keyframe waiting.
func startCamera(ctx context.Context, t *testing.T, s *stack, audioCodec string) {
	t.Helper()
	pub := publishRTSP(t, s.rtspURL(s.token(t, auth.RoleTrainer)), audioCodec, cameraFor)
	testenv.WaitFor(ctx, t, "the camera's video and audio in the session", func() bool {
		select {
		case p := <-pub:
			t.Fatalf("the ffmpeg camera ended early: %v\n%s", p.err, p.stderr)
		default:
		}
		for _, p := range s.reg.Session(testSession).Publications() {
			if p.Name == sfu.TrainerPublication && len(p.Tracks) >= 2 && p.Tracks[0].Packets > 100 && p.Tracks[1].Packets > 50 { // AAC's Opus variant third
				return true
			}
		}
		return false
	})
}

// gstReadFor is how long each GStreamer reader plays. It must decode ≥ 5 s of
// media: on a loaded 2-core CI machine three gst-launch processes starting at once
// took up to ~5.5 s to decode their first frame, so 10 s was not enough.
const gstReadFor = 20 * time.Second

// TestGStreamerReadsRTSP: GStreamer's rtspsrc, the RTSP client of many hall
// players and decoders, reads a live session over TCP for 20 s and decodes both
// its video and its audio, with the token in the URL's query and as the Basic
// password (rtspsrc's user-id/user-pw, sent once the server asks); a wrong
// password is refused. Both audio
// codecs a publisher may send: Opus (WHIP publishers, OBS) and AAC (cameras).
func TestGStreamerReadsRTSP(t *testing.T) {
	// The audio's RTP caps, from the server's SDP as rtspsrc read it: the codec the
	// publisher sent, not transcoded; the decoded audio sink says it played. (Not
	// the depayloader's caps line: one CI run's -v output had avdec_aac's decoded
	// output and no audio/mpeg line at all.)
	for _, tc := range []struct{ name, encoder, audioCaps string }{
		{"h264-opus", "libopus", "encoding-name=(string)OPUS"},
		{"h264-aac", "aac", "encoding-name=(string)MPEG4-GENERIC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s := newStack(t)
			startCamera(ctx, t, s, tc.encoder)
			bin := testenv.RequireTool(t, "gst-launch-1.0", installGStreamer)
			tok := s.token(t, auth.RoleSite)
			base := "rtsp://" + s.rtsp.Addr() + "/" + testSession
			readers := []struct {
				name    string
				url     string
				props   []string
				refused bool
			}{
				{"token in the query", base + "?token=" + url.QueryEscape(tok), nil, false},
				{"token as user-pw", base, []string{"user-id=hall-decoder", "user-pw=" + tok}, false},
				{"a wrong user-pw", base, []string{"user-id=hall-decoder", "user-pw=not-a-token"}, true},
			}
			// The two readers play at once, as a hall's decoder and a recorder would.
			results := make([]gstResult, len(readers))
			var wg sync.WaitGroup
			for i, r := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = gstreamerRead(ctx, bin, r.url, r.props, gstReadFor)
				}()
			}
			wg.Wait()
			for i, r := range readers {
				res := results[i]
				if r.refused {
					if res.err == nil || !strings.Contains(res.out, "Unauthorized") || len(res.sinks) != 0 {
						t.Errorf("%s: want the reader refused (401) before any media, got %v, sinks %v\n%s", r.name, res.err, res.sinks, res.tail())
					}
					continue
				}
				if res.err != nil {
					t.Errorf("%s: gst-launch-1.0: %v\n%s", r.name, res.err, res.tail())
					continue
				}
				v, a := res.sink("video/x-raw"), res.sink("audio/x-raw")
				switch {
				case v == nil || a == nil:
					t.Errorf("%s: want a decoded video and a decoded audio stream, got %v\n%s", r.name, res.sinks, res.tail())
				case v.buffers < 150 || v.span() < 5*time.Second:
					t.Errorf("%s: %d video frames decoded over %v, want ≥ 150 over ≥ 5 s\n%s", r.name, v.buffers, v.span(), res.tail())
				case a.buffers < 100 || a.span() < 5*time.Second:
					t.Errorf("%s: %d audio buffers decoded over %v, want ≥ 100 over ≥ 5 s\n%s", r.name, a.buffers, a.span(), res.tail())
				case !strings.Contains(res.out, tc.audioCaps):
					t.Errorf("%s: the audio's RTP caps were not %s\n%s", r.name, tc.audioCaps, res.tail())
				default:
					t.Logf("%s: video %d frames over %v, audio %d buffers over %v", r.name, v.buffers, v.span(), a.buffers, a.span())
				}
			}
		})
	}
}

// gstSink is what one fakesink of the reading pipeline received.
type gstSink struct {
	caps             string // media type of the decoded stream: video/x-raw, audio/x-raw
	buffers          int
	firstPTS, maxPTS time.Duration
}

// span is the stretch of media time the sink's buffers covered.
func (s *gstSink) span() time.Duration { return s.maxPTS - s.firstPTS }

func (s *gstSink) String() string {
	return fmt.Sprintf("{%s %d buffers over %v}", s.caps, s.buffers, s.span())
}

// gstResult is how a gst-launch-1.0 reader ended.
type gstResult struct {
	out   string // stdout and stderr
	err   error
	sinks map[string]*gstSink // by fakesink name
}

// sink returns the sink that received decoded media of caps, or nil.
func (r gstResult) sink(caps string) *gstSink {
	for _, s := range r.sinks {
		if s.caps == caps {
			return s
		}
	}
	return nil
}

// tail is the end of the output, without the per-buffer lines, for failure messages.
func (r gstResult) tail() string {
	var keep []string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "last-message = chain") || strings.Contains(l, ": stats = ") || strings.Contains(l, "type: tag") {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		keep = append(keep, l)
	}
	if len(keep) > 60 {
		keep = keep[len(keep)-60:]
	}
	return strings.Join(keep, "\n")
}

var (
	// gstCapsLine is gst-launch -v's report of a fakesink pad's negotiated caps,
	// or the caps event the sink received (either may be missing from the output
	// when the two streams' notifications cross).
	gstCapsLine = regexp.MustCompile(`GstFakeSink:(sink\d+)(?:\.GstPad:sink: caps = |: last-message = event .*type: caps .*caps=\(GstCaps\)")([a-z]+/[a-z0-9.-]+)`)
	// gstBufferLine is a fakesink's last-message for one buffer.
	gstBufferLine = regexp.MustCompile(`GstFakeSink:(sink\d+): last-message = chain .*pts: (\d+):(\d\d):(\d\d)\.(\d{9})`)
)

// gstreamerRead plays url with rtspsrc (bin is gst-launch-1.0) over TCP for d (props are extra rtspsrc
// properties), one decodebin per stream into a fakesink each (a single decodebin
// would stall the TCP-interleaved session waiting for its other stream), then
// interrupts it so rtspsrc tears the session down, and parses what each sink got.
func gstreamerRead(ctx context.Context, bin, url string, props []string, d time.Duration) gstResult {
	args := []string{"-v", "-e", "rtspsrc", "location=" + url, "protocols=tcp", "latency=200", "name=s"}
	args = append(args, props...)
	for i := range 2 {
		args = append(args, "s.", "!", "queue", "!", "decodebin", "!", "fakesink", fmt.Sprintf("name=sink%d", i), "silent=false")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GST_DEBUG_NO_COLOR=1", "GST_REGISTRY_FORK=no")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return gstResult{err: err}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited: // it should not end before it is interrupted
		if err == nil {
			err = errors.New("gst-launch-1.0 ended before it was interrupted")
		}
	case <-time.After(d):
		// SIGINT with -e: the pipeline gets an EOS, rtspsrc sends TEARDOWN, and
		// gst-launch exits cleanly with its output flushed.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err = <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			err = fmt.Errorf("no exit 20 s after the interrupt (killed): %w", <-exited)
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		err = fmt.Errorf("%w (killed: %v)", ctx.Err(), <-exited)
	}
	res := gstResult{out: out.String(), err: err, sinks: map[string]*gstSink{}}
	if err == nil && strings.Contains(res.out, "ERROR: from element") {
		res.err = errors.New("the pipeline reported an error")
	}
	get := func(name string) *gstSink {
		if res.sinks[name] == nil {
			res.sinks[name] = &gstSink{firstPTS: -1}
		}
		return res.sinks[name]
	}
	for _, l := range strings.Split(res.out, "\n") {
		if m := gstCapsLine.FindStringSubmatch(l); m != nil {
			get(m[1]).caps = m[2]
		} else if m := gstBufferLine.FindStringSubmatch(l); m != nil {
			h, _ := strconv.Atoi(m[2])
			mi, _ := strconv.Atoi(m[3])
			sec, _ := strconv.Atoi(m[4])
			ns, _ := strconv.Atoi(m[5])
			pts := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ns)
			s := get(m[1])
			s.buffers++
			if s.firstPTS < 0 {
				s.firstPTS = pts
			}
			s.maxPTS = max(s.maxPTS, pts)
		}
	}
	return res
}

// lockedBuffer collects a process's output that its copiers and the test share.
type lockedBuffer = testenv.LockedBuffer

// TestFFmpegReadsAACBack: a camera publishes H.264 + AAC over RTSP; ffmpeg reads
// the session back over RTSP for 8 s and copies what it gets into a file, whose AAC
// stream (and H.264) ffprobe identifies and ffmpeg decodes without an error.
func TestFFmpegReadsAACBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStack(t)
	startCamera(ctx, t, s, "aac")
	bin := testenv.RequireTool(t, "ffmpeg", installFFmpeg)
	path := filepath.Join(t.TempDir(), "read-back.mkv")
	const readFor = 8 * time.Second
	out, err := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-v", "error",
		"-rtsp_transport", "tcp", "-i", s.rtspURL(s.token(t, auth.RoleSite)),
		"-t", strconv.Itoa(int(readFor.Seconds())), "-map", "0", "-c", "copy", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg reading the session: %v\n%s", err, out)
	}
	if errs := decodeErrors(ctx, t, path); errs != "" {
		t.Errorf("decoding what ffmpeg read: %s", errs)
	}
	p := ffprobe(ctx, t, path)
	a, okA := p.stream("audio")
	v, okV := p.stream("video")
	// AAC frames are 1024 samples at 48 kHz: 46.9 a second.
	minAudio := int((readFor - 2*time.Second).Seconds() * 48000 / 1024)
	switch {
	case !okA || a.Codec != "aac" || a.Frames < minAudio:
		t.Errorf("audio %+v, want aac with ≥ %d frames (%+v)", a, minAudio, p)
	case !okV || v.Codec != "h264" || v.Frames < 150:
		t.Errorf("video %+v, want h264 with ≥ 150 frames (%+v)", v, p)
	}
	t.Logf("read back %.2f s: video %d frames, audio %s %d frames", p.Duration, v.Frames, a.Codec, a.Frames)
}
