package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"gopkg.in/hraban/opus.v2"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// TestMain fails the package when a goroutine outlives its tests (transcoding
// goroutines, ffmpeg readers and waiters).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goertzel returns the amplitude of the freq Hz component of x (sampled at rate),
// relative to full scale 1.0 = 32768.
func goertzel(x []float64, freq, rate float64) float64 {
	w := 2 * math.Pi * freq / rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	power := s1*s1 + s2*s2 - c*s1*s2
	return 2 * math.Sqrt(math.Max(power, 0)) / float64(len(x)) / 32768
}

func db(ratio float64) float64 { return 20 * math.Log10(ratio) }

func TestG711KnownValues(t *testing.T) {
	for _, tc := range []struct {
		law  string
		in   byte
		want int16
	}{
		// ITU-T G.711 tables: the extremes and both zeros.
		{"mu", 0xFF, 0}, {"mu", 0x7F, 0}, {"mu", 0x00, -32124}, {"mu", 0x80, 32124},
		{"mu", 0xF0, 120}, {"mu", 0x70, -120},
		{"a", 0xD5, 8}, {"a", 0x55, -8}, {"a", 0xAA, 32256}, {"a", 0x2A, -32256},
	} {
		table := &ulawTable
		if tc.law == "a" {
			table = &alawTable
		}
		if got := table[tc.in]; got != tc.want {
			t.Errorf("%s-law %#02x = %d, want %d", tc.law, tc.in, got, tc.want)
		}
	}
}

// TestG711MatchesFFmpeg: every one of the 256 codes of each law expands as
// ffmpeg's decoder expands it.
func TestG711MatchesFFmpeg(t *testing.T) {
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	var codes [256]byte
	for i := range codes {
		codes[i] = byte(i)
	}
	for _, tc := range []struct {
		format string
		table  *[256]int16
	}{{"mulaw", &ulawTable}, {"alaw", &alawTable}} {
		cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", tc.format, "-ar", "8000", "-ac", "1", "-i", "pipe:0", "-f", "s16le", "pipe:1")
		cmd.Stdin = bytes.NewReader(codes[:])
		out, err := cmd.Output()
		if err != nil || len(out) != 512 {
			t.Fatalf("ffmpeg %s: %v (%d bytes)", tc.format, err, len(out))
		}
		for i := range 256 {
			if want := int16(binary.LittleEndian.Uint16(out[2*i:])); tc.table[i] != want {
				t.Errorf("%s %#02x: %d, ffmpeg %d", tc.format, i, tc.table[i], want)
			}
		}
	}
}

// TestUpsamplerKeepsTone: a 1 kHz tone at 8 kHz, resampled packet by packet,
// is the same tone at 48 kHz, and the spectral images that upsampling makes
// (at 8k±1k, 16k±1k Hz) are filtered out.
func TestUpsamplerKeepsTone(t *testing.T) {
	const amp = 8000.0
	var up upsampler
	var out []float64
	in := make([]int16, 160)
	buf := make([]int16, 160*upFactor)
	for pkt := range 25 { // 0.5 s in 20 ms packets
		for i := range in {
			n := pkt*160 + i
			in[i] = int16(amp * math.Sin(2*math.Pi*1000*float64(n)/8000))
		}
		up.process(in, buf)
		for _, s := range buf {
			out = append(out, float64(s))
		}
	}
	out = out[upTaps*upFactor:] // past the filter's start
	tone := goertzel(out, 1000, 48000)
	if want := amp / 32768; math.Abs(db(tone/want)) > 0.5 {
		t.Fatalf("1 kHz at %.1f dB of the input", db(tone/want))
	}
	for _, f := range []float64{7000, 9000, 15000, 17000, 23000} {
		if rel := db(goertzel(out, f, 48000) / tone); rel > -50 {
			t.Errorf("image at %.0f Hz: %.1f dB below the tone, want 50+", f, -rel)
		}
	}
}

// harness is a session with one publication "cam" and a transcoder attached,
// collecting what reaches the variant of cam/audio.
type harness struct {
	t     *testing.T
	reg   *sfu.Registry
	sess  *sfu.Session
	tc    *Transcoder
	lease *sfu.Lease
	logs  *testenv.LockedBuffer

	mu      sync.Mutex
	variant *sfu.Track
	pkts    []rtp.Packet // payload copies
	ended   bool
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, logs: &testenv.LockedBuffer{}}
	h.reg = sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	h.sess = h.reg.Session("s1")
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	h.tc = New(cfg)
	t.Cleanup(func() {
		h.reg.CloseAll()
		if err := h.tc.Close(); err != nil {
			t.Error(err)
		}
	})
	cancel := h.sess.Watch(func(tr *sfu.Track) {
		if tr.Name() != sfu.OpusVariant("cam/audio") {
			return
		}
		h.mu.Lock()
		h.variant = tr
		h.mu.Unlock()
		tr.AddSink(h)
	})
	t.Cleanup(cancel)
	h.tc.Attach(h.sess)
	h.tc.Attach(h.sess) // idempotent
	l, err := h.sess.Claim("cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.lease = l
	return h
}

