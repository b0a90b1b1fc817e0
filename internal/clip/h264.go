package clip

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// annexBNALUs splits an Annex-B byte stream (ITU-T H.264 Annex B) into NAL units
// without start codes, with mediacommon's parser. The returned slices alias buf.
// That parser reads one access unit of at most h264.MaxAccessUnitSize bytes, so a
// longer clip is handed to it in pieces cut at start codes.
func annexBNALUs(buf []byte) ([][]byte, error) {
	var nalus [][]byte
	for len(buf) > 0 {
		piece := buf
		if len(piece) > h264.MaxAccessUnitSize {
			cut := bytes.LastIndex(buf[:h264.MaxAccessUnitSize], []byte{0, 0, 1})
			if cut <= 0 {
				return nil, fmt.Errorf("clip: H.264 stream has no start code in %d bytes", h264.MaxAccessUnitSize)
			}
			piece = buf[:cut]
		}
		var au h264.AnnexB
		if err := au.Unmarshal(piece); err != nil {
			return nil, fmt.Errorf("clip: H.264 Annex-B stream: %w", err)
		}
		for _, n := range au {
			// A NAL unit never ends in a zero byte (§7.4.1): zeros at the end are the
			// next 4-byte start code's, where a piece was cut, or trailing_zero_8bits.
			if n = bytes.TrimRight(n, "\x00"); len(n) > 0 {
				nalus = append(nalus, n)
			}
		}
		buf = buf[len(piece):]
	}
	return nalus, nil
}

// isVCL reports whether t is a coded slice of a primary picture.
func isVCL(t h264.NALUType) bool {
	return t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR
}

// startsNewAU reports whether nalu begins a new access unit when the current
// access unit already holds a slice (ITU-T H.264 §7.4.1.2.3): an AUD, SEI,
// SPS, PPS or types 14–18, or a slice with first_mb_in_slice == 0.
func startsNewAU(nalu []byte) bool {
	t := naluType(nalu)
	switch {
	case t == h264.NALUTypeAccessUnitDelimiter, t == h264.NALUTypeSEI,
		t == h264.NALUTypeSPS, t == h264.NALUTypePPS:
		return true
	case t >= h264.NALUTypePrefix && t <= h264.NALUTypeReserved18:
		return true
	case isVCL(t):
		// first_mb_in_slice is ue(v); its value is 0 exactly when the first
		// bit after the NAL header is 1.
		return len(nalu) > 1 && nalu[1]&0x80 != 0
	}
	return false
}

// groupAccessUnits groups NAL units in decoding order into access units and
// stamps them with PTS i/fps. NAL units before the first slice are kept with
// the first picture.
func groupAccessUnits(nalus [][]byte, fps int) []AccessUnit {
	var aus []AccessUnit
	var cur [][]byte
	haveSlice := false
	flush := func() {
		if !haveSlice {
			return
		}
		i := len(aus)
		aus = append(aus, AccessUnit{
			NALUs:    cur,
			PTS:      time.Duration(i) * time.Second / time.Duration(fps),
			Keyframe: h264.IsRandomAccess(cur),
		})
		cur, haveSlice = nil, false
	}
	for _, n := range nalus {
		if haveSlice && startsNewAU(n) {
			flush()
		}
		cur = append(cur, n)
		if isVCL(naluType(n)) {
			haveSlice = true
		}
	}
	flush()
	return aus
}

// parseH264 parses an Annex-B stream into access units at fps frames per second.
func parseH264(buf []byte, fps int) ([]AccessUnit, error) {
	nalus, err := annexBNALUs(buf)
	if err != nil {
		return nil, err
	}
	aus := groupAccessUnits(nalus, fps)
	if len(aus) == 0 {
		return nil, fmt.Errorf("clip: H.264 stream holds %d NAL units but no slice", len(nalus))
	}
	return aus, nil
}
