package clip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options describe the clip that Generate makes. The zero value of a field
// selects its default.
type Options struct {
	// Width and Height are the picture size in pixels; both must be even.
	// They default to 1280x720.
	Width, Height int
	// FPS is the frame rate. It defaults to 30.
	FPS int
	// Bitrate is the target video bitrate in bits/s, held CBR-like by the
	// x264 VBV (1 s buffer). It defaults to 2_500_000.
	Bitrate int
	// Duration is the clip length, rounded to whole frames. It defaults to 10 s.
	Duration time.Duration
	// GOP is the distance between keyframes in frames. It defaults to 2*FPS.
	GOP int
}

func (o Options) withDefaults() Options {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 1280, 720
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.Bitrate == 0 {
		o.Bitrate = 2_500_000
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.GOP == 0 {
		o.GOP = 2 * o.FPS
	}
	return o
}

// frames returns the number of video frames of the clip.
func (o Options) frames() int {
	return int((o.Duration*time.Duration(o.FPS) + time.Second/2) / time.Second)
}

func (o Options) validate() error {
	switch {
	case o.Width < 16 || o.Height < 16 || o.Width%2 != 0 || o.Height%2 != 0:
		return fmt.Errorf("clip: picture size %dx%d must be even and at least 16x16", o.Width, o.Height)
	case o.FPS < 1 || o.FPS > 240:
		return fmt.Errorf("clip: frame rate %d out of range 1..240", o.FPS)
	case o.Bitrate < 10_000:
		return fmt.Errorf("clip: bitrate %d bit/s below 10000", o.Bitrate)
	case o.frames() < 1 || o.Duration > time.Hour:
		return fmt.Errorf("clip: duration %v out of range (one frame .. 1h)", o.Duration)
	case o.GOP < 1:
		return fmt.Errorf("clip: GOP %d below 1", o.GOP)
	}
	return nil
}

// baseName names the cached files of o; change the version when the ffmpeg
// arguments change.
func (o Options) baseName() string {
	return fmt.Sprintf("clip-v1-%dx%d-%dfps-%dbps-%dframes-gop%d",
		o.Width, o.Height, o.FPS, o.Bitrate, o.frames(), o.GOP)
}

// FFmpegError is returned by Generate when ffmpeg fails.
type FFmpegError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *FFmpegError) Error() string {
	return fmt.Sprintf("clip: ffmpeg %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr))
}

func (e *FFmpegError) Unwrap() error { return e.Err }

// Generate makes a clip with ffmpeg in dir and loads it. The video is the
// animated testsrc2 pattern encoded by x264 as constrained baseline H.264
// (no B-frames, SPS and PPS before every IDR, a keyframe exactly every GOP
// frames) into an Annex-B file; the audio is a 440 Hz sine tone encoded as
// 48 kHz stereo Opus in 20 ms frames into an Ogg file.
//
// Files are cached: when dir already holds the files for the same options,
// they are loaded without running ffmpeg. Concurrent calls are safe, as files
// are written under temporary names and renamed. Generate returns
// ErrFFmpegNotFound when ffmpeg is not installed.
func Generate(ctx context.Context, dir string, o Options) (*Clip, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, o.baseName())
	h264Path, oggPath := base+".h264", base+".ogg"
	if fileExists(h264Path) && fileExists(oggPath) {
		return Load(h264Path, oggPath, o.FPS)
	}
	if err := encode(ctx, dir, o, h264Path, oggPath); err != nil {
		return nil, err
	}
	return Load(h264Path, oggPath, o.FPS)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() > 0
}

// encode runs ffmpeg into temporary files and renames them to h264Path and oggPath.
func encode(ctx context.Context, dir string, o Options, h264Path, oggPath string) error {
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return ErrFFmpegNotFound
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	suffix := fmt.Sprintf(".%d-%d.tmp", os.Getpid(), time.Now().UnixNano())
	tmpVideo, tmpAudio := h264Path+suffix, oggPath+suffix
	defer os.Remove(tmpVideo)
	defer os.Remove(tmpAudio)

	args := ffmpegArgs(o, tmpVideo, tmpAudio)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("clip: ffmpeg: %w", ctx.Err())
		}
		return &FFmpegError{Args: args, Stderr: stderr.String(), Err: err}
	}
	if err := os.Rename(tmpVideo, h264Path); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	if err := os.Rename(tmpAudio, oggPath); err != nil {
		return errors.Join(fmt.Errorf("clip: %w", err), os.Remove(h264Path))
	}
	return nil
}

// ffmpegArgs returns the ffmpeg arguments that encode o into an Annex-B
// H.264 file and an Ogg Opus file.
func ffmpegArgs(o Options, h264Path, oggPath string) []string {
	frames := o.frames()
	length := strconv.FormatInt((time.Duration(frames)*time.Second/time.Duration(o.FPS)).Microseconds(), 10) + "us"
	rate := strconv.Itoa(o.Bitrate)
	return []string{
		"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", o.Width, o.Height, o.FPS, length),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + length,
		"-map", "0:v", "-frames:v", strconv.Itoa(frames),
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "baseline", "-preset", "veryfast",
		"-bf", "0", "-g", strconv.Itoa(o.GOP),
		"-b:v", rate, "-maxrate", rate, "-bufsize", rate,
		"-x264-params", fmt.Sprintf("keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1:aud=1", o.GOP, o.GOP),
		"-f", "h264", h264Path,
		"-map", "1:a", "-c:a", "libopus", "-ac", "2", "-ar", "48000", "-b:a", "64000",
		"-frame_duration", "20", "-application", "audio",
		"-f", "ogg", oggPath,
	}
}
