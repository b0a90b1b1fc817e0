// Package clip provides a real H.264 + Opus media source for tests and for
// the load tool.
//
// Generate asks ffmpeg for a short synthetic lecture (a moving test pattern
// and a sine tone) encoded the way a WebRTC publisher would send it, Load
// parses the resulting Annex-B and Ogg files into access units and Opus
// frames, and Play (or a Player) sends them as paced RTP packets
// (RFC 6184 for H.264, RFC 7587 for Opus).
//
// SyntheticKeyframe and SyntheticDelta build tiny, non-decodable NAL units
// for unit tests that only need well-formed headers.
package clip

import (
	"errors"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ErrFFmpegNotFound is returned by Generate when the ffmpeg binary is not in PATH.
var ErrFFmpegNotFound = errors.New("clip: ffmpeg not found in PATH (install it: apt-get install ffmpeg)")

// ErrEmptyClip is returned when a clip has neither video nor audio to play.
var ErrEmptyClip = errors.New("clip: no media")

// Clip is a parsed media clip: H.264 access units at a constant frame rate
// and Opus frames. A Clip is not modified by Play and may be played by
// several goroutines at once.
type Clip struct {
	// Video holds the access units in decoding order (there are no B-frames,
	// so decoding order is presentation order).
	Video []AccessUnit
	// Audio holds the Opus packets in order.
	Audio []OpusFrame
	// FPS is the video frame rate.
	FPS int
	// Duration is the playing time of one pass: the video length
	// (len(Video) frames) when there is video, else the audio length.
	Duration time.Duration
}

// AccessUnit is one coded picture with the parameter sets and SEI that
// precede it, as NAL units without start codes.
type AccessUnit struct {
	NALUs [][]byte
	// PTS is the presentation time from the start of the clip.
	PTS time.Duration
	// Keyframe reports whether the access unit contains an IDR slice (type 5).
	Keyframe bool
}

// OpusFrame is one Opus packet (RFC 6716), which may hold several frames.
type OpusFrame struct {
	Data []byte
	// PTS is the presentation time from the start of the clip.
	PTS time.Duration
	// Duration is the audio length of the packet, taken from its TOC byte.
	Duration time.Duration
}

// naluType returns the type of a NAL unit from its header byte.
func naluType(nalu []byte) h264.NALUType {
	if len(nalu) == 0 {
		return 0
	}
	return h264.NALUType(nalu[0] & 0x1f)
}
