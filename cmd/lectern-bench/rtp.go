package main

// rtpHeader is what the subscribers need from an RTP packet (RFC 3550 §5.1).
type rtpHeader struct {
	pt      uint8
	seq     uint16
	ts      uint32
	payload []byte
}

// parseRTP reads the fixed header, skips CSRCs and the header extension, and strips
// padding, without allocating.
func parseRTP(b []byte) (rtpHeader, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpHeader{}, false
	}
	h := rtpHeader{
		pt:  b[1] & 0x7f,
		seq: uint16(b[2])<<8 | uint16(b[3]),
		ts:  uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]),
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension: 16-bit profile, 16-bit length in words
		if len(b) < off+4 {
			return rtpHeader{}, false
		}
		off += 4 + 4*(int(b[off+2])<<8|int(b[off+3]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: the last byte counts it
		end -= int(b[end-1])
	}
	if off > end {
		return rtpHeader{}, false
	}
	h.payload = b[off:end]
	return h, true
}
