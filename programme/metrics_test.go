package programme

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// TestInboxDropsCounted: a source packet that finds the programme's inbox full is
// dropped (the source is never held up) and counted in
// lectern_programme_inbox_drops_total; the packets queued before stay queued.
func TestInboxDropsCounted(t *testing.T) {
	f := newFixture(t)
	// A programme whose goroutine does not run: nothing takes from its inbox.
	p := newProg(f.m, f.sess, func() {}, nil)
	s := &sink{p: p, role: roleVideo}
	const extra = 7
	for i := range inboxSize + extra {
		pkt := &sfu.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i)}, Payload: []byte{1}}
		if err := s.WriteRTP(pkt); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if n := value(t, f.m.metrics.inboxDrops); n != extra {
		t.Errorf("inbox drops = %v, want %d", n, extra)
	}
	if n := len(p.in); n != inboxSize {
		t.Errorf("%d packets queued, want %d", n, inboxSize)
	}
	for i := 0; len(p.in) > 0; i++ {
		it := <-p.in
		if it.pkt.Header.SequenceNumber != uint16(i) {
			t.Fatalf("queued packet %d is %d: the first ones must stay", i, it.pkt.Header.SequenceNumber)
		}
		it.pkt.Release()
	}
	if !strings.Contains(metricNames(t, f), "lectern_programme_inbox_drops_total") {
		t.Error("the collector does not export lectern_programme_inbox_drops_total")
	}
}

// metricNames lists the names of the series the manager's collector exports.
func metricNames(t *testing.T, f *fixture) string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 32)
	go func() {
		f.m.Collector().Describe(ch)
		close(ch)
	}()
	var b strings.Builder
	for d := range ch {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestSpeakerVideoOtherCodec: in speaker mode a floor holder whose camera is in
// another codec than the programme's is not shown (nothing transcodes video): the
// programme keeps the trainer's picture, and says why once per grant, in the log
// (Info) and in lectern_programme_excluded_total{reason="video_codec"}.
func TestSpeakerVideoOtherCodec(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	f.mode.Store(VideoSpeaker)
	tc := &camera{id: 1, inBand: true, ssrc: 0xaaaa}
	tc.tracks = []*sfu.Track{f.publish(t, sfu.TrainerPublication, "video", sfu.KindVideo, h264Codec, tc.requestKeyframe)}
	capt := newCapture(t, f.programmeTrack(t, "video"))
	vp8 := sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}
	holder := f.publish(t, "site-hue", "video", sfu.KindVideo, vp8, nil)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	const line = "floor holder's camera not shown"
	testenv.WaitFor(ctx, t, "the holder's camera reported", func() bool {
		tc.frame(t)
		time.Sleep(5 * time.Millisecond) // pace the camera
		return strings.Contains(f.logs.String(), line)
	})
	// More reconcile rounds (and a repeated floor change with the same holder):
	// still one report.
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	for range 3 * int(housekeeping/(5*time.Millisecond)) {
		tc.frame(t)
		time.Sleep(5 * time.Millisecond)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, line); n != 1 {
		t.Errorf("%d reports of the holder's camera:\n%s", n, logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, line) && (!strings.Contains(l, "level=INFO") || !strings.Contains(l, "publication=site-hue") ||
			!strings.Contains(l, "codec=video/VP8") || !strings.Contains(l, "programme_codec=video/H264")) {
			t.Errorf("report: %s", l)
		}
	}
	if n := value(t, f.m.metrics.excluded.WithLabelValues(excludedVideoCodec)); n != 1 {
		t.Errorf("excluded{video_codec} = %v, want 1", n)
	}
	if n := holder.Sinks(); n != 0 {
		t.Errorf("the holder's camera has %d sinks", n)
	}
	for i, p := range capt.packets() {
		if id, _ := source(p); id != 1 {
			t.Fatalf("programme packet %d is from camera %d", i, id)
		}
	}
	if n := value(t, f.m.metrics.switches.WithLabelValues(switchVideo)); n != 0 {
		t.Errorf("video switches = %v, want 0", n)
	}

	// A new grant is a new chance, reported again (the programme takes the two
	// changes in order, even in one batch).
	f.m.SetSpeakers(testSession, nil)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's camera reported again", func() bool {
		tc.frame(t)
		time.Sleep(5 * time.Millisecond)
		return value(t, f.m.metrics.excluded.WithLabelValues(excludedVideoCodec)) == 2
	})
}
