package peer

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/internal/testpeer"
	"lectern/sfu"
)

// lossySubscriber is a pion subscriber to the trainer's audio that loses some of
// the packets it receives (a seeded loss model, so two subscribers with the same
// seed lose the same packets) and notes which Opus frames it could rebuild:
// from the primary, from the newest redundant block only (what RED with one copy
// would give), and from any block.
type lossySubscriber struct {
	pc       *webrtc.PeerConnection
	wg       sync.WaitGroup
	mu       sync.Mutex
	arrived  map[uint32]bool // frame indexes that reached the peer as a primary, before the loss
	primary  map[uint32]bool // ... and kept
	newest   map[uint32]bool // primary or newest redundant block
	any      map[uint32]bool // primary or any redundant block
	pts      map[uint8]int   // packets by payload type
	bytes    int             // payload bytes received, before the loss
	bad      []string        // blocks whose content or timestamp is not their frame's
	maxIndex uint32
	base     uint32 // RTP timestamp of frame 0 in the subscriber's stream
	haveBase bool
}

// lossFrameIndex reads the index a test audio frame carries (see lossFrame).
func lossFrameIndex(b []byte) (uint32, bool) {
	if len(b) < 8 || string(b[4:8]) != "opus" {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// lossFrame is test audio frame i: its index, a tag, and filler to 60..139 bytes,
// about a 20 ms voice frame.
func lossFrame(i uint32) []byte {
	b := make([]byte, 60+i%80)
	binary.BigEndian.PutUint32(b, i)
	copy(b[4:], "opus")
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + uint32(j))
	}
	return b
}

// randomLoss loses each packet with probability p.
func randomLoss(p float64, seed uint64) func() bool {
	rng := rand.New(rand.NewPCG(seed, seed))
	return func() bool { return rng.Float64() < p }
}

// burstLoss is a Gilbert model: packets are lost in bursts of mean length burst,
// a fraction p of them in all, as on a shared link whose queue overflows.
func burstLoss(p, burst float64, seed uint64) func() bool {
	rng := rand.New(rand.NewPCG(seed, seed))
	leave := 1 / burst           // bad -> good
	enter := p * leave / (1 - p) // good -> bad, so that bad lasts a fraction p
	bad := false
	return func() bool {
		if bad {
			bad = rng.Float64() >= leave
		} else {
			bad = rng.Float64() < enter
		}
		return bad
	}
}

func newLossySubscriber(t *testing.T, f *fixture, offerRED bool, lose func() bool) *lossySubscriber {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if offerRED { // listed before Opus, as Chromium did from M96
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111"}, PayloadType: 63}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	s := &lossySubscriber{pc: pc, arrived: map[uint32]bool{}, primary: map[uint32]bool{}, newest: map[uint32]bool{},
		any: map[uint32]bool{}, pts: map[uint8]int{}}
	t.Cleanup(func() {
		_ = pc.Close()
		s.wg.Wait()
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		s.wg.Add(1)
		defer s.wg.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			s.receive(p, lose())
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	_, ans, err := f.edge.Subscribe(f.sess, Layout{Audio: []string{"trainer/audio"}}, pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
		t.Fatal(err)
	}
	if err := testpeer.WaitConnected(f.ctx, pc); err != nil {
		t.Fatal(err)
	}
	return s
}

// receive notes what packet p brings, unless it is lost.
func (s *lossySubscriber) receive(p *rtp.Packet, lost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pts[p.PayloadType]++
	s.bytes += len(p.Payload)
	var blocks []redBlock
	if p.PayloadType == redPayloadType {
		var err error
		if blocks, err = decodeRED(p.Timestamp, p.Payload); err != nil {
			s.bad = append(s.bad, err.Error())
			return
		}
	} else {
		blocks = []redBlock{{pt: p.PayloadType, ts: p.Timestamp, data: p.Payload}}
	}
	last := len(blocks) - 1
	i, ok := lossFrameIndex(blocks[last].data)
	if !ok {
		s.bad = append(s.bad, fmt.Sprintf("primary of %d bytes is no test frame", len(blocks[last].data)))
		return
	}
	s.arrived[i] = true
	s.maxIndex = max(s.maxIndex, i)
	if lost {
		return
	}
	if !s.haveBase {
		s.base, s.haveBase = p.Timestamp-960*i, true
	}
	for k, b := range blocks {
		i, ok := lossFrameIndex(b.data)
		switch {
		case !ok || b.pt != 111:
			s.bad = append(s.bad, fmt.Sprintf("block %d: pt %d, %d bytes", k, b.pt, len(b.data)))
			continue
		case b.ts != s.base+960*i || string(b.data) != string(lossFrame(i)):
			s.bad = append(s.bad, fmt.Sprintf("block %d: frame %d at ts %d, want %d", k, i, b.ts, s.base+960*i))
			continue
		}
		s.any[i] = true
		if k >= last-1 {
			s.newest[i] = true
		}
		if k == last {
			s.primary[i] = true
		}
	}
}

// progress returns the highest frame index that reached the subscriber.
func (s *lossySubscriber) progress() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIndex
}

// lostFrames counts the frames of [from, to) missing from got.
func lostFrames(got map[uint32]bool, from, to uint32) int {
	n := 0
	for i := from; i < to; i++ {
		if !got[i] {
			n++
		}
	}
	return n
}

// TestREDRecoversLoss sends 20 ms audio frames through the edge to two
// subscribers that both lose the same 10 % of the packets they receive, at random
// or in bursts of two on average: one offers RED (and gets redDistance previous
// frames in every packet), one does not (plain Opus, as before). It counts the
// frames neither the packet nor any later packet's redundancy brought. The one
// with RED must lose far fewer; and two copies must do better than one.
func TestREDRecoversLoss(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames uint32
		burst  float64 // mean length of a loss burst; 0: independent losses
		// The frames lost with RED (one copy, two copies) must be at most these
		// fractions of those lost without.
		max1, max2 float64
	}{
		// Expected: 10 %, p² = 1 %, p³ = 0.1 %.
		{"random", 1500, 0, 1.0 / 3, 1.0 / 10},
		// Expected: 10 %, 10 % x 1/2 = 5 %, 10 % x 1/4 = 2.5 %.
		{"bursts", 2000, 2, 0.8, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.burst > 0 && testing.Short() {
				t.Skip("the random case covers RED in -short")
			}
			lose := func() func() bool {
				if tc.burst == 0 {
					return randomLoss(0.10, 7)
				}
				return burstLoss(0.10, tc.burst, 7)
			}
			measureREDLoss(t, tc.frames, lose, tc.max1, tc.max2)
		})
	}
}

