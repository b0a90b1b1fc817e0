package programme

import (
	"strings"
	"testing"

	"lectern/internal/testenv"
	"lectern/sfu"
)

// TestMixQuestion: a trainer's 440 Hz and a floor holder's 1 kHz are both in the
// programme while the holder is a speaker, only 440 Hz before and after; every
// trainer packet makes one programme packet; no sequence gap at the switches.
func TestMixQuestion(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	trainer := f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	tg := newTone(t, 440, 0x1111)
	out := f.programmeTrack(t, "audio")
	if c := out.Codec(); c != opusCodec {
		t.Fatalf("programme audio codec %+v, want the trainer's %+v", c, opusCodec)
	}
	capt := newCapture(t, out)

	written := 0
	writeTrainer := func() {
		write(t, trainer, tg.next(t))
		written++
	}
	const before, during, after = 50, 100, 50
	for range before {
		writeTrainer()
	}
	holder := f.publish(t, "site-hue", "audio", sfu.KindAudio, opusCodec, nil)
	hg := newTone(t, 1000, 0x2222)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's audio in the mix", func() bool { return holder.Sinks() == 1 })
	for range during {
		write(t, holder, hg.next(t))
		writeTrainer()
	}
	testenv.WaitFor(ctx, t, "the mixed packets", func() bool { return countSSRC(capt.packets(), 0x1111) >= before+during })
	if g := value(t, f.m.metrics.mixing); g != 1 {
		t.Errorf("mixing sessions = %v while the holder speaks, want 1", g)
	}
	f.m.SetSpeakers(testSession, nil)
	testenv.WaitFor(ctx, t, "the holder out of the mix", func() bool { return holder.Sinks() == 0 })
	for range after {
		write(t, holder, hg.next(t)) // still sending, no longer a speaker
		writeTrainer()
	}
	testenv.WaitFor(ctx, t, "every programme packet", func() bool { return countSSRC(capt.packets(), 0x1111) >= written })

	pkts := capt.packets()
	trainerPkts := countSSRC(pkts, 0x1111)
	for i, p := range pkts {
		if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("sequence gap at programme packet %d: %d after %d", i, p.SequenceNumber, pkts[i-1].SequenceNumber)
		}
	}
	if trainerPkts != written {
		t.Errorf("%d programme packets on the trainer's clock, want one per trainer packet (%d)", trainerPkts, written)
	}
	frames := decodeLeft(t, pkts)
	// Skip the frames around each switch: the jitter buffer fills (40 ms) and the
	// decoders settle.
	check := func(what string, from, to int, wantQuestion bool) {
		t.Helper()
		a, b := bands(frames, from, to)
		t.Logf("%s: 440 Hz %.3g, 1 kHz %.3g", what, a, b)
		if a == 0 || b/a > 0.01 == !wantQuestion || wantQuestion && b/a < 0.1 {
			t.Errorf("%s: 1 kHz/440 Hz power = %.4f; want the question heard: %v", what, b/a, wantQuestion)
		}
	}
	check("before the floor", 5, before, false)
	check("during the floor", before+10, before+during, true)
	check("after the floor", before+during+5, len(frames), false)
	if n := value(t, f.m.metrics.switches.WithLabelValues(switchAudio)); n != 2 {
		t.Errorf("audio switches = %v, want 2", n)
	}
	if g := value(t, f.m.metrics.mixing); g != 0 {
		t.Errorf("mixing sessions = %v after the floor, want 0", g)
	}
	if value(t, f.m.metrics.mixSeconds) <= 0 {
		t.Error("no mix time counted")
	}
}

// TestForwardUntouched: with nobody on the floor, the trainer's packets go out as
// they came (payload, timestamps, SSRC).
func TestForwardUntouched(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	trainer := f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	tg := newTone(t, 440, 0x1111)
	capt := newCapture(t, f.programmeTrack(t, "audio"))
	var sent [][]byte
	for range 20 {
		p := tg.next(t)
		sent = append(sent, append([]byte(nil), p.Payload...))
		write(t, trainer, p)
	}
	testenv.WaitFor(ctx, t, "the programme packets", func() bool { return capt.len() == len(sent) })
	for i, p := range capt.packets() {
		if string(p.Payload) != string(sent[i]) || p.SSRC != 0x1111 {
			t.Fatalf("programme packet %d changed: SSRC %x", i, p.SSRC)
		}
		if i > 0 && p.Timestamp-capt.packets()[i-1].Timestamp != tickFrame {
			t.Fatalf("programme packet %d: timestamp step %d", i, p.Timestamp-capt.packets()[i-1].Timestamp)
		}
	}
}

