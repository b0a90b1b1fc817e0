package peer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	edge *Edge
	reg  *sfu.Registry
	sess *sfu.Session
	ctx  context.Context
}

func newFixture(t *testing.T, cfg Config, grace time.Duration) *fixture {
	t.Helper()
	cfg.UDPAddr = "127.0.0.1:0"
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: grace})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = e.Close()
		reg.CloseAll()
	})
	return &fixture{edge: e, reg: reg, sess: reg.Session("lecture"), ctx: ctx}
}

func (f *fixture) publishSignal(pub string) testpeer.Signal {
	return func(offer string) (string, error) {
		_, ans, err := f.edge.Publish(f.sess, pub, offer)
		return ans, err
	}
}

func (f *fixture) subscribeSignal(l Layout) testpeer.Signal {
	return func(offer string) (string, error) {
		_, ans, err := f.edge.Subscribe(f.sess, l, offer)
		return ans, err
	}
}

var trainerLayout = Layout{Video: []string{"trainer/video", "trainer/screen"}, Audio: []string{"trainer/audio"}}

func (f *fixture) startPublisher(t *testing.T, o testpeer.Options) (*testpeer.Publisher, context.CancelFunc) {
	t.Helper()
	return f.startPublisherSignal(t, o, f.publishSignal(sfu.TrainerPublication))
}

// startPublisherSignal connects a trainer publisher through signal and plays a
// synthetic clip on it until the returned stop, or the end of the test.
func (f *fixture) startPublisherSignal(t *testing.T, o testpeer.Options, signal testpeer.Signal) (*testpeer.Publisher, context.CancelFunc) {
	t.Helper()
	pub, err := testpeer.NewPublisher(f.ctx, o, false, signal)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pub.Play(ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 4000), nil)
	}()
	stop := func() {
		cancel()
		<-done
		pub.Close()
	}
	t.Cleanup(stop)
	return pub, stop
}

// subscribers connects n subscribers to the trainer's sections, each with videos
// video and audios audio sections; they are closed when the test ends.
func (f *fixture) subscribers(t *testing.T, n, videos, audios int) []*testpeer.Subscriber {
	t.Helper()
	subs := make([]*testpeer.Subscriber, n)
	for i := range subs {
		s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, videos, audios, f.subscribeSignal(trainerLayout), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		subs[i] = s
	}
	return subs
}

func TestPublishToManySubscribers(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	f.startPublisher(t, testpeer.Options{})
	subs := f.subscribers(t, 4, 1, 1)
	for i, s := range subs {
		if err := s.WaitPackets(f.ctx, 0, 100); err != nil {
			t.Fatalf("subscriber %d video: %v", i, err)
		}
		if err := s.WaitPackets(f.ctx, 1, 50); err != nil {
			t.Fatalf("subscriber %d audio: %v", i, err)
		}
		_, keys, seqs := s.Track(0).Snapshot()
		if keys == 0 {
			t.Fatalf("subscriber %d got no keyframe", i)
		}
		if g := testpeer.MaxGap(seqs); g > 1 {
			t.Fatalf("subscriber %d: sequence gap of %d", i, g)
		}
		if !strings.EqualFold(s.Track(0).Codec, webrtc.MimeTypeH264) || !strings.EqualFold(s.Track(1).Codec, webrtc.MimeTypeOpus) {
			t.Fatalf("codecs %s %s", s.Track(0).Codec, s.Track(1).Codec)
		}
	}
	// Each counts once connected (media flows only after that).
	if got := f.sess.Subscribers(); got != 4 {
		t.Fatalf("subscriber count %d", got)
	}
	stats := f.reg.Stats()
	if stats.PacketsIn.Load() == 0 || stats.PacketsOut.Load() < stats.PacketsIn.Load() {
		t.Fatalf("stats in=%d out=%d", stats.PacketsIn.Load(), stats.PacketsOut.Load())
	}
}

