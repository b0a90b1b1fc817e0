package programme

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// TestLifecycle: the programme exists while the trainer's publication does,
// through a reconnect grace, and comes back with the trainer.
func TestLifecycle(t *testing.T) {
	f := newFixtureGrace(t, time.Hour)
	ctx := f.ctx(t)
	if _, ok := f.sess.Publication(Publication); ok {
		t.Fatal("a programme before the trainer")
	}
	l := f.claim(t, sfu.TrainerPublication)
	trainer, err := l.Track("audio", sfu.KindAudio, opusCodec, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.m.Attach(f.sess) // idempotent
	out := f.programmeTrack(t, "audio")
	capt := newCapture(t, out)
	tg := newTone(t, 440, 0x1111)
	write(t, trainer, tg.next(t))
	testenv.WaitFor(ctx, t, "the first packet", func() bool { return capt.len() == 1 })

	// The trainer's connection drops: the publication waits, paused, and so does
	// the programme (through a few housekeeping rounds).
	l.Release()
	time.Sleep(3 * housekeeping)
	if _, ok := f.sess.Publication(Publication); !ok {
		t.Fatal("the programme ended while the trainer was within its grace")
	}
	// The trainer is back on the same tracks, with a new SSRC: the programme
	// track goes on.
	l = f.claim(t, sfu.TrainerPublication)
	if again, err := l.Track("audio", sfu.KindAudio, opusCodec, nil); err != nil || again != trainer {
		t.Fatalf("the trainer's track after the reconnect: %v", err)
	}
	tg2 := newTone(t, 440, 0x4444)
	write(t, trainer, tg2.next(t))
	testenv.WaitFor(ctx, t, "the packet after the reconnect", func() bool { return capt.len() == 2 })
	if p := capt.packets(); p[1].SequenceNumber != p[0].SequenceNumber+1 {
		t.Errorf("sequence %d after %d across the reconnect", p[1].SequenceNumber, p[0].SequenceNumber)
	}

	// The trainer ends: so does the programme, and its goroutine.
	l.End()
	testenv.WaitFor(ctx, t, "the programme's end", func() bool {
		_, ok := f.sess.Publication(Publication)
		f.m.mu.Lock()
		n := len(f.m.progs)
		f.m.mu.Unlock()
		return !ok && n == 0 && out.Closed()
	})
	// A new lecture of the same session: a new programme.
	f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	if f.programmeTrack(t, "audio") == out {
		t.Fatal("the ended programme track came back")
	}
}

// TestScreenForwarded: the trainer's slides are in the programme as they are.
func TestScreenForwarded(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	sc := &camera{id: 7, inBand: true, ssrc: 0xcccc}
	sc.tracks = []*sfu.Track{f.publish(t, sfu.TrainerPublication, "screen", sfu.KindVideo, h264Codec, sc.requestKeyframe)}
	out := f.programmeTrack(t, "screen")
	if out.Codec() != h264Codec {
		t.Fatalf("programme screen codec %+v", out.Codec())
	}
	capt := newCapture(t, out)
	testenv.WaitFor(ctx, t, "the slides", func() bool {
		sc.frame(t)
		time.Sleep(5 * time.Millisecond)
		return capt.len() > 20
	})
	pkts := capt.packets()
	if _, key := source(pkts[0]); !key {
		t.Error("the programme's slides do not start at a keyframe")
	}
	for i, p := range pkts {
		if id, _ := source(p); id != 7 || p.SSRC != 0xcccc || i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("programme screen packet %d: camera %d, SSRC %x", i, id, p.SSRC)
		}
	}
}

// TestTrainerSilentMix: when the trainer's audio stops while a holder speaks, the
// mix goes on on the programme's own 20 ms clock, with continuous sequence numbers.
func TestTrainerSilentMix(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	trainer := f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	tg := newTone(t, 440, 0x1111)
	capt := newCapture(t, f.programmeTrack(t, "audio"))
	for range 10 {
		write(t, trainer, tg.next(t))
	}
	holder := f.publish(t, "site-hue", "audio", sfu.KindAudio, opusCodec, nil)
	hg := newTone(t, 1000, 0x2222)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's audio in the mix", func() bool { return holder.Sinks() == 1 })
	// The holder speaks in real time; the trainer says nothing.
	own := 0
	testenv.WaitFor(ctx, t, "a second of the holder alone", func() bool {
		write(t, holder, hg.next(t))
		time.Sleep(20 * time.Millisecond)
		own = 0
		for _, p := range capt.packets() {
			if p.SSRC != 0x1111 {
				own++
			}
		}
		return own >= 50
	})
	pkts := capt.packets()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("sequence gap at programme packet %d", i)
		}
		if d := pkts[i].Timestamp - pkts[i-1].Timestamp; d == 0 || d > 48000 {
			t.Fatalf("timestamp step %d at programme packet %d", d, i)
		}
	}
	frames := decodeLeft(t, pkts)
	if a, b := bands(frames, len(frames)-40, len(frames)); b == 0 || a/b > 0.01 {
		t.Errorf("the holder alone: 440 Hz %.3g, 1 kHz %.3g", a, b)
	}
}

// TestFirstFourMixed: of five speakers, the first four granted are mixed; when
// one leaves, the fifth is.
func TestFirstFourMixed(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	f.programmeTrack(t, "audio")
	var pubs []string
	var tracks []*sfu.Track
	for i := range 5 {
		pub := fmt.Sprintf("site-%d", i)
		pubs = append(pubs, pub)
		tracks = append(tracks, f.publish(t, pub, "audio", sfu.KindAudio, opusCodec, nil))
	}
	mixed := func(want ...int) func() bool {
		return func() bool {
			for i, tr := range tracks {
				if (tr.Sinks() == 1) != slices.Contains(want, i) {
					return false
				}
			}
			return true
		}
	}
	f.m.SetSpeakers(testSession, pubs)
	testenv.WaitFor(ctx, t, "the first four mixed", mixed(0, 1, 2, 3))
	f.m.SetSpeakers(testSession, slices.Delete(slices.Clone(pubs), 1, 2))
	testenv.WaitFor(ctx, t, "the fifth mixed in the place of the second", mixed(0, 2, 3, 4))
}

// TestHolderCodecs: a holder's non-Opus audio is mixed through its Opus variant;
// one with no variant is excluded with one log line.
func TestHolderCodecs(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	f.programmeTrack(t, "audio")
	pcmu := sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}
	la := f.claim(t, "site-a")
	aOrig, _ := la.Track("audio", sfu.KindAudio, pcmu, nil)
	aOpus, err := la.Track("audio"+sfu.OpusVariantSuffix, sfu.KindAudio, opusCodec, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, "site-b", "audio", sfu.KindAudio, pcmu, nil)
	f.m.SetSpeakers(testSession, []string{"site-a", "site-b"})
	testenv.WaitFor(ctx, t, "site-a's Opus variant mixed", func() bool { return aOpus.Sinks() == 1 && aOrig.Sinks() == 0 })
	testenv.WaitFor(ctx, t, "site-b excluded", func() bool { return strings.Contains(f.logs.String(), "floor holder excluded") })
	if n := value(t, f.m.metrics.excluded.WithLabelValues(excludedCodec)); n != 1 {
		t.Errorf("excluded{codec} = %v, want 1", n)
	}
	time.Sleep(3 * housekeeping) // more reconcile rounds: still one line
	if n := strings.Count(f.logs.String(), "floor holder excluded"); n != 1 || !strings.Contains(f.logs.String(), "publication=site-b") {
		t.Errorf("%d exclusion lines:\n%s", n, f.logs.String())
	}
}
