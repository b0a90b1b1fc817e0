package transcode

import (
	"bytes"
	"math"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// BenchmarkG711Packet: one 20 ms G.711 packet through the whole in-process path:
// expansion, 8 -> 48 kHz resampling, Opus encoding, the write to the variant.
// core-% is the share of one core a camera's stream costs.
func BenchmarkG711Packet(b *testing.B) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	l, _ := reg.Session("s").Claim("cam", nil)
	p, _ := reg.Session("s").Publication("cam")
	variant, _ := p.DerivedTrack("audio.opus", sfu.KindAudio, OpusCodec)
	out, err := newOpusOut(variant, 1)
	if err != nil {
		b.Fatal(err)
	}
	src, _ := l.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	var pkt *sfu.Packet
	remove := src.AddSink(&sinkFunc{func(p *sfu.Packet) error { p.Retain(); pkt = p; return nil }})
	payload := make([]byte, 160)
	in := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: payload}
	_ = src.WriteRTP(in)
	remove()
	d := &g711Decoder{table: &ulawTable}
	tone := make([]int16, 160)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// A 1 kHz tone's codes, as a camera sends: the encoder's work depends on it.
		for j := range tone {
			tone[j] = int16(4000 * math.Sin(2*math.Pi*1000*float64(i*160+j)/8000))
		}
		for j, s := range tone {
			pkt.Payload[j] = ulawEncode(s)
		}
		pkt.Header.Timestamp = uint32(i * 160)
		if err := d.packet(pkt, out); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(20*time.Millisecond)*100, "core-%")
	pkt.Release()
}

type sinkFunc struct{ fn func(*sfu.Packet) error }

func (f *sinkFunc) WriteRTP(p *sfu.Packet) error { return f.fn(p) }

// ulawEncode is G.711 μ-law compression (for the benchmark's input only).
func ulawEncode(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int(s)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0F
	return ^byte(sign | exp<<4 | mant)
}

// BenchmarkSinkHandOff: what a transcoded track costs its publisher's read
// goroutine per packet (the track's fan-out to the job's queue, drained by
// another goroutine).
func BenchmarkSinkHandOff(b *testing.B) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	l, _ := reg.Session("s").Claim("cam", nil)
	src, _ := l.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, nil)
	m := newMetrics()
	j := &job{in: make(chan *sfu.Packet, queueSize), dropped: m.errors.WithLabelValues(reasonDropped)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range j.in {
			p.Release()
		}
	}()
	remove := src.AddSink(j)
	in := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 160)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		in.SequenceNumber++
		in.Timestamp += 160
		_ = src.WriteRTP(in)
	}
	b.StopTimer()
	remove()
	close(j.in)
	<-done
}

// BenchmarkAACStream: a second of 48 kHz stereo AAC transcoded: ffmpeg's decoding
// (its CPU time, from the process's rusage, over 10 s of audio) and libopus'
// encoding of the 50 frames in-process. ffmpeg-core-% and opus-core-% are the
// shares of one core an encoder's stream costs.
func BenchmarkAACStream(b *testing.B) {
	ffmpeg := testenv.RequireTool(b, "ffmpeg", "apt-get install ffmpeg")
	adts := benchTone(b, ffmpeg)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	reg.Session("s").Claim("cam", nil)
	p, _ := reg.Session("s").Publication("cam")
	variant, _ := p.DerivedTrack("audio.opus", sfu.KindAudio, OpusCodec)
	out, err := newOpusOut(variant, 2)
	if err != nil {
		b.Fatal(err)
	}
	var ffmpegCPU, opusTime time.Duration
	pcmBytes := 0
	for range b.N {
		cmd := exec.Command(ffmpeg, ffmpegArgs()...)
		cmd.Stdin = bytes.NewReader(adts)
		raw, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		ffmpegCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		pcmBytes += len(raw)
		pcm := make([]int16, frameSamples*2)
		start := time.Now()
		for off := 0; off+len(pcm)*2 <= len(raw); off += len(pcm) * 2 {
			for i := range pcm {
				pcm[i] = int16(uint16(raw[off+2*i]) | uint16(raw[off+2*i+1])<<8)
			}
			if err := out.write(pcm, uint32(off/4)); err != nil {
				b.Fatal(err)
			}
		}
		opusTime += time.Since(start)
	}
	audio := time.Duration(pcmBytes/4) * time.Second / opusRate
	b.ReportMetric(float64(ffmpegCPU)/float64(audio)*100, "ffmpeg-core-%")
	b.ReportMetric(float64(opusTime)/float64(audio)*100, "opus-core-%")
}

func benchTone(b *testing.B, ffmpeg string) []byte {
	out, err := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=48000:duration=10", "-ac", "2", "-c:a", "aac", "-b:a", "128k", "-f", "adts", "pipe:1").Output()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkAACLatency: what transcoding adds to an encoder's AAC on its way to
// browsers: access units written to the track in real time (one every 21.3 ms),
// each 20 ms Opus frame's arrival on the variant against when the last of its
// samples was written (so the frame could not exist sooner): the first frame
// (ffmpeg starting), then p50-ms and p99-ms of the frames after the first 0.5 s.
func BenchmarkAACLatency(b *testing.B) {
	ffmpeg := testenv.RequireTool(b, "ffmpeg", "apt-get install ffmpeg")
	adts, err := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=frequency=440:sample_rate=48000:duration=3", "-ac", "2", "-c:a", "aac", "-f", "adts", "pipe:1").Output()
	if err != nil {
		b.Fatal(err)
	}
	var lat []float64
	first := 0.0
	for range b.N {
		l := aacLatencyRun(b, adts)
		first = max(first, l[0])
		lat = append(lat, l[25:]...) // past ffmpeg's start (the first 0.5 s)
	}
	slices.Sort(lat)
	b.ReportMetric(first, "first-frame-ms")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
}

func aacLatencyRun(b *testing.B, adts []byte) []float64 {
	pkts, codec := aacPacketsTB(b, adts, 1400)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testenv.Logger()})
	defer reg.CloseAll()
	tc := New(Config{Logger: testenv.Logger()})
	defer tc.Close()
	sess := reg.Session("s")
	var mu sync.Mutex
	var arrivals []time.Time
	cancel := sess.Watch(func(tr *sfu.Track) {
		if tr.Name() == "cam/audio.opus" {
			tr.AddSink(&sinkFunc{func(*sfu.Packet) error {
				mu.Lock()
				arrivals = append(arrivals, time.Now())
				mu.Unlock()
				return nil
			}})
		}
	})
	defer cancel()
	tc.Attach(sess)
	l, _ := sess.Claim("cam", nil)
	tr, _ := l.Track("audio", sfu.KindAudio, codec, nil)
	start := time.Now()
	for i, p := range pkts {
		at := start.Add(time.Duration(i) * time.Second * 1024 / opusRate)
		time.Sleep(time.Until(at))
		_ = tr.WriteRTP(p)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var lat []float64
	for k, a := range arrivals {
		// The frame's last sample is in access unit floor(((k+1)*960-1)/1024),
		// written at start + that unit's index * 1024 samples.
		au := ((k+1)*frameSamples - 1) / 1024
		written := start.Add(time.Duration(au) * time.Second * 1024 / opusRate)
		lat = append(lat, float64(a.Sub(written))/float64(time.Millisecond))
	}
	return lat
}