func measureREDLoss(t *testing.T, frames uint32, lose func() func() bool, max1, max2 float64) {
	f := newFixture(t, Config{}, time.Second)
	pub, err := testpeer.NewPublisher(f.ctx, testpeer.Options{}, false, f.publishSignal(sfu.TrainerPublication))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	red := newLossySubscriber(t, f, true, lose())
	plain := newLossySubscriber(t, f, false, lose())

	var next uint32
	send := func() {
		t.Helper()
		err := pub.Audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(next), Timestamp: 960 * next}, Payload: lossFrame(next)})
		if err != nil {
			t.Fatal(err)
		}
		next++
		time.Sleep(2 * time.Millisecond) // faster than real time; the subscribers' audio queues are 256 packets
	}
	// Until both subscribers receive, then the measured frames, then until both
	// have every measured frame's successors (their redundancy).
	for red.progress() == 0 || plain.progress() == 0 {
		if f.ctx.Err() != nil {
			t.Fatal("no audio reached the subscribers")
		}
		send()
	}
	from := next
	to := from + frames
	for next < to {
		send()
	}
	for red.progress() < to+redDistance || plain.progress() < to+redDistance {
		if f.ctx.Err() != nil {
			t.Fatalf("subscribers stopped at frames %d and %d, want %d", red.progress(), plain.progress(), to+redDistance)
		}
		send()
	}

	red.mu.Lock()
	defer red.mu.Unlock()
	plain.mu.Lock()
	defer plain.mu.Unlock()
	for name, s := range map[string]*lossySubscriber{"red": red, "plain": plain} {
		if len(s.bad) > 0 {
			t.Errorf("%s: %d bad blocks, first %s", name, len(s.bad), s.bad[0])
		}
		if n := lostFrames(s.arrived, from, to); n > 0 {
			t.Errorf("%s: %d frames never reached it (server-side drops): the comparison is skewed", name, n)
		}
	}
	if red.pts[redPayloadType] == 0 || red.pts[111] > 0 {
		t.Errorf("RED subscriber got payload types %v, want RED (63) only", red.pts)
	}
	if plain.pts[111] == 0 || len(plain.pts) != 1 {
		t.Errorf("plain subscriber got payload types %v, want Opus (111) only", plain.pts)
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(frames) }
	lostPlain := lostFrames(plain.primary, from, to)
	lostRED1 := lostFrames(red.newest, from, to)
	lostRED2 := lostFrames(red.any, from, to)
	t.Logf("%d frames: lost without RED %d (%.2f %%), RED primary only %d (%.2f %%), "+
		"RED 1 copy %d (%.2f %%), RED %d copies %d (%.2f %%)", frames,
		lostPlain, pct(lostPlain), lostFrames(red.primary, from, to), pct(lostFrames(red.primary, from, to)),
		lostRED1, pct(lostRED1), redDistance, lostRED2, pct(lostRED2))
	packets := func(s *lossySubscriber) int {
		n := 0
		for _, c := range s.pts {
			n += c
		}
		return n
	}
	t.Logf("mean payload: %d bytes with RED, %d without", red.bytes/packets(red), plain.bytes/packets(plain))
	if lostPlain < int(frames)*6/100 || lostPlain > int(frames)*14/100 {
		t.Errorf("without RED %d frames lost, want about 10 %% of %d", lostPlain, frames)
	}
	if lostRED2 > lostRED1 || float64(lostRED1) > max1*float64(lostPlain) || float64(lostRED2) > max2*float64(lostPlain) {
		t.Errorf("RED lost %d (one copy %d) of the %d frames lost without; want at most %.2f (one copy %.2f) of them",
			lostRED2, lostRED1, lostPlain, max2, max1)
	}
}
