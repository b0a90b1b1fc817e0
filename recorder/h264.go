package recorder

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Limits that keep a broken or hostile stream from using unbounded memory.
const (
	maxNALUSize   = 4 << 20 // a 4 MiB slice is far beyond any lecture camera
	maxNALUsPerAU = 256
)

// H.264 RTP payload types (RFC 6184 §5.2).
const (
	rtpSTAPA = 24
	rtpFUA   = 28
)

var errBadPayload = errors.New("malformed H.264 RTP payload")

// h264Depacketizer reassembles H.264 access units from RTP packets in order
// (RFC 6184, packetization-mode 0 and 1: single NAL units, STAP-A, FU-A). An access
// unit ends at the marker bit or when the timestamp changes (the marker packet was
// lost). It starts at the first random access point, and after a loss it drops the
// damaged access unit and everything up to the next one, so a recording never holds
// undecodable frames.
type h264Depacketizer struct {
	ts      uint32
	size    int
	inFU    bool // an FU-A NAL unit is being reassembled at the end of buf
	fuStart int  // its start in buf
	damaged bool // the current access unit lost a packet
	atEdge  bool // packets were lost between access units: the next one may miss its start
	synced  bool // a random access point was seen since the start or the last loss

	// buf holds the NAL units of the access unit being collected (and of those
	// handed out by the last push, before handed): a copy, since the packets'
	// memory is recycled. It is reused, so collecting allocates nothing once it
	// has grown to the largest access unit.
	buf    []byte
	spans  []span // the NAL units of the access unit being collected, in buf
	handed int    // buf[:handed] was handed out by the last push
	lists  [][]byte
	out    []videoAU
}

// span is a NAL unit in h264Depacketizer.buf.
type span struct{ start, end int }

// videoAU is one reassembled access unit.
type videoAU struct {
	ts    uint32
	nalus [][]byte
	key   bool
}

// lost tells the depacketizer that packets were lost before the next one.
func (d *h264Depacketizer) lost() {
	if len(d.spans) == 0 && !d.inFU && !d.damaged {
		d.atEdge = true
	}
	d.damaged = true
	d.abortFU()
	d.synced = false
}

// abortFU drops the FU-A NAL unit being reassembled.
func (d *h264Depacketizer) abortFU() {
	if d.inFU {
		d.buf = d.buf[:d.fuStart]
		d.inFU = false
	}
}

// push adds one packet's payload and returns the access units it completes (at
// most two: the previous one, ended by a timestamp change, and this one). The
// access units, and their NAL units, are valid until the next call: the
// depacketizer reuses its memory.
func (d *h264Depacketizer) push(payload []byte, ts uint32, marker bool) ([]videoAU, error) {
	d.reclaim()
	out := d.out[:0]
	if len(d.spans) > 0 || d.inFU || d.damaged {
		if ts != d.ts {
			out = d.finish(out)
			d.damaged, d.atEdge = d.atEdge, false
		}
	}
	d.ts = ts
	err := d.parse(payload)
	if err != nil {
		d.lost()
	}
	if marker {
		out = d.finish(out)
	}
	d.out = out
	return out, err
}

// reclaim drops what the last push handed out, moving the access unit being
// collected to the front of buf.
func (d *h264Depacketizer) reclaim() {
	clear(d.lists)
	d.lists = d.lists[:0]
	if d.handed == 0 {
		return
	}
	n := d.handed
	d.buf = d.buf[:copy(d.buf, d.buf[n:])]
	for i := range d.spans {
		d.spans[i].start -= n
		d.spans[i].end -= n
	}
	d.fuStart -= n
	d.handed = 0
}

// finish closes the current access unit and appends it to out when it is whole and
// decodable.
func (d *h264Depacketizer) finish(out []videoAU) []videoAU {
	damaged := d.damaged || d.inFU
	d.abortFU()
	spans := d.spans
	d.spans, d.size, d.damaged = d.spans[:0], 0, false
	d.handed = len(d.buf) // nothing after the access unit is being collected
	if damaged || len(spans) == 0 {
		return out
	}
	start := len(d.lists)
	for _, sp := range spans {
		d.lists = append(d.lists, d.buf[sp.start:sp.end:sp.end])
	}
	nalus := d.lists[start:len(d.lists):len(d.lists)]
	key := h264.IsRandomAccess(nalus)
	if !d.synced && !key {
		return out
	}
	d.synced = true
	return append(out, videoAU{ts: d.ts, nalus: nalus, key: key})
}

