package main

// rtpHeader is what the subscribers need from an RTP packet (RFC 3550 §5.1).
type rtpHeader struct {
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

// h264Keyframe reports whether an H.264 RTP payload (RFC 6184) starts a keyframe: a
// single SPS or IDR NAL unit, a STAP-A holding one, or the first fragment of an IDR.
func h264Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch p[0] & 0x1f {
	case 5, 7:
		return true
	case 24: // STAP-A: 16-bit sizes, each followed by a NAL unit
		for b := p[1:]; len(b) > 2; {
			size := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if size == 0 || size > len(b) {
				return false
			}
			if t := b[0] & 0x1f; t == 5 || t == 7 {
				return true
			}
			b = b[size:]
		}
	case 28: // FU-A
		return p[1]&0x80 != 0 && p[1]&0x1f == 5
	}
	return false
}
