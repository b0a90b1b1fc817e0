package sfu

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var h264 = Codec{MimeType: MimeH264, ClockRate: 90000}
var opus = Codec{MimeType: MimeOpus, ClockRate: 48000, Channels: 2}

// Synthetic H.264 payloads: valid NAL headers, not decodable.
var (
	spsPPS   = []byte{h264STAPA, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}
	idrStart = []byte{0x7c, 0x85, 1, 2, 3} // FU-A, start bit, type 5
	idrEnd   = []byte{0x7c, 0x45, 4, 5, 6} // FU-A, end bit
	pFrame   = []byte{0x41, 0x9a, 1, 2}    // single NAL type 1
)

type collectSink struct {
	seqs []uint16
	pkts int
	err  error
}

func (c *collectSink) WriteRTP(p *Packet) error {
	c.seqs = append(c.seqs, p.Header.SequenceNumber)
	c.pkts++
	return c.err
}

func TestH264IsKeyframe(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"sps", []byte{0x67, 0x42}, true},
		{"idr single", []byte{0x65, 0x88}, true},
		{"p slice", pFrame, false},
		{"stap-a with sps", spsPPS, true},
		{"stap-a without sps", []byte{h264STAPA, 0, 2, 0x68, 0xce, 0, 1, 0x06}, false},
		{"stap-a truncated", []byte{h264STAPA, 0, 9, 0x67}, false},
		{"fu-a idr start", idrStart, true},
		{"fu-a idr middle", []byte{0x7c, 0x05, 1}, false},
		{"fu-a non-idr start", []byte{0x7c, 0x81, 1}, false},
		{"fu-a too short", []byte{0x7c}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := H264IsKeyframe(tc.payload); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRewriter(t *testing.T) {
	t.Run("first source passes through", func(t *testing.T) {
		var r Rewriter
		for i := uint16(0); i < 3; i++ {
			s, ts := r.Rewrite(65534+i, 1000+uint32(i)*3000, 90000, int64(i))
			if s != 65534+i || ts != 1000+uint32(i)*3000 {
				t.Fatalf("packet %d: got %d/%d", i, s, ts)
			}
		}
	})
	t.Run("new source continues", func(t *testing.T) {
		var r Rewriter
		r.Rewrite(100, 5000, 90000, 0)
		r.Rewrite(101, 8000, 90000, int64(33*time.Millisecond))
		r.Resync()
		s, ts := r.Rewrite(40000, 123456, 90000, int64(133*time.Millisecond))
		if s != 102 {
			t.Fatalf("seq %d, want 102", s)
		}
		if want := uint32(8000 + 9000); ts != want {
			t.Fatalf("ts %d, want %d (100 ms later)", ts, want)
		}
		s, ts = r.Rewrite(40001, 126456, 90000, int64(166*time.Millisecond))
		if s != 103 || ts != 8000+9000+3000 {
			t.Fatalf("next: %d/%d", s, ts)
		}
		if in, ok := r.Invert(103); !ok || in != 40001 {
			t.Fatalf("invert 103: %d %v", in, ok)
		}
		if _, ok := r.Invert(101); ok {
			t.Fatal("inverted a number from the previous mapping")
		}
	})
	t.Run("seq-only resync keeps timestamps", func(t *testing.T) {
		var r Rewriter
		r.Rewrite(10, 1000, 90000, 0)
		r.ResyncSeq()
		s, ts := r.Rewrite(20, 31000, 90000, 1)
		if s != 11 || ts != 31000 {
			t.Fatalf("got %d/%d, want 11/31000", s, ts)
		}
	})
	t.Run("reordered packet keeps its place", func(t *testing.T) {
		var r Rewriter
		r.Rewrite(10, 1000, 90000, 0)
		r.Rewrite(12, 1000, 90000, 1)
		if s, _ := r.Rewrite(11, 1000, 90000, 2); s != 11 {
			t.Fatalf("got %d", s)
		}
	})
}

func newTestSession(t *testing.T, cfg RegistryConfig) *Session {
	t.Helper()
	r := NewRegistry(cfg)
	t.Cleanup(r.CloseAll)
	return r.Session("s1")
}

func writeVideo(t *testing.T, tr *Track, ssrc uint32, seq uint16, ts uint32, payload []byte, marker bool) {
	t.Helper()
	if err := tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}); err != nil {
		t.Fatal(err)
	}
}

