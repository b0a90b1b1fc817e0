package recorder

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"lectern/sfu"
)

// maxHeldPackets bounds the packets a depacketizer keeps for the access unit being
// collected: 4096 packets of up to 1200 bytes is an access unit of nearly 5 MiB,
// far beyond any lecture camera's keyframe, and about 6 MiB of packet memory.
const maxHeldPackets = 4096

var errBadPayload = errors.New("malformed H.264 RTP payload")

// h264Depacketizer turns H.264 RTP packets, in order, into access units. The
// payload format (RFC 6184: single NAL units, STAP-A, FU-A, and the quirks of
// cameras: Annex-B inside payloads, padded STAP-A, one-fragment FU-A) and the
// collection of an access unit up to its marker are gortsplib's decoder's. The
// recorder adds its policy: an access unit also ends at a new timestamp (its
// marker packet was lost, or the sender sets none), it starts at the first random
// access point, and after a loss or a malformed packet the damaged access unit
// and everything up to the next random access point are dropped, so a recording
// never holds undecodable frames.
//
// The decoder keeps slices of the payloads of the access unit it collects, and
// of the fragments of a NAL unit, and the packets' memory is pooled: a packet
// whose payload the decoder refers to stays retained until the access unit it
// belongs to has been handed out (and the caller has copied it).
type h264Depacketizer struct {
	dec rtph264.Decoder
	pkt rtp.Packet // what dec reads: the sfu packet's header and payload, not a copy

	held  []*sfu.Packet // packets dec refers to
	spent []*sfu.Packet // released at the next call: the access units out refer to them

	pending      bool // dec holds (part of) an access unit of timestamp pendingTS
	pendingTS    uint32
	pendingTicks int64
	inFU         bool // dec holds the first fragments of an FU-A NAL unit
	skipping     bool // the rest of the damaged access unit of timestamp skipTS is dropped
	skipTS       uint32
	skipNext     bool // packets were lost between access units: the next one may miss its start
	synced       bool // a random access point was seen since the start or the last loss

	out   []videoAU // the access units out, reused
	lists [][]byte  // their NAL units, reused
}

// videoAU is one reassembled access unit.
type videoAU struct {
	ts    uint32
	ticks int64 // as given with its first packet
	nalus [][]byte
	key   bool
}

// fillerNALU is a filler-data NAL unit, which ends an access unit in the decoder
// (with the marker) and is not kept.
var fillerNALU = []byte{byte(h264.NALUTypeFillerData)}

// lost tells the depacketizer that packets were lost before the next one.
func (d *h264Depacketizer) lost() {
	switch {
	case d.pending: // inside an access unit: it is damaged
		d.skipping, d.skipTS = true, d.pendingTS
	case !d.skipping: // between access units: the next one may lack its start
		d.skipNext = true
	}
	d.reset()
}

// damage drops what the decoder holds and the rest of the access unit of ts.
func (d *h264Depacketizer) damage(ts uint32) {
	d.reset()
	d.skipping, d.skipTS = true, ts
}

// reset drops what the decoder holds, and waits for a random access point.
func (d *h264Depacketizer) reset() {
	d.dec = rtph264.Decoder{} // its zero value decodes packetization modes 0 and 1
	d.pending, d.inFU, d.synced = false, false, false
	d.spendHeld()
}

// release gives back every packet the depacketizer retains (at the end of the track).
func (d *h264Depacketizer) release() {
	d.reset()
	d.spent = releasePackets(d.spent)
}

// hold retains p, whose payload the decoder or an access unit out refers to.
func (d *h264Depacketizer) hold(p *sfu.Packet) {
	p.Retain()
	d.held = append(d.held, p)
}

// spendHeld has the held packets released at the next call.
func (d *h264Depacketizer) spendHeld() {
	d.spent = append(d.spent, d.held...)
	clear(d.held)
	d.held = d.held[:0]
}

// releasePackets releases ps and returns it emptied.
func releasePackets(ps []*sfu.Packet) []*sfu.Packet {
	for _, p := range ps {
		p.Release()
	}
	clear(ps)
	return ps[:0]
}

// push adds one packet, at ticks on the recording's clock, and returns the access
// units it completes: the one before it, ended by its new timestamp, and the one
// it ends with its marker. They are valid until the next call.
func (d *h264Depacketizer) push(p *sfu.Packet, ticks int64) ([]videoAU, error) {
	d.spent = releasePackets(d.spent)
	clear(d.out)
	clear(d.lists)
	d.out, d.lists = d.out[:0], d.lists[:0]
	ts := p.Header.Timestamp
	var errEnd error
	if d.pending && ts != d.pendingTS {
		errEnd = d.endPending(p.Header)
	}
	if d.skipNext {
		d.skipping, d.skipTS, d.skipNext = true, ts, false
	}
	if d.skipping {
		if ts == d.skipTS {
			return d.out, errEnd
		}
		d.skipping = false
	}
	return d.out, errors.Join(errEnd, d.decode(p, ticks))
}

