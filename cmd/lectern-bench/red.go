package main

import "sync/atomic"

// Audio as a browser hears it (issue 10). Every browser offers audio/red (RFC 2198)
// before Opus, and the server then sends each subscriber's audio as RED: each
// packet carries the current Opus frame (the primary block) and copies of the
// previous frames (redundant blocks, sfu/peer/red.go). A lost packet whose frame
// comes again in one of the next packets costs a listener nothing; the tool hears
// it the same way: it counts the RTP packets lost (sequence gaps) and the Opus
// frames lost after RED (frames received in no block at all).

const (
	// subscriberREDPT is the payload type subscribers offer for red/48000/2, the
	// one Chromium uses (the server answers with the offer's).
	subscriberREDPT = 63
	// subscriberOpusPT is the subscribers' Opus payload type, every RED block's.
	subscriberOpusPT = 111
	// redMaxBlocks bounds the blocks of a RED payload the tool accepts: the server
	// sends three (two redundant), browsers at most a few; more is malformed.
	redMaxBlocks = 8
	// redKnownFrames is how many recent frame timestamps a frameTracker remembers:
	// a redundant block repeats a frame at most 2^14-1 ticks (341 ms at 48 kHz)
	// old, 35 frames of 10 ms.
	redKnownFrames = 64
)

// redBlock is one block of a RED payload: an Opus frame and its RTP timestamp.
type redBlock struct {
	ts      uint32
	pt      uint8
	primary bool
	data    []byte // within the parsed payload
}

// parseRED splits the RED payload of an RTP packet of timestamp ts into out (RFC
// 2198 §3): the redundant blocks in the order sent (oldest first), then the
// primary. Each redundant block's header is 4 bytes (F=1, block payload type,
// 14-bit timestamp offset back from ts, 10-bit length), the primary's 1 byte (F=0,
// payload type); the primary's data is what follows the redundant blocks'. It
// returns the blocks found, or false when the headers run past the payload, the
// blocks' lengths do not fit it, or there are more than len(out) blocks. It does
// not allocate.
func parseRED(payload []byte, ts uint32, out []redBlock) (int, bool) {
	var lengths [redMaxBlocks]int
	n, p := 0, 0
	for {
		if p >= len(payload) || n >= len(out) || n >= len(lengths) {
			return 0, false
		}
		h := payload[p]
		if h&0x80 == 0 { // the primary's header, the last one
			out[n] = redBlock{ts: ts, pt: h & 0x7f, primary: true}
			p++
			break
		}
		if p+4 > len(payload) {
			return 0, false
		}
		off := uint32(payload[p+1])<<6 | uint32(payload[p+2])>>2
		length := int(payload[p+2]&0x03)<<8 | int(payload[p+3])
		out[n] = redBlock{ts: ts - off, pt: h & 0x7f}
		lengths[n] = length
		n++
		p += 4
	}
	for i := 0; i < n; i++ {
		length := lengths[i]
		if length > len(payload)-p {
			return 0, false
		}
		out[i].data = payload[p : p+length]
		p += length
	}
	out[n].data = payload[p:]
	return n + 1, true
}

// frameTracker follows the Opus frames of one audio stream, by RTP timestamp, as
// the stream's reading goroutine receives them (plain Opus or RED). Its counters
// are read by anyone.
//
// A frame whose packet was lost is counted by the sequence counter; a redundant
// block of a frame newer than the first received and not yet received is that
// frame recovered. Frames lost after RED are the packets lost less the frames
// recovered (plus RED packets that could not be parsed: their frame is lost
// too). A packet that comes late, after its frame was recovered, takes the
// recovery back as the sequence counter takes the loss back.
type frameTracker struct {
	recovered atomic.Int64 // frames of lost packets received in a redundant block
	malformed atomic.Int64 // RED payloads that did not parse
	redPkts   atomic.Uint64

	started bool
	first   uint32 // timestamp of the first primary frame received
	known   [redKnownFrames]knownFrame
	next    int // slot overwritten next
	blocks  [redMaxBlocks]redBlock
}

type knownFrame struct {
	ts        uint32
	set       bool
	recovered bool // received in a redundant block only (so far)
}

// add records a received audio packet's payload: RED when pt is redPT (non-zero),
// else one plain frame.
func (f *frameTracker) add(pt, redPT uint8, ts uint32, payload []byte) {
	if redPT == 0 || pt != redPT {
		f.primary(ts)
		return
	}
	f.redPkts.Add(1)
	n, ok := parseRED(payload, ts, f.blocks[:])
	if !ok {
		f.malformed.Add(1)
		return
	}
	for _, b := range f.blocks[:n] {
		if b.primary {
			f.primary(b.ts)
			continue
		}
		if !f.started || int32(b.ts-f.first) <= 0 {
			continue // before the stream started for us: never counted lost
		}
		if f.find(b.ts) < 0 {
			f.remember(b.ts, true)
			f.recovered.Add(1)
		}
	}
}

// primary records a frame received as a packet's primary.
func (f *frameTracker) primary(ts uint32) {
	if !f.started {
		f.started, f.first = true, ts
	}
	i := f.find(ts)
	if i < 0 {
		f.remember(ts, false)
		return
	}
	if f.known[i].recovered { // late: its loss, and so its recovery, is taken back
		f.known[i].recovered = false
		f.recovered.Add(-1)
	}
}

func (f *frameTracker) find(ts uint32) int {
	for i := range f.known {
		if f.known[i].set && f.known[i].ts == ts {
			return i
		}
	}
	return -1
}

func (f *frameTracker) remember(ts uint32, recovered bool) {
	f.known[f.next] = knownFrame{ts: ts, set: true, recovered: recovered}
	f.next = (f.next + 1) % len(f.known)
}

// framesLost returns the frames lost after RED, given the packets the sequence
// counter counted lost.
func (f *frameTracker) framesLost(packetsLost int64) int64 {
	return max(packetsLost-f.recovered.Load()+f.malformed.Load(), 0)
}
