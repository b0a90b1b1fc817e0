package sfu

import (
	"errors"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// H.264 RTP packet types that are not NAL unit types (RFC 6184 §5.2): the rest of
// the codec's facts (NAL unit types, Annex-B, AVCC) come from mediacommon.
const (
	h264STAPA = 24
	h264FUA   = 28
)

// Errors returned by WalkH264.
var (
	ErrH264Payload       = errors.New("malformed H.264 RTP payload")
	ErrH264Packetization = errors.New("H.264 RTP packetization other than a single NAL unit, STAP-A or FU-A")
)

// H264NALU is one NAL unit, or one FU-A fragment of a NAL unit, carried in an H.264
// RTP payload.
type H264NALU struct {
	// Type is the NAL unit's type; for a fragment, the type of the unit it is part of.
	Type mch264.NALUType
	// Data is the NAL unit with its header byte; for a fragment, the fragment's bytes
	// after the FU indicator and FU header. It aliases the payload.
	Data []byte
	// Fragment reports an FU-A fragment; Start and End are its S and E bits. A whole
	// NAL unit has Start and End set.
	Fragment, Start, End bool
}

// WalkH264 calls fn, in order, for each NAL unit of an H.264 RTP payload in
// packetization-mode 0 or 1 (RFC 6184: a single NAL unit, the units of a STAP-A, or
// an FU-A fragment) until fn returns false. It returns ErrH264Payload when the payload
// is malformed (fn may have run for the units before the fault) and
// ErrH264Packetization for STAP-B, MTAP, FU-B and reserved types, which Lectern does
// not take. It does not allocate: it runs on the packet path.
func WalkH264(payload []byte, fn func(H264NALU) bool) error {
	if len(payload) == 0 {
		return ErrH264Payload
	}
	switch typ := payload[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		fn(H264NALU{Type: mch264.NALUType(typ), Data: payload, Start: true, End: true})
		return nil
	case typ == h264STAPA:
		rest := payload[1:]
		if len(rest) == 0 {
			return ErrH264Payload
		}
		for len(rest) > 0 {
			if len(rest) < 3 {
				return ErrH264Payload
			}
			size := int(rest[0])<<8 | int(rest[1])
			rest = rest[2:]
			if size == 0 || size > len(rest) {
				return ErrH264Payload
			}
			nalu := rest[:size]
			rest = rest[size:]
			if !fn(H264NALU{Type: mch264.NALUType(nalu[0] & 0x1f), Data: nalu, Start: true, End: true}) {
				return nil
			}
		}
		return nil
	case typ == h264FUA:
		if len(payload) < 3 {
			return ErrH264Payload
		}
		fu := payload[1]
		fn(H264NALU{
			Type: mch264.NALUType(fu & 0x1f), Data: payload[2:],
			Fragment: true, Start: fu&0x80 != 0, End: fu&0x40 != 0,
		})
		return nil
	}
	return ErrH264Packetization
}

// H264IsKeyframe reports whether an H.264 RTP payload carries an SPS or the start of
// an IDR slice, i.e. a decoder can start from the access unit it belongs to.
func H264IsKeyframe(payload []byte) bool {
	key := false
	_ = WalkH264(payload, func(n H264NALU) bool {
		key = n.Start && (n.Type == mch264.NALUTypeIDR || n.Type == mch264.NALUTypeSPS)
		return !key
	})
	return key
}

// H264ParameterSets returns the SPS and PPS an H.264 RTP payload carries whole (as a
// single NAL unit or in a STAP-A); nil for those it does not. They alias the payload.
// An SPS shorter than 4 bytes (no profile and level) is ignored.
func H264ParameterSets(payload []byte) (sps, pps []byte) {
	_ = WalkH264(payload, func(n H264NALU) bool {
		switch {
		case n.Fragment:
		case n.Type == mch264.NALUTypeSPS && len(n.Data) >= 4:
			sps = n.Data
		case n.Type == mch264.NALUTypePPS:
			pps = n.Data
		}
		return true
	})
	return sps, pps
}
