package relay

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
	"lectern/transcode"
)

// aacSource is a studio encoder's AAC as the RTSP server makes it a track: ffmpeg's
// AAC of a 440 Hz tone in RFC 3640 (AAC-hbr) packets, some access units fragmented
// over several packets, and the codec with its config.
type aacSource struct {
	codec    sfu.Codec
	pkts     []*rtp.Packet
	payloads map[string]bool // every payload sent
}

func newAACSource(t testing.TB, channels int) *aacSource {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	adts, err := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2", "-ac", strconv.Itoa(channels),
		"-c:a", "aac", "-b:a", "128k", "-f", "adts", "pipe:1").Output()
	if err != nil {
		t.Fatalf("ffmpeg (AAC of a tone): %v", err)
	}
	var aus mpeg4audio.ADTSPackets
	if err := aus.Unmarshal(adts); err != nil {
		t.Fatal(err)
	}
	conf := mpeg4audio.AudioSpecificConfig{Type: aus[0].Type, SampleRate: aus[0].SampleRate, ChannelCount: aus[0].ChannelCount}
	raw, err := conf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Small payloads: access units of 128 kbit/s AAC (~340 bytes) span packets.
	enc := &rtpmpeg4audio.Encoder{PayloadType: 96, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3, PayloadMaxSize: 200}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	s := &aacSource{payloads: map[string]bool{},
		codec: sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: uint32(conf.SampleRate), Channels: uint16(conf.ChannelCount),
			Fmtp: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=" + hex.EncodeToString(raw)}}
	for i, au := range aus {
		pkts, err := enc.Encode([][]byte{au.AU})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * mpeg4audio.SamplesPerAccessUnit)
			s.pkts = append(s.pkts, p)
			s.payloads[string(p.Payload)] = true
		}
	}
	return s
}

// play writes the packets into track in a loop, an access unit's packets every
// 21 ms (about its duration), with sequence numbers and timestamps going on from
// loop to loop, until ctx ends.
func (s *aacSource) play(ctx context.Context, track *sfu.Track) {
	tick := time.NewTicker(21 * time.Millisecond)
	defer tick.Stop()
	var seq uint16
	var base uint32
	last := s.pkts[len(s.pkts)-1].Timestamp + mpeg4audio.SamplesPerAccessUnit
	for {
		for i := 0; i < len(s.pkts); {
			ts := s.pkts[i].Timestamp
			for ; i < len(s.pkts) && s.pkts[i].Timestamp == ts; i++ {
				p := *s.pkts[i]
				p.SequenceNumber, p.Timestamp, p.SSRC = seq, base+ts, 4242
				seq++
				if err := track.WriteRTP(&p); err != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		base += last
	}
}

// payloadSink records the payloads a track passes on.
type payloadSink struct {
	mu       sync.Mutex
	payloads []string
}

func (k *payloadSink) WriteRTP(p *sfu.Packet) error {
	k.mu.Lock()
	k.payloads = append(k.payloads, string(p.Payload))
	k.mu.Unlock()
	return nil
}

func (k *payloadSink) snapshot() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.payloads...)
}

// newTranscoder runs a transcoder on n's session, as lectern does on every node.
func newTranscoder(t testing.TB, n *node) *transcode.Transcoder {
	tc := transcode.New(transcode.Config{Logger: quiet})
	tc.Attach(n.sess())
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// transcodeStreams returns a transcoder's lectern_transcode_streams by codec.
func transcodeStreams(t testing.TB, tc *transcode.Transcoder) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tc.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "lectern_transcode_streams" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return got
}

// codecOf describes a track's codec for a failure message ("none" for nil).
func codecOf(tr *sfu.Track) string {
	if tr == nil {
		return "none"
	}
	return fmt.Sprintf("%+v", tr.Codec())
}

// trackByName returns n's track of the trainer publication with the local name, or nil.
func trackByName(n *node, local string) *sfu.Track {
	p, ok := n.sess().Publication(sfu.TrainerPublication)
	if !ok {
		return nil
	}
	for _, tr := range p.Tracks() {
		if tr.Name() == sfu.TrainerPublication+"/"+local && !tr.Closed() {
			return tr
		}
	}
	return nil
}