func (h *harness) WriteRTP(p *sfu.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pkts = append(h.pkts, rtp.Packet{Header: p.Header, Payload: bytes.Clone(p.Payload)})
	return nil
}

func (h *harness) TrackEnded(*sfu.Track) {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
}

func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pkts)
}

func (h *harness) waitPackets(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testenv.WaitFor(ctx, h.t, "Opus packets on the variant", func() bool { return h.count() >= n })
}

// decoded decodes the variant's packets (skipping the first skip) to the left
// channel, checking that they form one continuous RTP stream of 20 ms frames.
func (h *harness) decoded(skip int) []float64 {
	h.t.Helper()
	h.mu.Lock()
	pkts := slices_clone(h.pkts)
	h.mu.Unlock()
	dec, err := opus.NewDecoder(48000, 2)
	if err != nil {
		h.t.Fatal(err)
	}
	pcm := make([]int16, 5760*2)
	var out []float64
	for i, p := range pkts {
		if i > 0 {
			prev := pkts[i-1].Header
			if p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp-prev.Timestamp != 960 {
				h.t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d", i, p.SequenceNumber, p.Timestamp, prev.SequenceNumber, prev.Timestamp)
			}
		}
		if p.PayloadType != opusPayloadType {
			h.t.Fatalf("payload type %d", p.PayloadType)
		}
		n, err := dec.Decode(p.Payload, pcm)
		if err != nil || n != 960 {
			h.t.Fatalf("packet %d: decoded %d samples: %v", i, n, err)
		}
		if i < skip {
			continue
		}
		for j := range n {
			out = append(out, float64(pcm[2*j]))
		}
	}
	return out
}

func slices_clone(p []rtp.Packet) []rtp.Packet { return append([]rtp.Packet(nil), p...) }

// ffmpegTone makes a tone with ffmpeg into the raw output format (mulaw, alaw,
// adts...).
func ffmpegTone(t *testing.T, freq, rate, channels int, seconds float64, args ...string) []byte {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	full := append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=frequency=" + itoa(freq) + ":sample_rate=" + itoa(rate) + ":duration=" + ftoa(seconds),
		"-ac", itoa(channels)}, args...)
	full = append(full, "pipe:1")
	out, err := exec.Command(ffmpeg, full...).Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v", full, err)
	}
	return out
}

// TestG711Variant: a camera's G.711 audio (made by ffmpeg from a 1 kHz sine) gets
// an Opus variant in its publication that decodes to the tone, which ends with
// the publication.
func TestG711Variant(t *testing.T) {
	for _, tc := range []struct {
		format string
		codec  sfu.Codec
	}{
		{"mulaw", sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}},
		{"alaw", sfu.Codec{MimeType: sfu.MimePCMA, ClockRate: 8000, Channels: 1}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			g711 := ffmpegTone(t, 1000, 8000, 1, 2, "-f", tc.format)
			h := newHarness(t, Config{})
			tr, err := h.lease.Track("audio", sfu.KindAudio, tc.codec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if h.variant == nil || h.variant.Codec().MimeType != sfu.MimeOpus {
				t.Fatalf("no Opus variant beside the %s track", tc.format)
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 42, SequenceNumber: 1000, Timestamp: 5000}}
			sent := 0
			for off := 0; off+160 <= len(g711); off += 160 {
				pkt.Payload = g711[off : off+160]
				if err := tr.WriteRTP(&pkt); err != nil {
					t.Fatal(err)
				}
				pkt.SequenceNumber++
				pkt.Timestamp += 160
				sent++
				if sent%20 == 0 { // within the queue: nothing dropped
					h.waitPackets(sent)
				}
			}
			h.waitPackets(sent)
			pcm := h.decoded(5)
			tone := goertzel(pcm, 1000, 48000)
			// ffmpeg's sine source has amplitude 1/8 (-18 dBFS).
			if rel := db(tone / 0.125); rel < -1.5 || rel > 1.5 {
				t.Fatalf("1 kHz at %.1f dB of the source", rel)
			}
			t.Logf("1 kHz at %.2f dB of the source", db(tone/0.125))
			for _, f := range []float64{440, 3000, 7000} {
				if rel := db(goertzel(pcm, f, 48000) / tone); rel > -30 {
					t.Errorf("%.0f Hz only %.1f dB below the tone", f, -rel)
				}
			}
			if v := metricValue(h.tc.metrics.streams.WithLabelValues(sourceCodec(tc.codec))); v != 1 {
				t.Errorf("streams gauge %v", v)
			}
			if !strings.Contains(h.logs.String(), "audio transcoded to Opus") {
				t.Errorf("the trainer was not told: %s", h.logs.String())
			}

			h.lease.End()
			h.mu.Lock()
			ended := h.ended
			h.mu.Unlock()
			if !ended || !h.variant.Closed() {
				t.Fatal("the variant outlived its publication")
			}
		})
	}
}