func TestTrackFanOutAndFastStart(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	lease, err := s.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	var keyRequests atomic.Int32
	tr, err := lease.Track("video", KindVideo, h264, func() { keyRequests.Add(1) })
	if err != nil {
		t.Fatal(err)
	}

	early := &collectSink{}
	tr.AddSink(early)
	if keyRequests.Load() != 1 {
		t.Fatalf("a joiner with nothing cached should trigger a keyframe request, got %d", keyRequests.Load())
	}
	writeVideo(t, tr, 1, 10, 0, pFrame, true) // before any keyframe: not cached for fast start
	writeVideo(t, tr, 1, 11, 3000, spsPPS, false)
	writeVideo(t, tr, 1, 12, 3000, idrStart, false)
	writeVideo(t, tr, 1, 13, 3000, idrEnd, true)
	writeVideo(t, tr, 1, 14, 6000, pFrame, true)

	late := &collectSink{}
	tr.AddSink(late)
	if got := late.seqs; len(got) != 4 || got[0] != 11 || got[3] != 14 {
		t.Fatalf("fast start delivered %v, want 11..14", got)
	}
	if keyRequests.Load() != 1 {
		t.Fatalf("fast start from cache must not ask upstream, got %d requests", keyRequests.Load())
	}
	writeVideo(t, tr, 1, 15, 9000, pFrame, true)
	if n := len(early.seqs); n != 6 {
		t.Fatalf("early sink got %d packets, want 6", n)
	}
	if n := len(late.seqs); n != 5 || late.seqs[4] != 15 {
		t.Fatalf("late sink got %v", late.seqs)
	}

	p := tr.Retransmit(13)
	if p == nil || p.Header.SequenceNumber != 13 {
		t.Fatal("packet 13 not in the cache")
	}
	p.Release()
	if tr.Retransmit(2000) != nil {
		t.Fatal("unknown packet found in the cache")
	}
}

func TestSinkErrorDetaches(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	lease, _ := s.Claim(TrainerPublication, nil)
	tr, _ := lease.Track("audio", KindAudio, opus, nil)
	bad := &collectSink{err: ErrTrackClosed}
	tr.AddSink(bad)
	writeVideo(t, tr, 1, 1, 0, []byte{1}, false)
	writeVideo(t, tr, 1, 2, 960, []byte{1}, false)
	if bad.pkts != 1 || tr.Sinks() != 0 {
		t.Fatalf("failing sink got %d packets, %d sinks left", bad.pkts, tr.Sinks())
	}
}

func TestKeyframeRequestsCoalesced(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	lease, _ := s.Claim(TrainerPublication, nil)
	var n atomic.Int32
	tr, _ := lease.Track("video", KindVideo, h264, func() { n.Add(1) })
	for i := 0; i < 20; i++ {
		tr.RequestKeyframe()
	}
	if n.Load() != 1 {
		t.Fatalf("20 requests produced %d upstream", n.Load())
	}
	if s.Stats().KeyframeRequests.Load() != 1 {
		t.Fatal("keyframe request not counted")
	}
}

func TestReconnectWithinGraceContinuesTracks(t *testing.T) {
	var events []string
	s := newTestSession(t, RegistryConfig{Grace: time.Hour, OnEvent: func(_, typ string, _ any) { events = append(events, typ) }})
	replaced := 0
	l1, _ := s.Claim(TrainerPublication, func() { replaced++ })
	tr1, _ := l1.Track("video", KindVideo, h264, nil)
	sink := &collectSink{}
	tr1.AddSink(sink)
	writeVideo(t, tr1, 111, 500, 1000, spsPPS, true)
	writeVideo(t, tr1, 111, 501, 4000, pFrame, true)
	l1.Release()
	if !s.Live() {
		t.Fatal("publication removed during grace")
	}
	l2, _ := s.Claim(TrainerPublication, nil)
	tr2, _ := l2.Track("video", KindVideo, h264, nil)
	if tr2 != tr1 {
		t.Fatal("reconnect created a new track")
	}
	writeVideo(t, tr2, 222, 9000, 777777, spsPPS, true)
	if got := sink.seqs; len(got) != 3 || got[2] != 502 {
		t.Fatalf("seqs %v, want continuous 500..502", got)
	}
	// A trainer connection replaced while still live has its onReplaced called.
	s.Claim(TrainerPublication, nil)
	l1.Release() // stale lease: no effect
	if !s.Live() {
		t.Fatal("stale release removed the publication")
	}
	want := []string{EventPublicationAdded, EventSessionLive, EventPublicationPaused, EventPublicationResumed}
	for i, w := range want {
		if i >= len(events) || events[i] != w {
			t.Fatalf("events %v, want prefix %v", events, want)
		}
	}
}

type endSink struct {
	collectSink
	ended chan *Track
}

func (e *endSink) TrackEnded(t *Track) { e.ended <- t }

