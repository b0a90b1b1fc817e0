package recorder

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/sfu"
	"lectern/storage"
)

// testLogger discards logs unless LECTERN_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("LECTERN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newRecorder returns a recorder on store with fast retries for tests; the caller
// closes it (or crashes it).
func newRecorder(t *testing.T, store Store, spool string, mod func(*Config)) *Recorder {
	t.Helper()
	cfg := Config{Store: store, SpoolDir: spool, RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
		UploadTimeout: 5 * time.Second, Logger: testLogger(), Title: func(string) string { return "Bài giảng" }}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func closeRecorder(t *testing.T, r *Recorder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Error(err)
	}
}

// recordSession returns a recorder on store (its Config changed by mod), closed
// at the end of the test, attached to the session id of a new registry with
// that grace (-1: none), and a context for the test's feeds that ends with the
// test or after timeout.
func recordSession(t *testing.T, store Store, id string, grace, timeout time.Duration, mod func(*Config)) (*Recorder, *sfu.Session, context.Context) {
	t.Helper()
	r := newRecorder(t, store, t.TempDir(), mod)
	t.Cleanup(func() { closeRecorder(t, r) })
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: grace, Logger: testLogger()})
	sess := reg.Session(id)
	r.Attach(sess)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return r, sess, ctx
}

// nextFrame tells which of the clip's frames comes next in time, the video
// frame vi or the audio frame ai (the other stream may be done), and its PTS.
func nextFrame(c *clip.Clip, vi, ai int) (video bool, pts time.Duration) {
	video = ai >= len(c.Audio) || (vi < len(c.Video) && c.Video[vi].PTS <= c.Audio[ai].PTS)
	if video {
		return true, c.Video[vi].PTS
	}
	return false, c.Audio[ai].PTS
}

// publisher feeds a clip into a publication's tracks as a WHIP read loop would.
type publisher struct {
	lease        *sfu.Lease
	video, audio *sfu.Track
	screen       *sfu.Track // optional: gets the same pictures as video
	sseq         uint16
	vseq, aseq   uint16
	vts, ats     uint32
	ssrc         uint32
}

var (
	h264Codec = sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1"}
	opusCodec = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2}
)

