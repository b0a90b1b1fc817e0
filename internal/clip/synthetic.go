package clip

// syntheticSPS and syntheticPPS are the parameter sets x264 writes for
// 640x360 constrained baseline at level 3.0 (profile-level-id 42c01e), so
// code that parses the SPS finds a real one.
var (
	syntheticSPS = []byte{
		0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44, 0x00, 0x00,
		0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x58, 0xba, 0x80,
	}
	syntheticPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// SyntheticKeyframe returns the NAL units of a fake keyframe access unit: an
// SPS and PPS (real ones, for 640x360 constrained baseline) and an IDR slice
// NAL unit of size bytes (at least 2) with a valid header and
// first_mb_in_slice 0, followed by arbitrary bytes. The slice is NOT
// decodable; use it only where NAL unit types and sizes matter. Each call
// returns fresh slices.
func SyntheticKeyframe(size int) [][]byte {
	return [][]byte{
		append([]byte(nil), syntheticSPS...),
		append([]byte(nil), syntheticPPS...),
		syntheticSlice(0x65, size), // nal_ref_idc 3, type 5 (IDR)
	}
}

// SyntheticDelta returns a fake non-IDR slice NAL unit (type 1) of size
// bytes (at least 2), with first_mb_in_slice 0 and arbitrary payload. It is
// NOT decodable.
func SyntheticDelta(size int) [][]byte {
	return [][]byte{syntheticSlice(0x41, size)} // nal_ref_idc 2, type 1
}

// syntheticSlice returns a NAL unit with header byte hdr, a slice header
// starting with first_mb_in_slice = 0, and filler that contains no zero
// byte, so it never emulates a start code.
func syntheticSlice(hdr byte, size int) []byte {
	size = max(size, 2)
	b := make([]byte, size)
	b[0] = hdr
	b[1] = 0x88 // ue(v) 0 for first_mb_in_slice, then arbitrary bits
	for i := 2; i < size; i++ {
		b[i] = byte(i%251) + 1
	}
	return b
}
