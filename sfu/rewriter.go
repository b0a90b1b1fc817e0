package sfu

import "time"

// Rewriter maps the sequence numbers and timestamps of successive sources onto one
// continuous output stream. A track uses one so that a trainer who reconnects (a new
// SSRC, a random new sequence and timestamp base) continues the stream classrooms
// already decode; a consumer uses one so that the gaps it dropped, or a switch to
// another track, do not look like loss to its receiver.
//
// The zero value passes the first source through unchanged. It is not safe for
// concurrent use.
type Rewriter struct {
	started   bool
	newSource bool
	seqOnly   bool

	seqOffset uint16
	tsOffset  uint32
	// validFrom is the first output sequence number of the current mapping: output
	// numbers before it were produced by an earlier mapping and cannot be inverted.
	validFrom uint16
	remapped  bool

	lastSeq   uint16
	lastTS    uint32
	lastNanos int64
}

// Resync makes the next packet continue the output stream as a new source: its
// sequence number follows the last one written and its timestamp advances by the
// wall-clock time elapsed since then.
func (r *Rewriter) Resync() { r.newSource, r.seqOnly = true, false }

// ResyncSeq makes the next packet follow the last sequence number written while
// keeping the timestamp mapping: used after dropping packets of the same source,
// whose timestamps are still on the right timeline.
func (r *Rewriter) ResyncSeq() {
	if !r.newSource {
		r.newSource, r.seqOnly = true, true
	}
}

// Rewrite maps one packet's sequence number and timestamp. clockRate is the codec's
// RTP clock, now the arrival time from [Nanotime].
func (r *Rewriter) Rewrite(seq uint16, ts uint32, clockRate uint32, now int64) (uint16, uint32) {
	switch {
	case !r.started:
		r.started = true
		r.lastSeq, r.lastTS, r.lastNanos = seq-1, ts, now
	case r.newSource:
		want := r.lastSeq + 1
		r.seqOffset = want - seq
		r.validFrom, r.remapped = want, true
		if !r.seqOnly {
			ticks := uint32(1)
			if elapsed := now - r.lastNanos; elapsed > 0 {
				if t := uint64(elapsed) * uint64(clockRate) / uint64(time.Second); t > 1 {
					ticks = uint32(t)
				}
			}
			r.tsOffset = r.lastTS + ticks - ts
		}
	}
	r.newSource = false
	outSeq, outTS := seq+r.seqOffset, ts+r.tsOffset
	if seqNewer(outSeq, r.lastSeq) {
		r.lastSeq, r.lastTS, r.lastNanos = outSeq, outTS, now
	}
	return outSeq, outTS
}

// Invert maps an output sequence number (e.g. from a NACK) back to the input one. It
// fails for numbers produced before the current mapping.
func (r *Rewriter) Invert(out uint16) (uint16, bool) {
	if !r.started || r.remapped && seqNewer(r.validFrom, out) {
		return 0, false
	}
	return out - r.seqOffset, true
}

// seqNewer reports whether a is after b in RTP sequence number order (RFC 3550 §A.1).
func seqNewer(a, b uint16) bool { return a != b && a-b < 0x8000 }