// endPending hands out the access unit being collected, which ended without its
// marker: a filler-data NAL unit with the marker has the decoder close it.
func (d *h264Depacketizer) endPending(next rtp.Header) error {
	ts, ticks := d.pendingTS, d.pendingTicks
	if d.inFU {
		d.reset()
		return fmt.Errorf("%w: access unit at %d ended inside a fragmented NAL unit", errBadPayload, ts)
	}
	d.pkt.Header, d.pkt.Payload = next, fillerNALU
	d.pkt.Timestamp, d.pkt.Marker = ts, true
	nalus, err := d.dec.Decode(&d.pkt)
	d.pkt = rtp.Packet{}
	d.pending = false
	d.spendHeld()
	if err != nil {
		d.reset()
		return fmt.Errorf("%w: %w", errBadPayload, err)
	}
	d.accept(nalus, ts, ticks)
	return nil
}

// decode hands p to the decoder.
func (d *h264Depacketizer) decode(p *sfu.Packet, ticks int64) error {
	ts := p.Header.Timestamp
	if err := d.trackFragments(p.Payload); err != nil {
		d.damage(ts)
		return err
	}
	d.pkt.Header, d.pkt.Payload = p.Header, p.Payload
	nalus, err := d.dec.Decode(&d.pkt)
	d.pkt = rtp.Packet{}
	switch {
	case errors.Is(err, rtph264.ErrMorePacketsNeeded):
		d.hold(p)
		if !d.pending {
			d.pending, d.pendingTS, d.pendingTicks = true, ts, ticks
		}
		if len(d.held) > maxHeldPackets {
			d.damage(ts)
			return fmt.Errorf("%w: access unit of more than %d packets", errBadPayload, maxHeldPackets)
		}
		return nil
	case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		// Joined (or, after a loss, resumed) inside a fragmented NAL unit.
		d.damage(ts)
		return nil
	case err != nil:
		d.damage(ts)
		return fmt.Errorf("%w: %w", errBadPayload, err)
	}
	if d.pending {
		ticks = d.pendingTicks
	}
	d.pending = false
	d.hold(p) // the access unit out may refer to it
	d.spendHeld()
	d.accept(nalus, ts, ticks)
	return nil
}

// trackFragments follows the FU-A NAL unit being reassembled, and refuses a
// packet that would make the decoder drop it silently (the access unit would
// miss a NAL unit): a new start, or another packet, before its end.
func (d *h264Depacketizer) trackFragments(payload []byte) error {
	var first sfu.H264NALU
	err := sfu.WalkH264(payload, func(n sfu.H264NALU) bool { first = n; return false })
	if err != nil && len(payload) > 0 && h264.NALUType(payload[0]&0x1f) == h264.NALUTypeFUA {
		return fmt.Errorf("%w: %w", errBadPayload, err) // else a malformed payload is the decoder's to refuse
	}
	if d.inFU && (!first.Fragment || first.Start) {
		return fmt.Errorf("%w: fragmented NAL unit left incomplete", errBadPayload)
	}
	if first.Fragment {
		d.inFU = (first.Start || d.inFU) && !first.End
	}
	return nil
}

// accept adds the access unit of nalus to d.out, without the NAL units an MP4
// sample does not carry, unless it is to be dropped (no random access point yet).
func (d *h264Depacketizer) accept(nalus [][]byte, ts uint32, ticks int64) {
	key := h264.IsRandomAccess(nalus)
	if !key && !d.synced {
		return
	}
	start := len(d.lists)
	for _, n := range nalus {
		if !skippedNALU(n) {
			d.lists = append(d.lists, n)
		}
	}
	if len(d.lists) == start {
		return
	}
	d.synced = true
	d.out = append(d.out, videoAU{ts: ts, ticks: ticks, nalus: d.lists[start:len(d.lists):len(d.lists)], key: key})
}

// skippedNALU reports NAL units not kept in MP4 samples: access unit delimiters,
// filler data, and the types H.264 leaves unspecified (RTP uses 24–29 for its
// aggregation and fragmentation units, which never reach a sample).
func skippedNALU(nalu []byte) bool {
	if len(nalu) == 0 {
		return true
	}
	switch typ := h264.NALUType(nalu[0] & 0x1f); {
	case typ == h264.NALUTypeAccessUnitDelimiter, typ == h264.NALUTypeFillerData:
		return true
	case typ == 0, typ >= 24:
		return true
	}
	return false
}