// aacPackets returns RFC 3640 (AAC-hbr) RTP packets, fragmented over payloads of
// at most maxPayload bytes, of the ADTS stream adts, with the track codec.
func aacPackets(t *testing.T, adts []byte, maxPayload int) ([]*rtp.Packet, sfu.Codec) {
	return aacPacketsTB(t, adts, maxPayload)
}

func aacPacketsTB(t testing.TB, adts []byte, maxPayload int) ([]*rtp.Packet, sfu.Codec) {
	t.Helper()
	var ps mpeg4audio.ADTSPackets
	if err := ps.Unmarshal(adts); err != nil {
		t.Fatal(err)
	}
	conf := mpeg4audio.AudioSpecificConfig{Type: ps[0].Type, SampleRate: ps[0].SampleRate, ChannelCount: ps[0].ChannelCount}
	raw, err := conf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	enc := &rtpmpeg4audio.Encoder{PayloadType: 96, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3, PayloadMaxSize: maxPayload}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	var out []*rtp.Packet
	for i, p := range ps {
		pkts, err := enc.Encode([][]byte{p.AU})
		if err != nil {
			t.Fatal(err)
		}
		for _, pkt := range pkts {
			pkt.Timestamp = uint32(i * mpeg4audio.SamplesPerAccessUnit)
			out = append(out, pkt)
		}
	}
	codec := sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: uint32(conf.SampleRate), Channels: uint16(conf.ChannelCount),
		Fmtp: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=" + hex.EncodeToString(raw)}
	return out, codec
}

