package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
	"lectern/sfu"
)

// cpuTimes returns the user and system CPU time the process used so far.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkRecordCPU measures the CPU a recorder spends per recorded 2.5 Mbit/s
// 720p30 H.264 + Opus stream (core%/stream: percent of one core per stream, per
// second of media), into a local Dir store.
//
// The recorder's cost is small next to the noise of the feeding itself (timers,
// the sfu tracks) and of the kernel (the spool and the store fsync every file),
// so the measurement is built to keep them apart:
//
//   - one feeder goroutine writes the same pre-packetized clip into the tracks of
//     several sessions at once (streams=4), at 5x real time: the recorder's work
//     grows with the streams, the feeder's timer wakeups do not. streams=1 is the
//     single lecture: the noisier figure, and the higher, since a lone stream's
//     goroutines find the other core idle more often and each wakeup costs more;
//   - each iteration is a pair of runs, one with the recorder attached to every
//     session and one without (the baseline carries the same feeding: same
//     tracks, same packets, same timers, a recorder that is created and closed
//     but attached to nothing); the order alternates between iterations so a
//     drift of the machine does not favour one side; every run starts after a
//     garbage collection;
//   - the difference of process CPU time (getrusage, user + system) of each pair,
//     divided by the streams and the media seconds, is one sample; core%/stream is
//     the median of the samples, reported with their minimum and maximum, and the
//     medians of the user and system parts (the system part is mostly the
//     kernel's work for the fsyncs, and varies most). feed-core% is the median
//     baseline run: what feeding the streams costs without a recorder.
//
// Each run records 30 s of media per stream. Use -benchtime Nx for N pairs
// (N >= 3 for a meaningful median; the first, N=1 round is not reported).
func BenchmarkRecordCPU(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) { benchmarkRecordCPU(b, n) })
	}
}

func benchmarkRecordCPU(b *testing.B, streams int) {
	testenv.RequireTool(b, "ffmpeg", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := clip.Generate(ctx, filepath.Join(os.TempDir(), "lectern-test-clips"), clip.Options{Duration: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	const passes = 3
	media := passes * c.Duration
	pc := packetizeClip(c)
	type cost struct{ user, sys time.Duration }
	run := func(record bool) (cost, uint64) {
		store := testrec.DirStore(b)
		r := newRecorderB(b, store)
		reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
		var leases []*sfu.Lease
		var videos, audios []*sfu.Track
		for i := range streams {
			sess := reg.Session(fmt.Sprintf("bench%d-%05d", i, time.Now().Nanosecond()%100000))
			if record {
				r.Attach(sess)
			}
			lease, _ := sess.Claim("trainer", nil)
			video, _ := lease.Track("video", sfu.KindVideo, h264Codec, nil)
			audio, _ := lease.Track("audio", sfu.KindAudio, opusCodec, nil)
			leases, videos, audios = append(leases, lease), append(videos, video), append(audios, audio)
		}
		runtime.GC() // the previous run's garbage is not charged to this one
		time.Sleep(100 * time.Millisecond)
		user0, sys0 := cpuTimes()
		for pass := range passes {
			pc.play(ctx, videos, audios, pass, 5)
		}
		for _, l := range leases {
			l.End()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		_ = r.Close(cctx)
		ccancel()
		user1, sys1 := cpuTimes()
		return cost{user1 - user0, sys1 - sys0}, reg.Stats().QueueDrops.Load()
	}
	pct := func(d time.Duration, n int) float64 { return 100 * d.Seconds() / float64(n) / media.Seconds() }
	b.ResetTimer()
	var total, user, sys, feed []float64 // one sample per pair
	for i := range b.N {
		var w, wo cost
		var drops uint64
		if i%2 == 0 {
			w, drops = run(true)
			wo, _ = run(false)
		} else {
			wo, _ = run(false)
			w, drops = run(true)
		}
		if drops > 0 {
			b.Fatalf("the recorder's queues dropped %d packets at 5x real time", drops)
		}
		total = append(total, pct(w.user+w.sys-wo.user-wo.sys, streams))
		user = append(user, pct(w.user-wo.user, streams))
		sys = append(sys, pct(w.sys-wo.sys, streams))
		feed = append(feed, pct(wo.user+wo.sys, 1))
	}
	b.ReportMetric(median(total), "core%/stream")
	b.ReportMetric(slices.Min(total), "min-core%/stream")
	b.ReportMetric(slices.Max(total), "max-core%/stream")
	b.ReportMetric(median(user), "user-core%/stream")
	b.ReportMetric(median(sys), "sys-core%/stream")
	b.ReportMetric(median(feed), "feed-core%")
	b.ReportMetric(float64(media.Seconds()), "media-s/op")
}

// median returns the median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// packetizedClip is a clip packetized once, so that feeding it costs the same in
// every run and allocates nothing.
type packetizedClip struct {
	c     *clip.Clip
	video [][]rtp.Packet // per access unit
}

func packetizeClip(c *clip.Clip) *packetizedClip {
	pc := &packetizedClip{c: c}
	for _, au := range c.Video {
		pc.video = append(pc.video, au.Packetize(1200))
	}
	return pc
}

// play sends one pass of the clip into every (video, audio) pair of tracks at
// speed times real time, with continuous timestamps across passes.
func (pc *packetizedClip) play(ctx context.Context, videos, audios []*sfu.Track, pass int, speed float64) {
	c := pc.c
	start := time.Now()
	vi, ai := 0, 0
	vseq, aseq := uint16(pass*20000), uint16(pass*2000)
	for (vi < len(c.Video) || ai < len(c.Audio)) && ctx.Err() == nil {
		isVideo, pts := nextFrame(c, vi, ai)
		if d := time.Until(start.Add(time.Duration(float64(pts) / speed))); d > 0 {
			time.Sleep(d)
		}
		base := time.Duration(pass) * c.Duration
		if isVideo {
			ts := uint32((base + pts) * 90000 / time.Second)
			for j := range pc.video[vi] {
				rp := &pc.video[vi][j]
				rp.SSRC, rp.Timestamp, rp.SequenceNumber = 1, ts, vseq
				vseq++
				for _, v := range videos {
					_ = v.WriteRTP(rp)
				}
			}
			vi++
		} else {
			ts := uint32((base + pts) * 48000 / time.Second)
			rp := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 2, Timestamp: ts, SequenceNumber: aseq}, Payload: c.Audio[ai].Data}
			aseq++
			for _, a := range audios {
				_ = a.WriteRTP(&rp)
			}
			ai++
		}
	}
}

func newRecorderB(b *testing.B, store Store) *Recorder {
	b.Helper()
	r, err := New(context.Background(), Config{Store: store, SpoolDir: b.TempDir(), Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
