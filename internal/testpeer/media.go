package testpeer

import (
	"context"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
)

// SyntheticClip returns a clip of valid-looking but undecodable H.264 (a keyframe
// every gop frames, frames of frameSize bytes) and silent Opus, for tests that check
// forwarding rather than decoding; it needs no ffmpeg.
func SyntheticClip(d time.Duration, fps, gop, frameSize int) *clip.Clip {
	c := &clip.Clip{FPS: fps, Duration: d}
	frames := int(d * time.Duration(fps) / time.Second)
	for i := 0; i < frames; i++ {
		au := clip.AccessUnit{PTS: time.Duration(i) * time.Second / time.Duration(fps)}
		if i%gop == 0 {
			au.NALUs, au.Keyframe = clip.SyntheticKeyframe(frameSize), true
		} else {
			au.NALUs = clip.SyntheticDelta(frameSize / 4)
		}
		c.Video = append(c.Video, au)
	}
	for pts := time.Duration(0); pts < d; pts += 20 * time.Millisecond {
		c.Audio = append(c.Audio, clip.OpusFrame{Data: []byte{0xf8, 0xff, 0xfe}, PTS: pts, Duration: 20 * time.Millisecond})
	}
	return c
}

// Play sends c through the publisher's tracks (looping) until ctx is done.
func (p *Publisher) Play(ctx context.Context, c *clip.Clip, onAU func(seq uint16, ts uint32, key bool, at time.Time)) error {
	return c.Play(ctx, clip.PlayOptions{
		Loop:         true,
		WriteVideo:   func(pkt *rtp.Packet) error { return p.Video.WriteRTP(pkt) },
		WriteAudio:   func(pkt *rtp.Packet) error { return p.Audio.WriteRTP(pkt) },
		OnAccessUnit: onAU,
	})
}