// TestAACVariant: an encoder's AAC (ffmpeg's, a 440 Hz sine, some access units
// fragmented over packets) gets an Opus variant, decoded by an ffmpeg process,
// that decodes to the tone; the process ends with the track.
func TestAACVariant(t *testing.T) {
	adts := ffmpegTone(t, 440, 48000, 2, 3, "-c:a", "aac", "-b:a", "128k", "-f", "adts")
	pkts, codec := aacPackets(t, adts, 200)
	h := newHarness(t, Config{})
	tr, err := h.lease.Track("audio", sfu.KindAudio, codec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.variant == nil {
		t.Fatal("no Opus variant beside the AAC track")
	}
	fed := 0 // samples
	for i, p := range pkts {
		if err := tr.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
		if p.Marker {
			fed += mpeg4audio.SamplesPerAccessUnit
		}
		if i%40 == 39 { // within the queue; ffmpeg holds back at most a few frames
			h.waitPackets((fed - 4*1024) / 960)
		}
	}
	h.waitPackets((fed - 4*1024) / 960)
	pcm := h.decoded(10)
	tone := goertzel(pcm, 440, 48000)
	// ffmpeg's sine source has amplitude 1/8; made stereo (-ac 2), each channel
	// is 3 dB lower.
	if rel := db(tone / (0.125 / math.Sqrt2)); rel < -1.5 || rel > 1.5 {
		t.Fatalf("440 Hz at %.1f dB of the source", rel)
	}
	t.Logf("440 Hz at %.2f dB of the source", db(tone/(0.125/math.Sqrt2)))
	for _, f := range []float64{1000, 2000, 5000} {
		if rel := db(goertzel(pcm, f, 48000) / tone); rel > -30 {
			t.Errorf("%.0f Hz only %.1f dB below the tone", f, -rel)
		}
	}
	if n := metricValue(h.tc.metrics.errors.WithLabelValues(reasonBadInput)); n != 0 {
		t.Errorf("%v packets taken for malformed", n)
	}
	h.lease.End()
	if !h.variant.Closed() {
		t.Fatal("the variant outlived its publication")
	}
}

// TestAACWithoutFFmpeg: without ffmpeg an AAC track gets no variant; the error is
// logged once per publication and counted; G.711 beside it is still transcoded.
func TestAACWithoutFFmpeg(t *testing.T) {
	_, codec := aacPackets(t, ffmpegTone(t, 440, 48000, 2, 0.1, "-c:a", "aac", "-f", "adts"), 1400)
	h := newHarness(t, Config{FFmpeg: filepath.Join(t.TempDir(), "no-ffmpeg")})
	if _, err := h.lease.Track("audio", sfu.KindAudio, codec, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.lease.Track("audio2", sfu.KindAudio, codec, nil); err != nil {
		t.Fatal(err)
	}
	if h.variant != nil {
		t.Fatal("a variant without a decoder")
	}
	if n := metricValue(h.tc.metrics.errors.WithLabelValues(reasonNoFFmpeg)); n != 2 {
		t.Fatalf("no_ffmpeg errors %v, want 2", n)
	}
	if n := strings.Count(h.logs.String(), "install ffmpeg"); n != 1 {
		t.Fatalf("%d error logs for one publication: %s", n, h.logs.String())
	}
	g, _ := h.lease.Track("mic", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	p, _ := h.sess.Publication("cam")
	found := false
	for _, tr := range p.Tracks() {
		found = found || tr.Name() == sfu.OpusVariant(g.Name())
	}
	if !found {
		t.Fatal("G.711 not transcoded beside an AAC track that could not be")
	}
}

// TestDecoderFailureIsContained: an "ffmpeg" that exits at once is counted and
// restarted; the session and the transcoder's Close are unaffected.
func TestDecoderFailureIsContained(t *testing.T) {
	falseBin := testenv.RequireTool(t, "false", "apt-get install coreutils")
	adts := ffmpegTone(t, 440, 48000, 2, 0.5, "-c:a", "aac", "-f", "adts")
	pkts, codec := aacPackets(t, adts, 1400)
	h := newHarness(t, Config{FFmpeg: falseBin})
	tr, _ := h.lease.Track("audio", sfu.KindAudio, codec, nil)
	for _, p := range pkts {
		_ = tr.WriteRTP(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testenv.WaitFor(ctx, t, "two decoder failures", func() bool {
		return metricValue(h.tc.metrics.errors.WithLabelValues(reasonDecoder)) >= 2
	})
	if h.variant == nil || h.variant.Closed() {
		t.Fatal("the variant ended with a failing decoder")
	}
	if err := h.tc.Close(); err != nil {
		t.Fatal(err)
	}
	if !h.variant.Closed() {
		t.Fatal("Close left the variant")
	}
}

// TestQueueFullDrops: a transcoding that falls behind drops packets and counts
// them; the publisher's write never blocks and does not allocate.
func TestQueueFullDrops(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	l, _ := reg.Session("s").Claim("cam", nil)
	tr, _ := l.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	m := newMetrics()
	j := &job{in: make(chan *sfu.Packet, queueSize), dropped: m.errors.WithLabelValues(reasonDropped)}
	remove := tr.AddSink(j) // nobody reads j.in: the transcoder is stuck
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	for range queueSize + 10 {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		if err := tr.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if n := metricValue(m.errors.WithLabelValues(reasonDropped)); n != 10 || len(j.in) != queueSize {
		t.Fatalf("dropped %v, queued %d", n, len(j.in))
	}
	allocs := testing.AllocsPerRun(100, func() {
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		_ = tr.WriteRTP(pkt)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet with a full queue", allocs)
	}
	remove()
	for len(j.in) > 0 {
		(<-j.in).Release()
	}
}

func itoa(n int) string { return ftoa(float64(n)) }

func ftoa(f float64) string { return strings.TrimSuffix(strings.TrimRight(fmtFloat(f), "0"), ".") }

func fmtFloat(f float64) string { return strconvFormat(f) }

func strconvFormat(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

// metricValue reads a counter's or gauge's value.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestRelayedPublicationNotTranscoded: a copy of another node's publication is
// transcoded there (its variant comes with the relay); once its publisher
// connects here, this node transcodes it.
func TestRelayedPublicationNotTranscoded(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	tc := New(Config{Logger: testenv.Logger()})
	defer tc.Close()
	sess := reg.Session("s")
	tc.Attach(sess)
	relay, err := sess.ClaimRelay("cam", nil)
	if err != nil {
		t.Fatal(err)
	}
	pcmu := sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}
	if _, err := relay.Track("audio", sfu.KindAudio, pcmu, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := sess.Publication("cam")
	if n := len(p.Tracks()); n != 1 {
		t.Fatalf("%d tracks in a relayed publication: transcoded twice", n)
	}
	if _, err := sess.Claim("cam", nil); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, tr := range p.Tracks() {
		names = append(names, tr.Name())
	}
	if len(names) != 2 || names[1] != "cam/audio.opus" {
		t.Fatalf("after the publisher connected here: %v", names)
	}
}