func newPublisher(t *testing.T, sess *sfu.Session, name string) *publisher {
	t.Helper()
	lease, err := sess.Claim(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{lease: lease, vseq: 1000, aseq: 5000, vts: 123456, ats: 777, ssrc: 42}
	if p.video, err = lease.Track("video", sfu.KindVideo, h264Codec, nil); err != nil {
		t.Fatal(err)
	}
	if p.audio, err = lease.Track("audio", sfu.KindAudio, opusCodec, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// feedOptions alter how a clip is sent.
type feedOptions struct {
	speed float64 // times real time; default 4
	// drop, when set, says whether to drop a video packet (by index).
	drop func(i int) bool
	// reorder swaps consecutive video packets now and then.
	reorder bool
	// tsJump is added to video and audio timestamps from the middle of the clip on.
	tsJump uint32
	// between runs, on the feeding goroutine, after each second of media.
	between func(sec int)
}

// feed sends c once, video and audio interleaved in time order, paced at
// o.speed times real time. Timestamps continue from the previous feed.
func (p *publisher) feed(t *testing.T, ctx context.Context, c *clip.Clip, o feedOptions) {
	t.Helper()
	if o.speed == 0 {
		o.speed = 4
	}
	start := time.Now()
	vi, ai, pkt := 0, 0, 0
	vts0, ats0 := p.vts, p.ats
	lastSec := 0
	var held *rtp.Packet
	for vi < len(c.Video) || ai < len(c.Audio) {
		video, pts := nextFrame(c, vi, ai)
		if sec := int(pts / time.Second); sec != lastSec && o.between != nil {
			lastSec = sec
			o.between(sec)
		}
		jump := uint32(0)
		if pts >= c.Duration/2 {
			jump = o.tsJump
		}
		if wait := time.Until(start.Add(time.Duration(float64(pts) / o.speed))); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		if video {
			au := c.Video[vi]
			ts := vts0 + uint32(au.PTS*90000/time.Second) + jump*90000/48000
			for _, rp := range au.Packetize(1200) {
				rp := rp
				rp.SSRC, rp.PayloadType, rp.Timestamp, rp.SequenceNumber = p.ssrc, 102, ts, p.vseq
				p.vseq++
				pkt++
				if o.drop != nil && o.drop(pkt) {
					continue
				}
				if o.reorder && pkt%50 == 0 && held == nil {
					held = &rp
					continue
				}
				if err := p.video.WriteRTP(&rp); err != nil {
					t.Errorf("video: %v", err)
					return
				}
				if held != nil {
					_ = p.video.WriteRTP(held)
					held = nil
				}
				if p.screen != nil {
					rp.SSRC, rp.SequenceNumber = p.ssrc+2, p.sseq
					p.sseq++
					if err := p.screen.WriteRTP(&rp); err != nil {
						t.Errorf("screen: %v", err)
						return
					}
				}
			}
			p.vts = ts + 3000
			vi++
		} else {
			f := c.Audio[ai]
			ts := ats0 + uint32(f.PTS*48000/time.Second) + jump
			rp := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: p.ssrc + 1, PayloadType: 111, Timestamp: ts, SequenceNumber: p.aseq, Marker: ai == 0}, Payload: f.Data}
			p.aseq++
			if err := p.audio.WriteRTP(&rp); err != nil {
				t.Errorf("audio: %v", err)
				return
			}
			p.ats = ts + 960
			ai++
		}
	}
}

// waitComplete waits until n recordings are complete and returns them, newest
// first.
func waitComplete(t *testing.T, r *Recorder, n int, within time.Duration) []Meta {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		page, err := r.List(Query{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, m := range page.Recordings {
			if m.Status == StatusComplete {
				done++
			}
		}
		if done >= n {
			return page.Recordings
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d recordings complete after %v: %+v", done, n, within, page.Recordings)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ffprobeDecodeErrors decodes url and returns what ffmpeg reported at error level.
func ffmpegDecodeErrors(t *testing.T, url string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v", "error", "-i", url, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg decode %s: %v\n%s", url, err, out)
	}
	return string(out)
}

// writeDownload writes the download of a recording's rendition to a file.
func writeDownload(t *testing.T, r *Recorder, id, rendition string) string {
	t.Helper()
	ctx := context.Background()
	d, err := r.Download(ctx, id, rendition)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), d.Name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, _ := f.Write(d.Header)
	total := int64(n)
	for _, p := range d.Parts {
		rc, _, err := r.cfg.Store.Open(ctx, p.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		m, err := io.Copy(f, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		total += m
	}
	if total != d.Size {
		t.Fatalf("download of %d bytes, announced %d", total, d.Size)
	}
	return path
}

func near(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }

// flakyStore fails every Put while down is set, as an unreachable store would.
type flakyStore struct {
	Store
	down atomic.Bool
	puts atomic.Int64
}

var errStoreDown = errors.New("store down (test)")

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if f.down.Load() {
		return errStoreDown
	}
	f.puts.Add(1)
	return f.Store.Put(ctx, key, r, size, ct)
}

// storedSegments lists the segment objects of a rendition directory.
func storedSegments(t *testing.T, st Store, prefix string) []string {
	t.Helper()
	var segs []string
	err := st.List(context.Background(), prefix, func(o storage.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, prefix)
		if !strings.Contains(rest, "/") && strings.HasSuffix(rest, ".m4s") {
			segs = append(segs, rest)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// readStored returns an object's bytes.
func readStored(t *testing.T, st Store, key string) string {
	t.Helper()
	rc, _, err := st.Open(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkPlaylist checks that a VOD playlist lists segments 1..n once each, in
// order, and that every one is stored.
func checkPlaylist(t *testing.T, st Store, prefix string, n int) string {
	t.Helper()
	pl := readStored(t, st, prefix+"index.m3u8")
	var listed []string
	for _, line := range strings.Split(pl, "\n") {
		if strings.HasPrefix(line, "seg-") {
			listed = append(listed, line)
		}
	}
	if !strings.Contains(pl, "#EXT-X-ENDLIST") || len(listed) != n {
		t.Fatalf("playlist lists %d segments, want %d:\n%s", len(listed), n, pl)
	}
	for i, s := range listed {
		if s != segmentFile(i+1) {
			t.Fatalf("playlist entry %d is %s, want %s (duplicate or gap)", i, s, segmentFile(i+1))
		}
	}
	if stored := storedSegments(t, st, prefix); len(stored) != n {
		t.Fatalf("%d segment objects stored, want %d: %v", len(stored), n, stored)
	}
	return pl
}

// gatherMetric returns the value of a metric (with the given label value, if any).
func gatherMetric(t *testing.T, r *Recorder, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
