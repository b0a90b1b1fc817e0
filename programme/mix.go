package programme

import (
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// PCM format of the mix: Opus's native rate, stereo (a mono source is upmixed by
// its decoder).
const (
	sampleRate = 48000
	channels   = 2
	// maxFrame is the longest Opus packet in samples per channel (120 ms).
	maxFrame = 120 * sampleRate / 1000
	// tickFrame is the frame the mix makes on its own clock when the trainer is
	// silent: 20 ms.
	tickFrame = 20 * sampleRate / 1000

	// Jitter buffer of each holder: playback starts once it holds jitterTarget,
	// and it never holds more than jitterCap (the oldest samples go).
	jitterTarget = 40 * sampleRate / 1000 * channels
	jitterCap    = 120 * sampleRate / 1000 * channels

	// A decode error adds errPenalty to a holder's score, a decoded packet takes
	// one off; at excludeScore the holder is excluded: five errors in a row, or
	// about one packet in ten failing for a while.
	errPenalty   = 10
	excludeScore = 50

	// outBitrate of the mixed Opus: speech and music of a lecture hall, stereo.
	outBitrate = 64000
	// outComplexity trades a little quality for CPU: with the CELT-only
	// low-delay mode (a lecture hall's speech and music at 64 kbit/s need no SILK,
	// and it adds the least delay) the mix of two streams costs about 0.75 % of a
	// core per session at 5, 0.95 % at 10 (BenchmarkMixTwoOpus, CPU time).
	outComplexity = 5
)

// jitterBuffer holds one holder's decoded PCM (interleaved stereo) until the mix
// takes it on the trainer's clock. Not safe for concurrent use: the programme
// goroutine owns it.
type jitterBuffer struct {
	ring   [jitterCap]int16
	r, n   int
	primed bool // playing out; false until jitterTarget is reached again
}

// write appends pcm, dropping the oldest samples beyond the cap.
func (b *jitterBuffer) write(pcm []int16) {
	if len(pcm) > jitterCap {
		pcm = pcm[len(pcm)-jitterCap:]
	}
	if over := b.n + len(pcm) - jitterCap; over > 0 {
		b.r = (b.r + over) % jitterCap
		b.n -= over
	}
	w := (b.r + b.n) % jitterCap
	k := copy(b.ring[w:], pcm)
	copy(b.ring[:], pcm[k:])
	b.n += len(pcm)
	if !b.primed && b.n >= jitterTarget {
		b.primed = true
	}
}

// addTo adds len(mix) samples to mix (int32 accumulators). A buffer not primed
// adds nothing (silence); one that runs dry adds what it has and waits to be
// primed again.
func (b *jitterBuffer) addTo(mix []int32) {
	if !b.primed {
		return
	}
	k := min(len(mix), b.n)
	for i := 0; i < k; i++ {
		mix[i] += int32(b.ring[b.r])
		b.r++
		if b.r == jitterCap {
			b.r = 0
		}
	}
	b.n -= k
	if k < len(mix) {
		b.primed = false
	}
}

// maxConceal is the longest run of lost packets of a holder that the decoder's
// loss concealment fills (about 60 ms); a longer one drains the buffer to silence.
const maxConceal = 3

// holderAudio decodes one floor holder's Opus into its jitter buffer.
type holderAudio struct {
	dec     *opus.Decoder
	buf     jitterBuffer
	pcm     [maxFrame * channels]int16
	score   int
	started bool
	lastSeq uint16
	lastN   int // samples per channel of the last packet decoded
}

func newHolderAudio() (*holderAudio, error) {
	dec, err := opus.NewDecoder(sampleRate, channels)
	if err != nil {
		return nil, fmt.Errorf("opus decoder: %w", err)
	}
	return &holderAudio{dec: dec}, nil
}

// push decodes one packet (seq in the holder track's continuous numbering)
// into the buffer, concealing a few lost packets before it. It reports whether
// the holder has failed often enough to be excluded.
func (h *holderAudio) push(seq uint16, payload []byte) (exclude bool, err error) {
	if h.started {
		d := seq - h.lastSeq
		if d == 0 || d >= 0x8000 {
			return false, nil // a duplicate, or late: its time in the mix has passed
		}
		if lost := int(d) - 1; lost > 0 && lost <= maxConceal && h.lastN > 0 {
			k := h.lastN * channels
			for range lost {
				// DecodePLC makes as many samples as the buffer's capacity.
				pcm := h.pcm[:k:k]
				if h.dec.DecodePLC(pcm) == nil {
					h.buf.write(pcm)
				}
			}
		}
	}
	h.started, h.lastSeq = true, seq
	n, err := h.dec.Decode(payload, h.pcm[:])
	if err != nil {
		h.score += errPenalty
		return h.score >= excludeScore, err
	}
	if h.score > 0 {
		h.score--
	}
	h.lastN = n
	h.buf.write(h.pcm[:n*channels])
	return false, nil
}

// mixer decodes the trainer's packets, adds the holders' PCM and encodes the sum.
type mixer struct {
	dec *opus.Decoder // the trainer's
	enc *opus.Encoder
	pcm [maxFrame * channels]int16
	acc [maxFrame * channels]int32
	out [1500]byte
}

func newMixer() (*mixer, error) {
	dec, err := opus.NewDecoder(sampleRate, channels)
	if err != nil {
		return nil, fmt.Errorf("opus decoder: %w", err)
	}
	enc, err := opus.NewEncoder(sampleRate, channels, opus.AppRestrictedLowdelay)
	if err != nil {
		return nil, fmt.Errorf("opus encoder: %w", err)
	}
	if err := enc.SetBitrate(outBitrate); err != nil {
		return nil, fmt.Errorf("opus encoder bitrate: %w", err)
	}
	if err := enc.SetComplexity(outComplexity); err != nil {
		return nil, fmt.Errorf("opus encoder complexity: %w", err)
	}
	return &mixer{dec: dec, enc: enc}, nil
}

// restart forgets the codecs' state: a new mixing period starts from the
// trainer's stream mid-way, and the previous period's state would only add a
// click.
func (m *mixer) restart() error {
	// hraban/opus has no reset for decoders: a new one (a few kB, once per
	// mixing period).
	dec, err := opus.NewDecoder(sampleRate, channels)
	if err != nil {
		return fmt.Errorf("opus decoder: %w", err)
	}
	m.dec = dec
	if err := m.enc.Reset(); err != nil {
		return fmt.Errorf("opus encoder: %w", err)
	}
	return nil
}

// mixTrainer decodes the trainer's packet, adds the same duration of each
// holder's PCM and returns the encoded mix (valid until the next call).
func (m *mixer) mixTrainer(payload []byte, holders []*holderAudio) ([]byte, error) {
	n, err := m.dec.Decode(payload, m.pcm[:])
	if err != nil {
		return nil, fmt.Errorf("decode trainer: %w", err)
	}
	acc := m.acc[:n*channels]
	for i, s := range m.pcm[:n*channels] {
		acc[i] = int32(s)
	}
	return m.finish(acc, holders)
}

// mixAlone mixes one 20 ms frame of the holders alone (the trainer is silent).
func (m *mixer) mixAlone(holders []*holderAudio) ([]byte, error) {
	acc := m.acc[:tickFrame*channels]
	clear(acc)
	return m.finish(acc, holders)
}

func (m *mixer) finish(acc []int32, holders []*holderAudio) ([]byte, error) {
	for _, h := range holders {
		h.buf.addTo(acc)
	}
	pcm := m.pcm[:len(acc)]
	for i, v := range acc {
		// Saturating sum: two loud voices clip rather than wrap around.
		pcm[i] = int16(max(-32768, min(32767, v)))
	}
	k, err := m.enc.Encode(pcm, m.out[:])
	if err != nil {
		return nil, fmt.Errorf("encode mix: %w", err)
	}
	return m.out[:k], nil
}