func TestLateJoinerStartsFromCachedKeyframe(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub, _ := f.startPublisher(t, testpeer.Options{})
	time.Sleep(1500 * time.Millisecond) // let the GOP cache hold frames past the keyframe
	before := pub.PLIs.Load()
	var first atomic.Pointer[rtp.Packet]
	s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, f.subscribeSignal(trainerLayout), func(k webrtc.RTPCodecType, p *rtp.Packet) {
		if k == webrtc.RTPCodecTypeVideo {
			first.CompareAndSwap(nil, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitKeyframe(f.ctx, 0); err != nil {
		t.Fatal(err)
	}
	if p := first.Load(); p == nil || !sfu.H264IsKeyframe(p.Payload) {
		t.Fatalf("the first video packet a late joiner gets is not a keyframe: % x", p.Payload[:8])
	}
	if got := pub.PLIs.Load() - before; got != 0 {
		t.Fatalf("joining with a cached keyframe sent %d PLIs upstream", got)
	}
}

func TestNACKsAnsweredFromTrackCache(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub, _ := f.startPublisher(t, testpeer.Options{})
	d := &testpeer.Dropper{}
	s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{NoReplayProtection: true, Interceptors: []interceptor.Factory{d.Factory()}}, 1, 1, f.subscribeSignal(trainerLayout), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for d.Dropped() < 30 {
		if err := s.WaitPackets(f.ctx, 0, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-f.ctx.Done():
			t.Fatal("not enough packets dropped")
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(time.Second) // NACK round trips
	missing := s.Track(0).Missing()
	if missing > 0 {
		t.Fatalf("%d packets never recovered after %d drops (answered %d missed %d)", missing, d.Dropped(), f.reg.Stats().NACKsAnswered.Load(), f.reg.Stats().NACKsMissed.Load())
	}
	// Every dropped packet came back, and only the track cache can have sent it
	// (the server never passes a subscriber's NACK on to the publisher).
	if n := f.reg.Stats().NACKsAnswered.Load(); n == 0 {
		t.Fatal("no NACK answered from the track cache")
	}
	_ = pub
}

func TestKeyframeRequestsCoalescedUpstream(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub, _ := f.startPublisher(t, testpeer.Options{})
	subs := f.subscribers(t, 20, 1, 0)
	for _, s := range subs {
		if err := s.WaitPackets(f.ctx, 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond)
	before := pub.PLIs.Load()
	for round := 0; round < 3; round++ {
		for _, s := range subs {
			if err := s.SendPLI(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := pub.PLIs.Load() - before; got < 1 || got > 2 {
		t.Fatalf("60 PLIs from 20 subscribers produced %d upstream, want 1-2", got)
	}
}

func TestTrainerReconnectKeepsSubscribers(t *testing.T) {
	f := newFixture(t, Config{}, 10*time.Second)
	_, stop1 := f.startPublisher(t, testpeer.Options{})
	s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, f.subscribeSignal(trainerLayout), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitPackets(f.ctx, 0, 60); err != nil {
		t.Fatal(err)
	}
	stop1()
	n1, _, _ := s.Track(0).Snapshot()
	f.startPublisher(t, testpeer.Options{}) // reconnect: new connection, new SSRCs and sequence bases
	if err := s.WaitPackets(f.ctx, 0, n1+100); err != nil {
		t.Fatal(err)
	}
	_, _, seqs := s.Track(0).Snapshot()
	if g := testpeer.MaxGap(seqs); g > 1 {
		t.Fatalf("sequence gap of %d across the reconnect", g)
	}
	if s.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatal("subscriber connection dropped")
	}
}

func TestPeerThatNeverConnectsIsCleanedUp(t *testing.T) {
	f := newFixture(t, Config{ICETimeout: 500 * time.Millisecond}, time.Second)
	pc, offer := testpeer.NewOffer(t, testpeer.Options{}, webrtc.RTPTransceiverDirectionRecvonly)
	_ = pc.SetLocalDescription(offer) // the answer is never applied: ICE never completes
	r, _, err := f.edge.Subscribe(f.sess, trainerLayout, offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-f.ctx.Done():
		t.Fatal("resource not closed after the ICE timeout")
	}
	if f.edge.Resources() != 0 || f.sess.Subscribers() != 0 {
		t.Fatalf("left behind: %d resources, %d subscribers", f.edge.Resources(), f.sess.Subscribers())
	}
}

func TestOfferValidation(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	_, vp8 := testpeer.NewOffer(t, testpeer.Options{VP8Only: true}, webrtc.RTPTransceiverDirectionSendonly)
	for _, tc := range []struct {
		name    string
		offer   string
		want    error
		mention string
	}{
		{"garbage", "hello", ErrBadOffer, ""},
		{"empty", "", ErrBadOffer, ""},
		{"vp8 only", vp8.SDP, ErrUnsupportedCodec, "VP8"},
		{"no media", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", ErrBadOffer, "no audio or video"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.edge.Publish(f.sess, sfu.TrainerPublication, tc.offer)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
			if tc.want == ErrUnsupportedCodec && !strings.Contains(err.Error(), "H.264") {
				t.Fatalf("error %q does not name H.264", err)
			}
		})
	}
	if f.sess.Live() || f.edge.Resources() != 0 {
		t.Fatal("a refused offer left state behind")
	}
}

// TestG711ReachesBrowsers: a camera's PCMU audio (an RTSP source writes it into the
// session) is forwarded to WebRTC subscribers as PCMU, without transcoding.
func TestG711ReachesBrowsers(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	lease, err := f.sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	track, err := lease.Track(LocalAudio, sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, f.subscribeSignal(trainerLayout), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 42}, Payload: make([]byte, 160)}
	for i := 0; i < 100; i++ {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if err := track.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if p, _, _ := s.Track(1).Snapshot(); p >= 20 {
			break
		}
	}
	if err := s.WaitPackets(f.ctx, 1, 20); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(s.Track(1).Codec, webrtc.MimeTypePCMU) {
		t.Fatalf("subscriber got codec %q, want PCMU", s.Track(1).Codec)
	}
}

// TestSenderReports checks the reports the SFU makes for its subscribers (it runs
// no report interceptor): each stream gets sender reports whose counts grow and
// whose RTP time matches the stream's clock at the report's NTP time.
func TestSenderReports(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	f.startPublisher(t, testpeer.Options{})
	type arrival struct {
		ts uint32
		at time.Time
	}
	var mu sync.Mutex
	last := map[uint32]arrival{}
	s, err := testpeer.NewSubscriber(f.ctx, testpeer.Options{}, 1, 1, f.subscribeSignal(trainerLayout), func(_ webrtc.RTPCodecType, p *rtp.Packet) {
		mu.Lock()
		last[p.SSRC] = arrival{p.Timestamp, time.Now()}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitPackets(f.ctx, 0, 30); err != nil {
		t.Fatal(err)
	}
	type report struct {
		sr *rtcp.SenderReport
		at time.Time
	}
	reports := make(chan report, 64)
	for _, tr := range s.PC.GetTransceivers() {
		go func() {
			for {
				pkts, _, err := tr.Receiver().ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						select {
						case reports <- report{sr, time.Now()}:
						default:
						}
					}
				}
			}
		}()
	}
	clock := map[uint32]uint32{s.Track(0).SSRC: 90000, s.Track(1).SSRC: 48000}
	seen := map[uint32]uint32{} // SSRC → packet count of its latest report
	deadline := time.After(10 * time.Second)
	for len(seen) < 2 || seen[s.Track(0).SSRC] == 0 || seen[s.Track(1).SSRC] == 0 || time.Since(s.Start) < 3*time.Second {
		select {
		case r := <-reports:
			rate, ok := clock[r.sr.SSRC]
			if !ok {
				t.Fatalf("sender report for unknown SSRC %d", r.sr.SSRC)
			}
			mu.Lock()
			a := last[r.sr.SSRC]
			mu.Unlock()
			if r.sr.PacketCount == 0 || r.sr.OctetCount == 0 || r.sr.PacketCount < seen[r.sr.SSRC] {
				t.Fatalf("report counts %+v after %d", r.sr, seen[r.sr.SSRC])
			}
			// The report's RTP time is the stream's clock at its NTP time: the last
			// packet's timestamp plus the time since it arrived (within the 33 ms
			// of a frame and loopback scheduling). Not during the fast start, whose
			// cached packets arrive late by design.
			want := a.ts + uint32(r.at.Sub(a.at).Seconds()*float64(rate))
			if d := int32(r.sr.RTPTime - want); time.Since(s.Start) > 1500*time.Millisecond && (d > int32(rate/10) || d < -int32(rate/10)) {
				t.Fatalf("SSRC %d: report RTP time %d, stream clock %d (off by %d ticks)", r.sr.SSRC, r.sr.RTPTime, want, d)
			}
			ntp := time.Unix(int64(r.sr.NTPTime>>32)-2208988800, 0)
			if d := time.Since(ntp); d > 2*time.Second || d < -2*time.Second {
				t.Fatalf("report NTP time %v, now %v", ntp, time.Now())
			}
			if _, again := seen[r.sr.SSRC]; again {
				seen[r.sr.SSRC] = r.sr.PacketCount
			} else {
				seen[r.sr.SSRC] = 0 // count the second report: the first may predate the media
			}
		case <-deadline:
			t.Fatalf("sender reports seen: %v", seen)
		}
	}
}