// TestRelayCarriesAAC: a studio encoder's AAC on the origin reaches the edge as it
// is (the same codec and config, the RFC 3640 payloads byte for byte), beside the
// Opus variant the origin's transcoder makes, which is relayed too: the edge makes
// no variant of its own, and its WebRTC subscribers hear the relayed Opus.
func TestRelayCarriesAAC(t *testing.T) {
	src := newAACSource(t, 2)
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	tcA, tcB := newTranscoder(t, a), newTranscoder(t, b)

	lease, err := a.sess().Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	aac, err := lease.Track("audio", sfu.KindAudio, src.codec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	go func() { defer close(done); src.play(ctx, aac) }()
	t.Cleanup(func() { cancel(); <-done; lease.End() })
	eventually(t, a.ctx, "the origin's Opus variant", func() bool {
		v := trackByName(a, "audio.opus")
		return v != nil && v.Packets() > 0
	})

	if err := b.m.Pull(b.ctx, session, sfu.TrainerPublication, a.srv.URL); err != nil {
		t.Fatal(err)
	}
	if in := b.m.Relays(); len(in) != 1 || strings.Join(in[0].Tracks, ",") != "audio,audio.opus" {
		t.Fatalf("B pulls %+v, want one relay of audio and audio.opus", in)
	}
	edgeAAC := trackByName(b, "audio")
	if edgeAAC == nil {
		t.Fatal("no trainer/audio on the edge")
	}
	if c := edgeAAC.Codec(); c != src.codec {
		t.Fatalf("edge's AAC codec %+v, want the origin's %+v", c, src.codec)
	}
	sink := &payloadSink{}
	remove := edgeAAC.AddSinkLive(sink)
	defer remove()
	eventually(t, b.ctx, "100 AAC packets at the edge", func() bool { return len(sink.snapshot()) >= 100 })
	for i, p := range sink.snapshot() {
		if !src.payloads[p] {
			t.Fatalf("edge's AAC packet %d (%d bytes) is no payload the origin sent", i, len(p))
		}
	}

	// The edge's Opus variant is the origin's, relayed: one track of that name, fed
	// by the relay, and no transcoding on the edge.
	variant := trackByName(b, "audio.opus")
	if variant == nil || variant.Codec().MimeType != sfu.MimeOpus {
		t.Fatalf("edge's trainer/audio.opus: %s", codecOf(variant))
	}
	eventually(t, b.ctx, "the relayed variant's packets", func() bool { return variant.Packets() > 50 })
	if got := transcodeStreams(t, tcB); got["aac"] != 0 {
		t.Fatalf("the edge transcodes %v; the relayed AAC's variant comes from the origin", got)
	}
	if got := transcodeStreams(t, tcA); got["aac"] != 1 {
		t.Fatalf("the origin transcodes %v, want its one AAC track", got)
	}
	p, _ := b.sess().Publication(sfu.TrainerPublication)
	var names []string
	for _, tr := range p.Info().Tracks {
		names = append(names, tr.Name)
		if tr.Name == "trainer/audio" && tr.BrowserPlayable {
			t.Fatal("the edge's AAC reported as playable in browsers")
		}
	}
	if strings.Join(names, ",") != "trainer/audio,trainer/audio.opus" && strings.Join(names, ",") != "trainer/audio.opus,trainer/audio" {
		t.Fatalf("edge's tracks %v, want the AAC and its one Opus variant", names)
	}

	// A WebRTC subscriber on the edge asking for the trainer's audio gets Opus.
	s, err := testpeer.NewSubscriber(b.ctx, testpeer.Options{}, 0, 1, func(offer string) (string, error) {
		_, ans, err := b.edge.Subscribe(b.sess(), peer.Layout{Audio: []string{"trainer/audio"}}, offer)
		return ans, err
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitPackets(b.ctx, 0, 50); err != nil {
		t.Fatalf("edge subscriber's audio: %v", err)
	}
	if c := s.Track(0).Codec; !strings.EqualFold(c, webrtc.MimeTypeOpus) {
		t.Fatalf("edge subscriber's audio codec %s, want Opus", c)
	}
}

// publishAAC publishes src as n's trainer audio until the test ends.
func publishAAC(t *testing.T, n *node, src *aacSource) *sfu.Track {
	t.Helper()
	lease, err := n.sess().Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := lease.Track("audio", sfu.KindAudio, src.codec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	done := make(chan struct{})
	go func() { defer close(done); src.play(ctx, tr) }()
	t.Cleanup(func() { cancel(); <-done; lease.End() })
	return tr
}

// TestRelayAACFormatFromANewOrigin: when the publication's origin moves to a node
// whose encoder sends AAC of another format at the same clock rate (mono after
// stereo), the edge's AAC track takes the new format, config included, instead of
// continuing with the old one.
func TestRelayAACFormatFromANewOrigin(t *testing.T) {
	stereo, mono := newAACSource(t, 2), newAACSource(t, 1)
	if stereo.codec.FmtpParam("config") == mono.codec.FmtpParam("config") {
		t.Fatal("the two sources have one config")
	}
	a, b, c := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{}), newNode(t, "c", nodeOptions{})
	publishAAC(t, a, stereo)
	if err := b.m.Pull(b.ctx, session, sfu.TrainerPublication, a.srv.URL); err != nil {
		t.Fatal(err)
	}
	if tr := trackByName(b, "audio"); tr == nil || tr.Codec() != stereo.codec {
		t.Fatalf("edge's audio %s, want %+v", codecOf(tr), stereo.codec)
	}
	a.close() // the origin dies; the encoder publishes to C
	eventually(t, b.ctx, "B's publication paused", func() bool {
		p, ok := b.sess().Publication(sfu.TrainerPublication)
		return ok && p.Info().Paused && len(b.m.Relays()) == 0
	})
	publishAAC(t, c, mono)
	if err := b.m.Pull(b.ctx, session, sfu.TrainerPublication, c.srv.URL); err != nil {
		t.Fatal(err)
	}
	tr := trackByName(b, "audio")
	if tr == nil || tr.Codec() != mono.codec {
		t.Fatalf("edge's audio after the move %s, want %+v", codecOf(tr), mono.codec)
	}
	sink := &payloadSink{}
	defer tr.AddSinkLive(sink)()
	eventually(t, b.ctx, "50 AAC packets from the new origin", func() bool { return len(sink.snapshot()) >= 50 })
	for i, p := range sink.snapshot() {
		if !mono.payloads[p] {
			t.Fatalf("edge's AAC packet %d (%d bytes) is not the new origin's", i, len(p))
		}
	}
}

// TestRelayableAAC: the AAC an edge accepts in an origin's track list is what its
// RTSP readers can take and its SDP lines can carry.
func TestRelayableAAC(t *testing.T) {
	const fmtp = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190"
	good := sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Channels: 2, Fmtp: fmtp}
	for _, tc := range []struct {
		name string
		mod  func(*sfu.Codec)
		want bool
	}{
		{"as published", func(*sfu.Codec) {}, true},
		{"AAC-lbr", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "AAC-hbr", "AAC-lbr", 1) }, true},
		{"no config", func(c *sfu.Codec) { c.Fmtp = strings.TrimSuffix(fmtp, ";config=1190") }, false},
		{"config not hex", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "1190", "zz", 1) }, false},
		{"config not AAC", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "1190", "ff", 1) }, false},
		{"no mode", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "mode=AAC-hbr;", "", 1) }, false},
		{"generic mode", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "AAC-hbr", "generic", 1) }, false},
		{"no sizelength", func(c *sfu.Codec) { c.Fmtp = strings.Replace(fmtp, "sizelength=13;", "", 1) }, false},
		{"line break", func(c *sfu.Codec) { c.Fmtp = fmtp + "\r\na=sendonly" }, false},
		{"huge fmtp", func(c *sfu.Codec) { c.Fmtp = fmtp + ";x=" + strings.Repeat("a", maxFmtp) }, false},
		{"no channels", func(c *sfu.Codec) { c.Channels = 0 }, false},
		{"9 channels", func(c *sfu.Codec) { c.Channels = 9 }, false},
		{"no clock rate", func(c *sfu.Codec) { c.ClockRate = 0 }, false},
		{"lower-case mime", func(c *sfu.Codec) { c.MimeType = strings.ToLower(sfu.MimeAAC) }, false},
	} {
		c := good
		tc.mod(&c)
		if got := relayable(c); got != tc.want {
			t.Errorf("%s: relayable(%+v) = %v, want %v", tc.name, c, got, tc.want)
		}
	}
	if relayable(sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1\nx"}) {
		t.Error("an H.264 fmtp with a line break is relayable")
	}
}