func TestGraceExpiryRemovesPublication(t *testing.T) {
	removed := make(chan string, 4)
	s := newTestSession(t, RegistryConfig{Grace: 20 * time.Millisecond, OnEvent: func(_, typ string, _ any) {
		if typ == EventPublicationRemoved {
			removed <- typ
		}
	}})
	l, _ := s.Claim("site-ha-noi", nil)
	tr, _ := l.Track("audio", KindAudio, opus, nil)
	sink := &endSink{ended: make(chan *Track, 1)}
	tr.AddSink(sink)
	l.Release()
	select {
	case <-removed:
	case <-time.After(5 * time.Second):
		t.Fatal("publication not removed after grace")
	}
	select {
	case got := <-sink.ended:
		if got != tr {
			t.Fatal("wrong track ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sink not told its track ended")
	}
	if _, ok := s.Publication("site-ha-noi"); ok {
		t.Fatal("publication still there")
	}
	if err := tr.WriteRTP(&rtp.Packet{Payload: []byte{1}}); err != ErrTrackClosed {
		t.Fatalf("write to closed track: %v", err)
	}
}

func TestWatchSeesExistingAndNewTracks(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	l, _ := s.Claim(TrainerPublication, nil)
	l.Track("video", KindVideo, h264, nil)
	var seen []string
	cancel := s.Watch(func(tr *Track) { seen = append(seen, tr.Name()) })
	l.Track("audio", KindAudio, opus, nil)
	cancel()
	l.Track("screen", KindVideo, h264, nil)
	if len(seen) != 2 || seen[0] != "trainer/video" || seen[1] != "trainer/audio" {
		t.Fatalf("seen %v", seen)
	}
}

func TestSubscriberLimit(t *testing.T) {
	s := newTestSession(t, RegistryConfig{MaxSubscribers: 2})
	r1, err := s.AddSubscriber()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSubscriber(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSubscriber(); err == nil {
		t.Fatal("third subscriber accepted")
	}
	r1()
	r1()
	if s.Subscribers() != 1 {
		t.Fatalf("count %d after release", s.Subscribers())
	}
}

func TestQueueDropsVideoUntilKeyframe(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	l, _ := s.Claim(TrainerPublication, nil)
	var keyReqs atomic.Int32
	tr, _ := l.Track("video", KindVideo, h264, nil)
	q := NewQueue(QueueOptions{Size: 2, Kind: KindVideo, Stats: s.Stats(), RequestKeyframe: func() { keyReqs.Add(1) }})
	tr.AddSink(q)
	writeVideo(t, tr, 1, 1, 0, spsPPS, true)
	writeVideo(t, tr, 1, 2, 3000, pFrame, true)
	writeVideo(t, tr, 1, 3, 6000, pFrame, true) // full: dropped, now waits for a keyframe
	writeVideo(t, tr, 1, 4, 9000, pFrame, true)
	ctx := context.Background()
	for _, want := range []uint16{1, 2} {
		item, _ := q.Next(ctx)
		if item.Packet.Header.SequenceNumber != want || item.Resync != ResyncNone {
			t.Fatalf("got %d resync=%v, want %d", item.Packet.Header.SequenceNumber, item.Resync, want)
		}
		item.Packet.Release()
	}
	writeVideo(t, tr, 1, 5, 12000, pFrame, true) // still waiting for a keyframe
	writeVideo(t, tr, 1, 6, 15000, spsPPS, true)
	item, _ := q.Next(ctx)
	if item.Packet.Header.SequenceNumber != 6 || item.Resync != ResyncDrop {
		t.Fatalf("after drop got %d resync=%v, want keyframe 6 with resync", item.Packet.Header.SequenceNumber, item.Resync)
	}
	item.Packet.Release()
	if q.Dropped() != 3 || keyReqs.Load() != 1 {
		t.Fatalf("dropped %d, keyframe requests %d", q.Dropped(), keyReqs.Load())
	}
	if s.Stats().QueueDrops.Load() != 3 {
		t.Fatal("drops not counted in stats")
	}
}

// BenchmarkTrackWriteRTP measures the fan-out of one packet to N queue sinks, with
// consumers draining concurrently as a WebRTC edge's writers would.
func BenchmarkTrackWriteRTP(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(itoa(n)+"sinks", func(b *testing.B) {
			r := NewRegistry(RegistryConfig{})
			defer r.CloseAll()
			l, _ := r.Session("bench").Claim(TrainerPublication, nil)
			tr, _ := l.Track("video", KindVideo, h264, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			for i := 0; i < n; i++ {
				q := NewQueue(QueueOptions{Size: 1024, Kind: KindVideo})
				tr.AddSink(q)
				go func() {
					defer func() { done <- struct{}{} }()
					for {
						item, ok := q.Next(ctx)
						if !ok {
							return
						}
						item.Packet.Release()
					}
				}()
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: 1}, Payload: make([]byte, 1200)}
			pkt.Payload[0] = 0x41
			b.ReportAllocs()
			b.SetBytes(1200)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pkt.SequenceNumber++
				pkt.Timestamp += 3000
				if err := tr.WriteRTP(pkt); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/packet/sink")
			cancel()
			for i := 0; i < n; i++ {
				<-done
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
