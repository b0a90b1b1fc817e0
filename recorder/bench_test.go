package recorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/sfu"
	"lectern/storage"
)

// cpuTime returns the CPU time (user + system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordCPU measures the CPU a recorder spends per recorded 2.5 Mbit/s
// 720p30 H.264 + Opus stream: the same packets are written into a track with and
// without the recorder attached, at 5x real time, and the difference in process
// CPU time per second of media is reported as a percentage of one core
// ("core%/stream"). Each iteration records 30 s of media.
func BenchmarkRecordCPU(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := clip.Generate(ctx, filepath.Join(os.TempDir(), "lectern-test-clips"), clip.Options{Duration: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	const passes = 3
	media := passes * c.Duration
	run := func(record bool) (time.Duration, uint64) {
		store := newDirStoreB(b)
		r := newRecorderB(b, store)
		reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
		sess := reg.Session(fmt.Sprintf("bench%05d", time.Now().Nanosecond()%100000))
		if record {
			r.Attach(sess)
		}
		lease, _ := sess.Claim("trainer", nil)
		video, _ := lease.Track("video", sfu.KindVideo, h264Codec, nil)
		audio, _ := lease.Track("audio", sfu.KindAudio, opusCodec, nil)
		time.Sleep(100 * time.Millisecond)
		start := cpuTime()
		for pass := range passes {
			playFast(ctx, c, video, audio, pass, 5)
		}
		lease.End()
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		_ = r.Close(cctx)
		ccancel()
		used := cpuTime() - start
		return used, reg.Stats().QueueDrops.Load()
	}
	b.ResetTimer()
	var with, without time.Duration
	for range b.N {
		w, drops := run(true)
		if drops > 0 {
			b.Fatalf("the recorder's queue dropped %d packets at 5x real time", drops)
		}
		wo, _ := run(false)
		with += w
		without += wo
	}
	perStream := (with - without) / time.Duration(b.N)
	b.ReportMetric(100*perStream.Seconds()/media.Seconds(), "core%/stream")
	b.ReportMetric(float64(media.Seconds()), "media-s/op")
}

// playFast sends one pass of c at speed times real time, with continuous
// timestamps across passes.
func playFast(ctx context.Context, c *clip.Clip, video, audio *sfu.Track, pass int, speed float64) {
	start := time.Now()
	vi, ai := 0, 0
	vseq, aseq := uint16(pass*20000), uint16(pass*2000)
	for vi < len(c.Video) || ai < len(c.Audio) {
		isVideo := ai >= len(c.Audio) || (vi < len(c.Video) && c.Video[vi].PTS <= c.Audio[ai].PTS)
		var pts time.Duration
		if isVideo {
			pts = c.Video[vi].PTS
		} else {
			pts = c.Audio[ai].PTS
		}
		if d := time.Until(start.Add(time.Duration(float64(pts) / speed))); d > 0 {
			time.Sleep(d)
		}
		base := time.Duration(pass) * c.Duration
		if isVideo {
			ts := uint32((base + pts) * 90000 / time.Second)
			for _, rp := range c.Video[vi].Packetize(1200) {
				rp.SSRC, rp.Timestamp, rp.SequenceNumber = 1, ts, vseq
				vseq++
				_ = video.WriteRTP(&rp)
			}
			vi++
		} else {
			ts := uint32((base + pts) * 48000 / time.Second)
			rp := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 2, Timestamp: ts, SequenceNumber: aseq}, Payload: c.Audio[ai].Data}
			aseq++
			_ = audio.WriteRTP(&rp)
			ai++
		}
	}
}

func newDirStoreB(b *testing.B) Store {
	b.Helper()
	d, err := storage.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func newRecorderB(b *testing.B, store Store) *Recorder {
	b.Helper()
	r, err := New(context.Background(), Config{Store: store, SpoolDir: b.TempDir(), Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
