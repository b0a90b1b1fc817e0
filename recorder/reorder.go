package recorder

import "lectern/sfu"

// reorderSize is how many out-of-order packets a reorderer holds (a power of two).
// At 2.5 Mbit/s (about 250 packets/s) it covers half a second of reordering, which
// is also about the time a NACKed retransmission takes to arrive.
const reorderSize = 128

// reorderer releases RTP packets in sequence-number order (RFC 3550 §A.1 ordering),
// waiting for a missing packet until reorderSize later packets have arrived or the
// oldest held packet is older than maxWait. It is used by one goroutine.
//
// Packets it holds are retained; the ones it returns are handed over (the caller
// releases them).
type reorderer struct {
	maxWait  int64 // nanoseconds
	started  bool
	expected uint16
	held     int
	buf      [reorderSize]*sfu.Packet
	out      []*sfu.Packet
}

// push adds p (taking over the caller's reference) and returns the packets that
// are now in order, and how many sequence numbers were given up as lost before
// them. The returned slice is valid until the next call.
func (r *reorderer) push(p *sfu.Packet) (ready []*sfu.Packet, lost int) {
	r.out = r.out[:0]
	seq := p.Header.SequenceNumber
	if !r.started {
		r.started, r.expected = true, seq
	}
	diff := int16(seq - r.expected)
	switch {
	case diff < 0: // duplicate or too late
		p.Release()
		return r.out, 0
	case int(diff) >= reorderSize: // far ahead: give up everything missing
		lost = r.flush()
		lost += int(uint16(seq - r.expected))
		r.expected = seq
	}
	slot := &r.buf[seq%reorderSize]
	if *slot != nil { // duplicate of a held packet
		p.Release()
		return r.out, lost
	}
	*slot = p
	r.held++
	r.release()
	if r.held > 0 && p.ArrivalNanos-r.oldestArrival() > r.maxWait {
		lost += r.skipToHeld()
		r.release()
	}
	return r.out, lost
}

// release moves the in-order run starting at expected to out.
func (r *reorderer) release() {
	for {
		slot := &r.buf[r.expected%reorderSize]
		if *slot == nil {
			return
		}
		r.out = append(r.out, *slot)
		*slot = nil
		r.held--
		r.expected++
	}
}

// skipToHeld gives up the missing packets before the first held one.
func (r *reorderer) skipToHeld() int {
	for n := 1; n < reorderSize; n++ {
		if r.buf[(r.expected+uint16(n))%reorderSize] != nil {
			r.expected += uint16(n)
			return n
		}
	}
	return 0
}

// oldestArrival returns the earliest arrival time among held packets.
func (r *reorderer) oldestArrival() int64 {
	oldest := int64(1<<63 - 1)
	for _, p := range r.buf {
		if p != nil && p.ArrivalNanos < oldest {
			oldest = p.ArrivalNanos
		}
	}
	return oldest
}

// flush moves every held packet to out in order, and returns how many sequence
// numbers were missing between them.
func (r *reorderer) flush() (lost int) {
	for r.held > 0 {
		lost += r.skipToHeld()
		r.release()
	}
	return lost
}

// drain returns the held packets in order (at the end of the track), with the
// number of missing sequence numbers between them.
func (r *reorderer) drain() ([]*sfu.Packet, int) {
	r.out = r.out[:0]
	lost := r.flush()
	return r.out, lost
}