// startRTSP runs an RTSP server (TCP, the admin token only) on n's registry, with
// prepare as its Config.Prepare.
func startRTSP(t *testing.T, n *node, prepare func(ctx context.Context, session, publication string) error) *rtsp.Server {
	t.Helper()
	srv, err := rtsp.NewServer(rtsp.Config{Address: "127.0.0.1:0", AdminToken: rtspAdmin, Prepare: prepare,
		Sessions: func(id string) (*sfu.Session, error) {
			if id != session {
				return nil, fmt.Errorf("lookup %q: %w", id, rtsp.ErrSessionNotFound)
			}
			return n.reg.Session(id), nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("node", n.id)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

const rtspAdmin = "relay-test-admin-token"

// TestRelayAACToEdgeRTSPReaders: a studio encoder (ffmpeg) publishes H.264 + AAC
// over RTSP to the origin; an RTSP reader of the edge (ffprobe), whose DESCRIBE
// pulls the publication as lectern's edges do, finds the AAC stream (and the
// video), and the edge's AAC track has the origin's codec and config.
func TestRelayAACToEdgeRTSPReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: ffmpeg publishes for several seconds")
	}
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	ffprobe := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	a, b := newNode(t, "a", nodeOptions{}), newNode(t, "b", nodeOptions{})
	newTranscoder(t, a)
	newTranscoder(t, b)
	ra := startRTSP(t, a, nil)
	rb := startRTSP(t, b, func(ctx context.Context, sess, publication string) error {
		if publication == "" {
			publication = sfu.TrainerPublication
		}
		return b.m.Pull(ctx, sess, publication, a.srv.URL)
	})

	stop := testenv.StartBackground(t, exec.CommandContext(a.ctx, ffmpeg, "-v", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "40",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", "30", "-b:v", "1000k",
		"-c:a", "aac", "-ac", "2", "-ar", "48000",
		"-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+ra.Addr()+"/"+session+"?token="+rtspAdmin))
	defer stop()
	eventually(t, a.ctx, "the encoder's video, AAC and its Opus variant on the origin", func() bool {
		for _, local := range []string{"video", "audio", "audio.opus"} {
			if tr := trackByName(a, local); tr == nil || tr.Packets() == 0 {
				return false
			}
		}
		return true
	})
	originAAC := trackByName(a, "audio").Codec()
	if originAAC.MimeType != sfu.MimeAAC || originAAC.FmtpParam("config") == "" {
		t.Fatalf("origin's audio %+v, want AAC with its config", originAAC)
	}

	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_name,sample_rate,channels", "-of", "compact",
		"rtsp://"+rb.Addr()+"/"+session+"?token="+rtspAdmin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "codec_name=aac|sample_rate=48000|channels=2") ||
		!strings.Contains(string(out), "codec_name=h264") {
		t.Fatalf("ffprobe of the edge's RTSP reader side: %v\n%s", err, out)
	}
	p, ok := b.sess().Publication(sfu.TrainerPublication)
	if !ok || !p.Relayed() {
		t.Fatal("the edge's trainer publication is not the relayed one")
	}
	edgeAAC := trackByName(b, "audio")
	if edgeAAC == nil || edgeAAC.Codec() != originAAC {
		t.Fatalf("edge's AAC track %s, want the origin's codec %+v", codecOf(edgeAAC), originAAC)
	}
	if edgeAAC.Packets() == 0 {
		t.Fatal("no AAC packet reached the edge")
	}
}
