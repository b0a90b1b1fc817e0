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
	ts       uint32
	nalus    [][]byte
	size     int
	fragment []byte // FU-A NAL unit being reassembled
	inFU     bool
	damaged  bool // the current access unit lost a packet
	atEdge   bool // packets were lost between access units: the next one may miss its start
	synced   bool // a random access point was seen since the start or the last loss
}

// videoAU is one reassembled access unit.
type videoAU struct {
	ts    uint32
	nalus [][]byte
	key   bool
}

// lost tells the depacketizer that packets were lost before the next one.
func (d *h264Depacketizer) lost() {
	if len(d.nalus) == 0 && !d.inFU && !d.damaged {
		d.atEdge = true
	}
	d.damaged = true
	d.fragment, d.inFU = nil, false
	d.synced = false
}

// push adds one packet's payload and returns the access units it completes (at
// most two: the previous one, ended by a timestamp change, and this one).
func (d *h264Depacketizer) push(payload []byte, ts uint32, marker bool) ([]videoAU, error) {
	var out []videoAU
	if len(d.nalus) > 0 || d.inFU || d.damaged {
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
	return out, err
}

// finish closes the current access unit and appends it to out when it is whole and
// decodable.
func (d *h264Depacketizer) finish(out []videoAU) []videoAU {
	nalus, damaged := d.nalus, d.damaged || d.inFU
	d.nalus, d.size, d.fragment, d.inFU, d.damaged = nil, 0, nil, false, false
	if damaged || len(nalus) == 0 {
		return out
	}
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
		d.fragment = append(make([]byte, 0, 4*len(p)), p[0]&0xe0|p[1]&0x1f)
		d.inFU = true
	} else if !d.inFU {
		d.damaged = true // its start was lost
		return nil
	}
	if len(d.fragment)+len(p)-2 > maxNALUSize {
		return fmt.Errorf("%w: NAL unit larger than %d bytes", errBadPayload, maxNALUSize)
	}
	d.fragment = append(d.fragment, p[2:]...)
	if end {
		d.inFU = false
		nalu := d.fragment
		d.fragment = nil
		return d.addOwned(nalu)
	}
	return nil
}

// add appends a copy of nalu (the packet's memory is recycled).
func (d *h264Depacketizer) add(nalu []byte) error {
	return d.addOwned(append([]byte(nil), nalu...))
}

func (d *h264Depacketizer) addOwned(nalu []byte) error {
	if len(d.nalus) >= maxNALUsPerAU || d.size+len(nalu) > maxNALUSize {
		return fmt.Errorf("%w: access unit too large", errBadPayload)
	}
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		return nil // not needed in MP4 samples
	}
	d.nalus = append(d.nalus, nalu)
	d.size += len(nalu)
	return nil
}
