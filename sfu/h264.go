package sfu

// H.264 NAL unit types used to find keyframes (RFC 6184 §5.2).
const (
	nalIDR  = 5
	nalSPS  = 7
	nalSTAP = 24
	nalFUA  = 28
)

// h264HasKeyframe reports whether an RTP payload (RFC 6184, packetization-mode 1)
// carries an SPS or the start of an IDR slice, i.e. a decoder can start from the
// access unit this packet belongs to.
func h264HasKeyframe(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	switch payload[0] & 0x1f {
	case nalIDR, nalSPS:
		return true
	case nalSTAP:
		for b := payload[1:]; len(b) > 2; {
			size := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if size == 0 || size > len(b) {
				return false
			}
			if t := b[0] & 0x1f; t == nalIDR || t == nalSPS {
				return true
			}
			b = b[size:]
		}
	case nalFUA:
		return len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == nalIDR
	}
	return false
}
