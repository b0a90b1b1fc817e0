package clip

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// RTP payload structures for H.264 (RFC 6184 §5.7.1, §5.8).
const (
	stapAType    = 24
	fuAType      = 28
	stapAHdrLen  = 1
	stapALenSize = 2
	fuAHdrLen    = 2
	fuStart      = 0x80
	fuEnd        = 0x40
	minMTU       = fuAHdrLen + 1
)

// Packetize returns the RTP packets of one access unit in RFC 6184
// non-interleaved mode: runs of SPS, PPS and SEI that fit are aggregated into
// a STAP-A, other NAL units go in single NAL unit packets or, when larger
// than mtu, in FU-A fragments of nearly equal size. AUD and filler NAL units
// are dropped. No payload exceeds mtu (values below 3 are raised to 3).
//
// Only Version, Marker (set on the last packet) and Payload are filled in;
// the caller sets payload type, sequence number, timestamp and SSRC. The
// payloads are freshly allocated.
func (au AccessUnit) Packetize(mtu int) []rtp.Packet {
	mtu = max(mtu, minMTU)
	var payloads [][]byte
	var agg [][]byte // parameter sets and SEI waiting to be aggregated
	flushAgg := func() {
		payloads = appendAggregate(payloads, agg)
		agg = agg[:0]
	}
	for _, n := range au.NALUs {
		switch naluType(n) {
		case 0, h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeSEI:
			if stapASize(agg)+stapALenSize+len(n) > mtu {
				flushAgg()
			}
			if len(n) <= mtu-stapAHdrLen-stapALenSize {
				agg = append(agg, n)
				continue
			}
		}
		flushAgg()
		payloads = appendNALU(payloads, n, mtu)
	}
	flushAgg()

	pkts := make([]rtp.Packet, len(payloads))
	for i, p := range payloads {
		pkts[i] = rtp.Packet{Header: rtp.Header{Version: 2}, Payload: p}
	}
	if len(pkts) > 0 {
		pkts[len(pkts)-1].Marker = true
	}
	return pkts
}

// stapASize returns the payload size of a STAP-A holding nalus.
func stapASize(nalus [][]byte) int {
	n := stapAHdrLen
	for _, nalu := range nalus {
		n += stapALenSize + len(nalu)
	}
	return n
}

// appendAggregate appends nalus as one STAP-A (RFC 6184 §5.7.1), or as a
// single NAL unit packet when there is only one.
func appendAggregate(payloads, nalus [][]byte) [][]byte {
	switch len(nalus) {
	case 0:
		return payloads
	case 1:
		return append(payloads, append([]byte(nil), nalus[0]...))
	}
	p := make([]byte, 1, stapASize(nalus))
	for _, n := range nalus {
		// F is the OR of the F bits, NRI the maximum NRI (§5.7.1).
		p[0] = max(p[0]&0x60, n[0]&0x60) | (p[0]|n[0])&0x80
		p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
		p = append(p, n...)
	}
	p[0] |= stapAType
	return append(payloads, p)
}

// appendNALU appends nalu as a single NAL unit packet, or as FU-A fragments
// (RFC 6184 §5.8) when it does not fit in mtu.
func appendNALU(payloads [][]byte, nalu []byte, mtu int) [][]byte {
	if len(nalu) <= mtu {
		return append(payloads, append([]byte(nil), nalu...))
	}
	body := nalu[1:]
	room := mtu - fuAHdrLen
	count := (len(body) + room - 1) / room
	size := (len(body) + count - 1) / count
	for i := 0; len(body) > 0; i++ {
		n := min(size, len(body))
		p := make([]byte, fuAHdrLen, fuAHdrLen+n)
		p[0] = nalu[0]&0xe0 | fuAType
		p[1] = nalu[0] & 0x1f
		if i == 0 {
			p[1] |= fuStart
		}
		if n == len(body) {
			p[1] |= fuEnd
		}
		payloads = append(payloads, append(p, body[:n]...))
		body = body[n:]
	}
	return payloads
}
