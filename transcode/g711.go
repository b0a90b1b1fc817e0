package transcode

// G.711 (ITU-T G.711) expansion to 16-bit linear PCM, by table: 256 entries per
// law, computed once from the standard formulas.
var ulawTable, alawTable [256]int16

func init() {
	for i := range 256 {
		ulawTable[i] = ulawDecode(byte(i))
		alawTable[i] = alawDecode(byte(i))
	}
}

// ulawDecode expands one μ-law byte: the byte is stored inverted; 4 mantissa bits,
// 3 exponent bits and a sign, with a bias of 0x84 (132) taken out again.
func ulawDecode(b byte) int16 {
	u := ^b
	t := (int(u&0x0F) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// alawDecode expands one A-law byte: even bits are inverted (XOR 0x55); segment 0
// is linear, each higher segment doubles the step. A set sign bit means positive.
func alawDecode(b byte) int16 {
	a := b ^ 0x55
	t := int(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// expandG711 decodes payload into dst (which must be as long) with table.
func expandG711(table *[256]int16, payload []byte, dst []int16) {
	for i, b := range payload {
		dst[i] = table[b]
	}
}
