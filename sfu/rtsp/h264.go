package rtsp

import (
	"bytes"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// H.264 NAL unit types (RFC 6184 §5.2, ITU-T H.264 Table 7-1).
const (
	naluIDR   = 5
	naluSPS   = 7
	naluPPS   = 8
	naluSTAPA = 24
	naluFUA   = 28
)

// maxVideoPayload is the largest H.264 RTP payload the edge writes to a track:
// WebRTC paths carry at most about 1200 bytes of payload, so what RTSP peers send in
// larger packets (up to their 1460-byte MTU, or 64 KiB over TCP) is re-fragmented.
const maxVideoPayload = 1200

// h264Bridge turns the H.264 RTP stream of an RTSP peer (RFC 6184, packetization
// mode 0 or 1) into what every Lectern consumer can take: payloads of at most
// maxPayload bytes (single NAL units or FU-A fragments, STAP-A when small), and SPS
// and PPS in-band before every IDR picture that lacks them, taken from the peer's
// SDP or from the last ones it sent in-band. Sequence numbers are renumbered (the
// output has more packets than the input) while keeping the input's gaps, so loss
// stays visible downstream.
//
// It is used by one goroutine (the peer's read loop) and does not allocate per
// packet once the parameter sets are known.
type h264Bridge struct {
	maxPayload int
	sps, pps   []byte
	emit       func(*rtp.Packet) error

	started      bool
	lastIn       uint16
	outSeq       uint16
	auTS         uint32
	auSPS, auPPS bool // parameter sets already sent in the current access unit

	out rtp.Packet
	buf []byte

	inserted uint64 // parameter sets inserted, for tests and logs
	dropped  uint64 // packets that were not H.264 mode 0/1, duplicates or late
}

func newH264Bridge(sps, pps []byte, emit func(*rtp.Packet) error) *h264Bridge {
	return &h264Bridge{maxPayload: maxVideoPayload, sps: sps, pps: pps, emit: emit, buf: make([]byte, 0, 1500)}
}

// write takes one packet from the peer; in is not retained.
func (b *h264Bridge) write(in *rtp.Packet) error {
	p := in.Payload
	if len(p) == 0 {
		return nil
	}
	if b.started {
		d := in.SequenceNumber - b.lastIn
		if d == 0 || d >= 0x8000 { // a duplicate, or late: its place has passed
			b.dropped++
			return nil
		}
		b.outSeq += d - 1
	} else {
		b.outSeq = in.SequenceNumber - 1
	}
	if !b.started || in.Timestamp != b.auTS {
		b.auTS, b.auSPS, b.auPPS = in.Timestamp, false, false
	}
	b.started, b.lastIn = true, in.SequenceNumber
	b.out.Header = rtp.Header{Version: 2, PayloadType: in.PayloadType, Timestamp: in.Timestamp, SSRC: in.SSRC}

	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		b.noteParam(p)
		if typ == naluIDR {
			if err := b.insertParams(); err != nil {
				return err
			}
		}
		return b.writeNALU(p, in.Marker)
	case typ == naluSTAPA:
		return b.writeSTAP(p, in.Marker)
	case typ == naluFUA:
		return b.writeFUA(p, in.Marker)
	}
	b.dropped++ // STAP-B, MTAP, FU-B (mode 2) and reserved types
	return nil
}

// noteParam records an SPS or PPS sent in-band.
func (b *h264Bridge) noteParam(nalu []byte) {
	switch nalu[0] & 0x1f {
	case naluSPS:
		if !bytes.Equal(b.sps, nalu) && len(nalu) >= 4 {
			b.sps = bytes.Clone(nalu)
		}
		b.auSPS = true
	case naluPPS:
		if !bytes.Equal(b.pps, nalu) {
			b.pps = bytes.Clone(nalu)
		}
		b.auPPS = true
	}
}

// insertParams sends the known SPS and PPS as one STAP-A before an IDR picture, unless
// this access unit carried them already.
func (b *h264Bridge) insertParams() error {
	if b.auSPS && b.auPPS || b.sps == nil || b.pps == nil {
		return nil
	}
	b.auSPS, b.auPPS = true, true
	b.inserted++
	if 1+2+len(b.sps)+2+len(b.pps) > b.maxPayload {
		if err := b.writeNALU(b.sps, false); err != nil {
			return err
		}
		return b.writeNALU(b.pps, false)
	}
	buf := append(b.buf[:0], b.sps[0]&0x60|naluSTAPA)
	buf = append(buf, byte(len(b.sps)>>8), byte(len(b.sps)))
	buf = append(buf, b.sps...)
	buf = append(buf, byte(len(b.pps)>>8), byte(len(b.pps)))
	buf = append(buf, b.pps...)
	b.buf = buf
	return b.send(buf, false)
}

// writeSTAP forwards a STAP-A, split into its NAL units when too large.
func (b *h264Bridge) writeSTAP(p []byte, marker bool) error {
	needParams, n := false, 0
	if err := sfu.WalkH264(p, func(u sfu.H264NALU) bool {
		n++
		if u.Data[0]&0x1f == naluIDR && !(b.auSPS && b.auPPS) {
			needParams = true
		}
		b.noteParam(u.Data)
		return true
	}); err != nil {
		b.dropped++
		return nil
	}
	if needParams {
		if err := b.insertParams(); err != nil {
			return err
		}
	}
	if len(p) <= b.maxPayload {
		return b.send(p, marker)
	}
	var i int
	var err error
	_ = sfu.WalkH264(p, func(u sfu.H264NALU) bool {
		i++
		err = b.writeNALU(u.Data, marker && i == n)
		return err == nil
	})
	return err
}

// writeFUA forwards an FU-A fragment, cut into smaller fragments when too large.
func (b *h264Bridge) writeFUA(p []byte, marker bool) error {
	if len(p) < 3 {
		b.dropped++
		return nil
	}
	start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
	if start && p[1]&0x1f == naluIDR {
		if err := b.insertParams(); err != nil {
			return err
		}
	}
	if len(p) <= b.maxPayload {
		return b.send(p, marker)
	}
	return b.fragment(p[0], p[1]&0x1f, p[2:], start, end, marker)
}

// writeNALU sends one NAL unit, as an FU-A series when it does not fit.
func (b *h264Bridge) writeNALU(nalu []byte, marker bool) error {
	if len(nalu) <= b.maxPayload {
		return b.send(nalu, marker)
	}
	return b.fragment(nalu[0]&0xe0|naluFUA, nalu[0]&0x1f, nalu[1:], true, true, marker)
}

// fragment sends data (a NAL unit without its header byte, or part of one) as FU-A
// packets (RFC 6184 §5.8). start and end say whether data begins and ends the NAL
// unit; only then do the first and last fragments carry the S and E bits.
func (b *h264Bridge) fragment(indicator, typ byte, data []byte, start, end, marker bool) error {
	chunk := b.maxPayload - 2
	for off := 0; off < len(data); off += chunk {
		last := off+chunk >= len(data)
		h := typ
		if off == 0 && start {
			h |= 0x80
		}
		if last && end {
			h |= 0x40
		}
		stop := min(off+chunk, len(data))
		buf := append(b.buf[:0], indicator&0xe0|naluFUA, h)
		buf = append(buf, data[off:stop]...)
		b.buf = buf
		if err := b.send(buf, marker && last); err != nil {
			return err
		}
	}
	return nil
}

func (b *h264Bridge) send(payload []byte, marker bool) error {
	b.outSeq++
	b.out.SequenceNumber = b.outSeq
	b.out.Marker = marker
	b.out.Payload = payload
	return b.emit(&b.out)
}