// parse handles one RTP payload.
func (d *h264Depacketizer) parse(p []byte) error {
	if len(p) < 1 {
		return fmt.Errorf("%w: empty", errBadPayload)
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		return d.add(p)
	case typ == rtpSTAPA:
		return d.parseSTAPA(p[1:])
	case typ == rtpFUA:
		return d.parseFUA(p)
	default:
		return fmt.Errorf("%w: unsupported NAL unit type %d", errBadPayload, typ)
	}
}

func (d *h264Depacketizer) parseSTAPA(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty STAP-A", errBadPayload)
	}
	for len(b) > 0 {
		if len(b) < 2 {
			return fmt.Errorf("%w: truncated STAP-A", errBadPayload)
		}
		size := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if size == 0 || size > len(b) {
			return fmt.Errorf("%w: STAP-A unit of %d bytes in %d", errBadPayload, size, len(b))
		}
		if err := d.add(b[:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}

func (d *h264Depacketizer) parseFUA(p []byte) error {
	if len(p) < 3 {
		return fmt.Errorf("%w: FU-A of %d bytes", errBadPayload, len(p))
	}
	start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
	if start {
		if d.inFU {
			return fmt.Errorf("%w: FU-A start inside a fragmented unit", errBadPayload)
		}
		d.fuStart, d.inFU = len(d.buf), true
		d.buf = append(d.buf, p[0]&0xe0|p[1]&0x1f)
	} else if !d.inFU {
		d.damaged = true // its start was lost
		return nil
	}
	if len(d.buf)-d.fuStart+len(p)-2 > maxNALUSize {
		return fmt.Errorf("%w: NAL unit larger than %d bytes", errBadPayload, maxNALUSize)
	}
	d.buf = append(d.buf, p[2:]...)
	if end {
		d.inFU = false
		sp := span{d.fuStart, len(d.buf)}
		if err := d.fits(sp.end - sp.start); err != nil || skippedNALU(d.buf[sp.start:sp.end]) {
			d.buf = d.buf[:sp.start]
			return err
		}
		d.addSpan(sp)
	}
	return nil
}

// add appends a copy of nalu (the packet's memory is recycled).
func (d *h264Depacketizer) add(nalu []byte) error {
	if err := d.fits(len(nalu)); err != nil || skippedNALU(nalu) {
		return err
	}
	if d.inFU {
		// A NAL unit in the middle of a fragmented one (which a conforming
		// sender never sends): keep the fragment at the end of buf.
		frag := append([]byte(nil), d.buf[d.fuStart:]...)
		d.buf = d.buf[:d.fuStart]
		sp := span{len(d.buf), len(d.buf) + len(nalu)}
		d.buf = append(d.buf, nalu...)
		d.addSpan(sp)
		d.fuStart = len(d.buf)
		d.buf = append(d.buf, frag...)
		return nil
	}
	sp := span{len(d.buf), len(d.buf) + len(nalu)}
	d.buf = append(d.buf, nalu...)
	d.addSpan(sp)
	return nil
}

func (d *h264Depacketizer) addSpan(sp span) {
	d.spans = append(d.spans, sp)
	d.size += sp.end - sp.start
}

// fits checks the limits of an access unit before a NAL unit of n bytes is added.
func (d *h264Depacketizer) fits(n int) error {
	if len(d.spans) >= maxNALUsPerAU || d.size+n > maxNALUSize {
		return fmt.Errorf("%w: access unit too large", errBadPayload)
	}
	return nil
}

// skippedNALU reports NAL units not needed in MP4 samples.
func skippedNALU(nalu []byte) bool {
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		return true
	}
	return false
}