// TestGarbageHolderExcluded: a floor holder whose packets are not Opus is left out
// of the mix with one log line; the trainer goes on.
func TestGarbageHolderExcluded(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	trainer := f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	tg := newTone(t, 440, 0x1111)
	capt := newCapture(t, f.programmeTrack(t, "audio"))
	holder := f.publish(t, "site-hue", "audio", sfu.KindAudio, opusCodec, nil)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's audio in the mix", func() bool { return holder.Sinks() == 1 })
	// Opus code-3 packets announcing 0 frames: what libopus rejects.
	garbage := []byte{0xfb, 0x00, 0xde, 0xad, 0xbe, 0xef}
	written := 0
	for i := 0; holder.Sinks() > 0; i++ {
		if i > 1000 {
			t.Fatal("the garbage holder is still in the mix after 1000 packets")
		}
		p := tg.next(t)
		g := *p
		g.SSRC, g.Payload = 0x3333, garbage
		write(t, holder, &g)
		write(t, trainer, p)
		written++
		testenv.WaitFor(ctx, t, "the programme packet", func() bool { return countSSRC(capt.packets(), 0x1111) == written })
	}
	for range 20 {
		write(t, trainer, tg.next(t))
		written++
	}
	testenv.WaitFor(ctx, t, "the trainer after the exclusion", func() bool { return countSSRC(capt.packets(), 0x1111) == written })
	if n := strings.Count(f.logs.String(), "floor holder excluded"); n != 1 {
		t.Errorf("%d exclusion log lines, want 1:\n%s", n, f.logs.String())
	}
	if n := value(t, f.m.metrics.excluded.WithLabelValues(excludedDecode)); n != 1 {
		t.Errorf("excluded{decode} = %v, want 1", n)
	}
	frames := decodeLeft(t, capt.packets())
	if a, b := bands(frames, 5, len(frames)); a == 0 || b/a > 0.01 {
		t.Errorf("the trainer's tone is not what the programme carries: 440 Hz %.3g, 1 kHz %.3g", a, b)
	}
}

// TestHolderStopsMidMix: a floor holder that stops sending does not hold up the
// programme: each trainer packet still comes out, one for one.
func TestHolderStopsMidMix(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx(t)
	trainer := f.publish(t, sfu.TrainerPublication, "audio", sfu.KindAudio, opusCodec, nil)
	tg := newTone(t, 440, 0x1111)
	capt := newCapture(t, f.programmeTrack(t, "audio"))
	holder := f.publish(t, "site-hue", "audio", sfu.KindAudio, opusCodec, nil)
	hg := newTone(t, 1000, 0x2222)
	f.m.SetSpeakers(testSession, []string{"site-hue"})
	testenv.WaitFor(ctx, t, "the holder's audio in the mix", func() bool { return holder.Sinks() == 1 })
	written := 0
	for range 30 {
		write(t, holder, hg.next(t))
		write(t, trainer, tg.next(t))
		written++
	}
	testenv.WaitFor(ctx, t, "the mixed packets", func() bool { return countSSRC(capt.packets(), 0x1111) >= written })
	// The holder falls silent; each trainer packet must come out before the next
	// is written.
	for range 50 {
		write(t, trainer, tg.next(t))
		written++
		testenv.WaitFor(ctx, t, "the programme packet", func() bool { return countSSRC(capt.packets(), 0x1111) >= written })
	}
	pkts := capt.packets()
	if n := countSSRC(pkts, 0x1111); n != written {
		t.Errorf("%d programme packets on the trainer's clock, want %d", n, written)
	}
	frames := decodeLeft(t, pkts)
	// The holder's buffer ran dry: silence from it, the trainer alone.
	if a, b := bands(frames, 40, len(frames)); a == 0 || b/a > 0.01 {
		t.Errorf("after the holder stopped: 440 Hz %.3g, 1 kHz %.3g", a, b)
	}
	if a, b := bands(frames, 5, 30); b/a < 0.1 {
		t.Errorf("while the holder spoke: 440 Hz %.3g, 1 kHz %.3g", a, b)
	}
}
