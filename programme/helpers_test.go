package programme

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/hraban/opus.v2"

	"lectern/internal/testenv"
	"lectern/sfu"
)

const testSession = "lecture"

var opusCodec = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}

var h264Codec = sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}

// fixture is a registry whose sessions get their programme the way the server
// does it: Attach on every publication added.
type fixture struct {
	reg  *sfu.Registry
	m    *Manager
	sess *sfu.Session
	logs *testenv.LockedBuffer
	mode atomic.Value // string: the session's programme_video
}

func newFixture(t testing.TB) *fixture { return newFixtureGrace(t, -1) }

// newFixtureGrace is newFixture with the registry's reconnect grace.
func newFixtureGrace(t testing.TB, grace time.Duration) *fixture {
	f := &fixture{logs: new(testenv.LockedBuffer)}
	f.mode.Store(VideoTrainer)
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.m = New(Config{Logger: log, VideoMode: func(string) string { return f.mode.Load().(string) }})
	var reg *sfu.Registry
	reg = sfu.NewRegistry(sfu.RegistryConfig{Grace: grace, Logger: log, OnEvent: func(session, typ string, _ any) {
		if typ == sfu.EventPublicationAdded {
			f.m.Attach(reg.Session(session))
		}
	}})
	f.reg = reg
	f.sess = reg.Session(testSession)
	t.Cleanup(func() {
		f.m.Close()
		reg.Close(testSession)
	})
	return f
}

func (f *fixture) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// claim claims a publication.
func (f *fixture) claim(t testing.TB, pub string) *sfu.Lease {
	t.Helper()
	l, err := f.sess.Claim(pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// publish claims a publication and makes one track in it.
func (f *fixture) publish(t testing.TB, pub, local string, kind sfu.Kind, codec sfu.Codec, keyReq func()) *sfu.Track {
	t.Helper()
	l, err := f.sess.Claim(pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := l.Track(local, kind, codec, keyReq)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// programmeTrack waits for the programme track of that local name.
func (f *fixture) programmeTrack(t testing.TB, local string) *sfu.Track {
	t.Helper()
	var tr *sfu.Track
	testenv.WaitFor(f.ctx(t), t, "programme/"+local, func() bool {
		p, ok := f.sess.Publication(Publication)
		if !ok {
			return false
		}
		for _, x := range p.Tracks() {
			if x.Name() == Publication+"/"+local {
				tr = x
				return true
			}
		}
		return false
	})
	return tr
}

// capture is a sink keeping copies of the packets of a programme track.
type capture struct {
	mu   sync.Mutex
	pkts []rtp.Packet
	got  chan struct{}
}

func newCapture(t testing.TB, tr *sfu.Track) *capture {
	c := &capture{got: make(chan struct{}, 1)}
	remove := tr.AddSinkLive(c)
	t.Cleanup(remove)
	return c
}

func (c *capture) WriteRTP(p *sfu.Packet) error {
	c.mu.Lock()
	c.pkts = append(c.pkts, rtp.Packet{Header: p.Header, Payload: append([]byte(nil), p.Payload...)})
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	return nil
}

func (c *capture) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

func (c *capture) packets() []rtp.Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtp.Packet(nil), c.pkts...)
}

// tone encodes a sine of freq Hz into 20 ms Opus packets.
type tone struct {
	enc   *opus.Encoder
	freq  float64
	n     int // samples made
	ssrc  uint32
	seq   uint16
	ts    uint32
	pcm   [tickFrame * channels]int16
	frame [1500]byte
}

func newTone(t testing.TB, freq float64, ssrc uint32) *tone {
	enc, err := opus.NewEncoder(48000, 2, opus.AppAudio)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.SetBitrate(96000); err != nil {
		t.Fatal(err)
	}
	return &tone{enc: enc, freq: freq, ssrc: ssrc, seq: uint16(ssrc), ts: ssrc * 7}
}

// next returns the next packet (its payload valid until the next call).
func (g *tone) next(t testing.TB) *rtp.Packet {
	for i := 0; i < tickFrame; i++ {
		v := int16(8000 * math.Sin(2*math.Pi*g.freq*float64(g.n)/48000))
		g.pcm[2*i], g.pcm[2*i+1] = v, v
		g.n++
	}
	k, err := g.enc.Encode(g.pcm[:], g.frame[:])
	if err != nil {
		t.Fatal(err)
	}
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: g.seq, Timestamp: g.ts, SSRC: g.ssrc}, Payload: g.frame[:k]}
	g.seq++
	g.ts += tickFrame
	return p
}

// write writes p to tr, failing the test on error.
func write(t testing.TB, tr *sfu.Track, p *rtp.Packet) {
	t.Helper()
	if err := tr.WriteRTP(p); err != nil {
		t.Fatal(err)
	}
}

// goertzel returns the power of freq in pcm (mono, 48 kHz).
func goertzel(pcm []float64, freq float64) float64 {
	w := 2 * math.Pi * freq / 48000
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s0 := x + c*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// decodeLeft decodes Opus packets in order to the left channel.
func decodeLeft(t testing.TB, pkts []rtp.Packet) [][]float64 {
	dec, err := opus.NewDecoder(48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var pcm [maxFrame * 2]int16
	out := make([][]float64, len(pkts))
	for i, p := range pkts {
		n, err := dec.Decode(p.Payload, pcm[:])
		if err != nil {
			t.Fatalf("programme packet %d does not decode: %v", i, err)
		}
		l := make([]float64, n)
		for j := range l {
			l[j] = float64(pcm[2*j])
		}
		out[i] = l
	}
	return out
}

// bands returns the powers at 440 Hz and 1 kHz over frames [from, to).
func bands(frames [][]float64, from, to int) (p440, p1k float64) {
	var pcm []float64
	for _, f := range frames[from:to] {
		pcm = append(pcm, f...)
	}
	return goertzel(pcm, 440), goertzel(pcm, 1000)
}

// value returns the value of a single-series collector (a gauge, a counter).
func value(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatal("not a gauge or counter")
	return 0
}

// countSSRC counts the packets of one SSRC (the programme's packets on the
// trainer's clock, apart from those of its own clock).
func countSSRC(pkts []rtp.Packet, ssrc uint32) int {
	n := 0
	for _, p := range pkts {
		if p.SSRC == ssrc {
			n++
		}
	}
	return n
}
