package e2e

// What a subscriber heard: its Opus packets decoded in-process with libopus,
// and a tone's amplitude measured over windows of the decoded sound (Goertzel).

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/hraban/opus.v2"
)

// Tone frequencies of the test sources: the trainer's and the classroom's.
const (
	trainerTone = 440
	siteTone    = 1000
)

// Amplitudes (full scale 1) that tell a tone present or absent. The sources'
// sines have amplitude 1/8 (1/8√2 on each channel of the stereo clips); a mix may halve each voice. Opus at 64 kbit/s leaves
// another source's tone, and coding noise, far below 1/250 in a tone's bin.
const (
	tonePresent = 0.02
	toneAbsent  = 0.004
)

// heard is one decoded audio packet: its arrival time and its sound (mono, 48 kHz).
type heard struct {
	at  time.Time
	pcm []float32
}

// decodeAudio decodes a subscriber's Opus packets in arrival order. A packet that
// does not decode fails the test: the server must never send one.
func decodeAudio(t *testing.T, pkts []captured) []heard {
	t.Helper()
	dec, err := opus.NewDecoder(48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 2*5760) // 120 ms, the longest Opus packet
	out := make([]heard, 0, len(pkts))
	bad := 0
	for _, c := range pkts {
		n, err := dec.DecodeFloat32(c.pkt.Payload, buf)
		if err != nil {
			if bad++; bad <= 3 {
				t.Errorf("audio packet seq %d (%d bytes) does not decode: %v", c.pkt.SequenceNumber, len(c.pkt.Payload), err)
			}
			continue
		}
		mono := make([]float32, n)
		for i := range mono {
			mono[i] = (buf[2*i] + buf[2*i+1]) / 2
		}
		out = append(out, heard{at: c.at, pcm: mono})
	}
	if bad > 0 {
		t.Errorf("%d of %d audio packets do not decode", bad, len(pkts))
	}
	return out
}

// toneWindow is the amplitudes of the two test tones in a window of sound.
type toneWindow struct {
	at            time.Time // arrival of its first packet
	trainer, site float64
	pcm           []float32 // its sound, for other tones
}

func (w toneWindow) String() string {
	return fmt.Sprintf("%s 440Hz=%.4f 1kHz=%.4f", w.at.Format("15:04:05.000"), w.trainer, w.site)
}

// toneWindows cuts the sound of the packets that arrived in [from, to) into
// 200 ms windows (a whole number of periods of every test tone, so none leaks
// into another's bin) and measures the trainer's and the classroom's in each.
func toneWindows(h []heard, from, to time.Time) []toneWindow {
	const size = 9600 // 200 ms at 48 kHz
	var out []toneWindow
	var pcm []float32
	var start time.Time
	for _, x := range h {
		if x.at.Before(from) || !x.at.Before(to) {
			continue
		}
		if len(pcm) == 0 {
			start = x.at
		}
		pcm = append(pcm, x.pcm...)
		if len(pcm) >= size {
			w := pcm[:size:size]
			out = append(out, toneWindow{at: start, trainer: amplitude(w, trainerTone), site: amplitude(w, siteTone), pcm: w})
			pcm = nil
		}
	}
	return out
}

// amplitude is the amplitude of the freq Hz component of pcm (48 kHz), by the
// Goertzel algorithm: exact for a sine with a whole number of periods in pcm.
func amplitude(pcm []float32, freq float64) float64 {
	w := 2 * math.Pi * freq / 48000
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / float64(len(pcm))
}

// checkTones fails the test unless every window has the trainer's tone, and
// has the classroom's tone when site (else not).
func checkTones(t *testing.T, what string, ws []toneWindow, site bool, min int) {
	t.Helper()
	if len(ws) < min {
		t.Errorf("%s: %d windows of sound, want at least %d", what, len(ws), min)
		return
	}
	var bad []string
	for _, w := range ws {
		ok := w.trainer >= tonePresent
		if site {
			ok = ok && w.site >= tonePresent
		} else {
			ok = ok && w.site <= toneAbsent
		}
		if !ok {
			bad = append(bad, w.String())
		}
	}
	if len(bad) > 0 {
		want := "440 Hz only"
		if site {
			want = "440 Hz and 1 kHz"
		}
		t.Errorf("%s: want %s (present ≥ %.3f, absent ≤ %.3f); %d of %d windows are not:\n%s",
			what, want, tonePresent, toneAbsent, len(bad), len(ws), strings.Join(bad, "\n"))
	}
}

// checkContinuous fails the test unless the packets' sequence numbers follow
// each other without a gap, and their timestamps advance by one 20 ms frame
// (960 at 48 kHz), give or take a frame: a switch between forwarding and
// mixing must be invisible to the receiver.
func checkContinuous(t *testing.T, what string, pkts []captured, frame uint32) {
	t.Helper()
	gaps, jumps := 0, 0
	for i := 1; i < len(pkts); i++ {
		p, q := pkts[i-1].pkt, pkts[i].pkt
		if q.SequenceNumber != p.SequenceNumber+1 {
			if gaps++; gaps <= 5 {
				t.Errorf("%s: sequence number %d after %d (at %s)", what, q.SequenceNumber, p.SequenceNumber, pkts[i].at.Format("15:04:05.000"))
			}
		}
		if d := q.Timestamp - p.Timestamp; frame > 0 && (d < frame/2 || d > 2*frame) {
			if jumps++; jumps <= 5 {
				t.Errorf("%s: timestamp %d after %d (seq %d at %s, %v after the one before), want about +%d", what, q.Timestamp, p.Timestamp,
					q.SequenceNumber, pkts[i].at.Format("15:04:05.000"), pkts[i].at.Sub(pkts[i-1].at).Round(time.Millisecond), frame)
			}
		}
	}
	if gaps > 0 || jumps > 0 {
		t.Errorf("%s: %d sequence gaps, %d timestamp jumps in %d packets", what, gaps, jumps, len(pkts))
	}
}
