package programme

import (
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// encoded returns n consecutive 20 ms Opus packets of a tone, payloads copied.
func encoded(b testing.TB, freq float64, ssrc uint32, n int) []rtp.Packet {
	g := newTone(b, freq, ssrc)
	out := make([]rtp.Packet, n)
	for i := range out {
		p := g.next(b)
		out[i] = rtp.Packet{Header: p.Header, Payload: slices.Clone(p.Payload)}
	}
	return out
}

// BenchmarkMixTwoOpus: one 20 ms frame of the mix of a trainer and one floor
// holder: both decoded, summed, the sum encoded. %core/session is the share of
// one core a mixing session takes at 50 frames a second.
func BenchmarkMixTwoOpus(b *testing.B) {
	tp := encoded(b, 440, 1, 50)
	hp := encoded(b, 1000, 2, 50)
	m, err := newMixer()
	if err != nil {
		b.Fatal(err)
	}
	h, err := newHolderAudio()
	if err != nil {
		b.Fatal(err)
	}
	holders := []*holderAudio{h}
	// Fill the holder's jitter buffer to its target first, as live.
	for i := range 2 {
		if _, err := h.push(uint16(i), hp[i].Payload); err != nil {
			b.Fatal(err)
		}
	}
	// The share of a core is measured in CPU time of this thread (libopus runs
	// on it through cgo), not wall time: on a loaded machine the wall clock also
	// counts the time other processes had the core.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU(b)
	for i := 0; i < b.N; i++ {
		if _, err := h.push(uint16(i+2), hp[i%len(hp)].Payload); err != nil {
			b.Fatal(err)
		}
		if _, err := m.mixTrainer(tp[i%len(tp)].Payload, holders); err != nil {
			b.Fatal(err)
		}
	}
	cpu := threadCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/20e6*100, "%core/session")
}

// threadCPU returns the CPU time (user and system) the calling OS thread used.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stamp is a sink that reports the arrival of each packet on a channel.
type stamp chan int64

func (s stamp) WriteRTP(*sfu.Packet) error {
	select {
	case s <- sfu.Nanotime():
	default:
	}
	return nil
}

// BenchmarkForward: one trainer audio packet with nobody on the floor, from the
// trainer's track to a consumer's sink. "direct" is a consumer of the trainer's
// track (what a classroom costs without the programme), "programme" one of
// programme/audio: the programme's hop through its goroutine on top.
func BenchmarkForward(b *testing.B) {
	pkts := encoded(b, 440, 1, 50)
	run := func(b *testing.B, viaProgramme bool) {
		f := newFixture(b)
		trainer := f.publish(b, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
		out := trainer
		if viaProgramme {
			out = f.programmeTrack(b, "audio")
		}
		got := make(stamp, 1)
		b.Cleanup(out.AddSinkLive(got))
		p := pkts[0]
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p.Payload = pkts[i%len(pkts)].Payload
			p.SequenceNumber++
			p.Timestamp += tickFrame
			if err := trainer.WriteRTP(&p); err != nil {
				b.Fatal(err)
			}
			<-got
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, false) })
	b.Run("programme", func(b *testing.B) { run(b, true) })
}

// BenchmarkAddedLatency: the time from a trainer packet written to its track to
// its programme packet leaving programme/audio, forwarded (nobody on the floor)
// and mixed with one floor holder; p99 of each in ms, and the mix's addition.
func BenchmarkAddedLatency(b *testing.B) {
	tp := encoded(b, 440, 1, 50)
	hp := encoded(b, 1000, 2, 50)
	f := newFixture(b)
	ctx := f.ctx(b)
	trainer := f.publish(b, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	holder := f.publish(b, "site-hue", "audio", sfu.KindAudio, opusCodec, nil)
	got := make(stamp, 1)
	b.Cleanup(f.programmeTrack(b, "audio").AddSinkLive(got))
	t, h := tp[0], hp[0]
	measure := func(mixed bool) []float64 {
		lat := make([]float64, 0, b.N)
		for i := 0; i < b.N; i++ {
			if mixed {
				h.Payload = hp[i%len(hp)].Payload
				h.SequenceNumber++
				h.Timestamp += tickFrame
				if err := holder.WriteRTP(&h); err != nil {
					b.Fatal(err)
				}
			}
			t.Payload = tp[i%len(tp)].Payload
			t.SequenceNumber++
			t.Timestamp += tickFrame
			start := sfu.Nanotime()
			if err := trainer.WriteRTP(&t); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, float64(<-got-start)/1e6)
		}
		slices.Sort(lat)
		return lat
	}
	p99 := func(l []float64) float64 { return l[min(len(l)-1, len(l)*99/100)] }
	b.ResetTimer()
	fwd := measure(false)
	b.StopTimer()
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, b, "the holder in the mix", func() bool { return holder.Sinks() == 1 })
	b.StartTimer()
	mix := measure(true)
	b.StopTimer()
	if value(b, f.m.metrics.mixing) != 1 {
		b.Fatal("the programme did not mix")
	}
	b.ReportMetric(p99(fwd), "fwd-p99-ms")
	b.ReportMetric(p99(mix), "mix-p99-ms")
	b.ReportMetric(p99(mix)-p99(fwd), "added-p99-ms")
}
