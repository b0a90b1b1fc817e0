package clip

import (
	"fmt"
	"os"
	"time"
)

// Load parses an Annex-B H.264 file at fps frames per second and an Ogg Opus
// file. Either path may be empty to leave that medium out.
//
// Access units are stamped i/fps. Opus frames that start at or after the end
// of the video are dropped, so that audio and video loop together (ffmpeg's
// Opus encoder pads the end of the stream by its pre-skip).
func Load(h264Path, oggPath string, fps int) (*Clip, error) {
	if h264Path == "" && oggPath == "" {
		return nil, ErrEmptyClip
	}
	c := &Clip{FPS: fps}
	if h264Path != "" {
		if fps <= 0 {
			return nil, fmt.Errorf("clip: invalid frame rate %d", fps)
		}
		data, err := os.ReadFile(h264Path)
		if err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
		if c.Video, err = parseH264(data, fps); err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, h264Path)
		}
		c.Duration = time.Duration(len(c.Video)) * time.Second / time.Duration(fps)
	}
	if oggPath != "" {
		data, err := os.ReadFile(oggPath)
		if err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
		if c.Audio, err = parseOpus(data); err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, oggPath)
		}
		c.Audio = trimAudio(c.Audio, c.Duration)
	}
	if len(c.Video) == 0 && len(c.Audio) == 0 {
		return nil, fmt.Errorf("%w in %q and %q", ErrEmptyClip, h264Path, oggPath)
	}
	if len(c.Video) == 0 {
		last := c.Audio[len(c.Audio)-1]
		c.Duration = last.PTS + last.Duration
	}
	return c, nil
}

// trimAudio drops the frames that start at or after end; end 0 keeps all.
func trimAudio(frames []OpusFrame, end time.Duration) []OpusFrame {
	if end <= 0 {
		return frames
	}
	for i, f := range frames {
		if f.PTS >= end {
			return frames[:i]
		}
	}
	return frames
}
