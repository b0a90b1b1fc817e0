package testenv

// Tones: media whose sound and picture tell the sources apart (a sine of a
// chosen frequency, a chosen test pattern and size), and the measure of a tone
// over time in what comes out, by ffmpeg's own filters on a captured file.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lectern/internal/clip"
)

// ToneClipOptions describe a clip made by ToneClip.
type ToneClipOptions struct {
	// Pattern is an ffmpeg test source: "testsrc", "testsrc2", "smptebars",
	// "rgbtestsrc"...
	Pattern string
	// Width and Height are the picture size (even).
	Width, Height int
	// FPS is the frame rate; GOP the keyframe interval in frames.
	FPS, GOP int
	// Tone is the frequency in Hz of the sine on the audio track (48 kHz
	// stereo Opus in 20 ms frames).
	Tone int
	// Duration is the length of one pass of the clip.
	Duration time.Duration
}

var toneClips struct {
	mu   sync.Mutex
	made map[ToneClipOptions]clipResult
}

// ToneClip returns a clip whose video is o.Pattern at o.Width x o.Height
// (constrained baseline H.264, no B-frames, a keyframe every o.GOP frames with
// its parameter sets) and whose audio is a sine of o.Tone Hz. Made by ffmpeg
// once per test binary and options, cached across runs in the system temp
// directory. A test that cannot find ffmpeg fails with an install hint.
func ToneClip(t testing.TB, o ToneClipOptions) *clip.Clip {
	t.Helper()
	ffmpeg := RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	if o.Pattern == "" || o.Width < 16 || o.Height < 16 || o.FPS < 1 || o.GOP < 1 || o.Tone < 20 || o.Duration < time.Second {
		t.Fatalf("testenv: tone clip options %+v", o)
	}
	toneClips.mu.Lock()
	defer toneClips.mu.Unlock()
	if r, ok := toneClips.made[o]; ok {
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.clip
	}
	frames := int(o.Duration * time.Duration(o.FPS) / time.Second)
	dir := filepath.Join(os.TempDir(), "lectern-test-clips")
	base := filepath.Join(dir, fmt.Sprintf("tone-v1-%s-%dx%d-%dfps-gop%d-%dframes-%dhz", o.Pattern, o.Width, o.Height, o.FPS, o.GOP, frames, o.Tone))
	h264Path, oggPath := base+".h264", base+".ogg"
	var r clipResult
	if !fileExists(h264Path) || !fileExists(oggPath) {
		r.err = makeToneClip(ffmpeg, dir, o, frames, h264Path, oggPath)
	}
	if r.err == nil {
		r.clip, r.err = clip.Load(h264Path, oggPath, o.FPS)
	}
	if toneClips.made == nil {
		toneClips.made = make(map[ToneClipOptions]clipResult)
	}
	toneClips.made[o] = r
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.clip
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() > 0
}

// makeToneClip runs ffmpeg into temporary files renamed into place, so that
// concurrent test binaries never read a half-written clip.
func makeToneClip(ffmpeg, dir string, o ToneClipOptions, frames int, h264Path, oggPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	suffix := fmt.Sprintf(".%d-%d.tmp", os.Getpid(), time.Now().UnixNano())
	tmpVideo, tmpAudio := h264Path+suffix, oggPath+suffix
	defer os.Remove(tmpVideo)
	defer os.Remove(tmpAudio)
	length := strconv.FormatFloat(float64(frames)/float64(o.FPS), 'f', 3, 64)
	rate := strconv.Itoa(o.Width * o.Height * o.FPS / 10) // about 0.1 bit per pixel: a clean picture
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("%s=size=%dx%d:rate=%d:duration=%s", o.Pattern, o.Width, o.Height, o.FPS, length),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000:duration=%s", o.Tone, length),
		"-map", "0:v", "-frames:v", strconv.Itoa(frames),
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "baseline", "-preset", "veryfast",
		"-bf", "0", "-g", strconv.Itoa(o.GOP), "-b:v", rate, "-maxrate", rate, "-bufsize", rate,
		"-x264-params", fmt.Sprintf("keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1:aud=1", o.GOP, o.GOP),
		"-f", "h264", tmpVideo,
		"-map", "1:a", "-c:a", "libopus", "-ac", "2", "-ar", "48000", "-b:a", "64000",
		"-frame_duration", "20", "-application", "audio", "-f", "ogg", tmpAudio,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: ffmpeg %s: %w: %s", strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmpVideo, h264Path); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := os.Rename(tmpAudio, oggPath); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// ToneLevel is the level of a tone in one window of a file's audio.
type ToneLevel struct {
	// At is the start of the window in the file's time (seconds).
	At float64
	// RMS is the window's RMS level in dBFS after two band-pass filters 50 Hz
	// wide around the tone; -200 for digital silence.
	RMS float64
}

// ToneLevels measures, with ffmpeg's filters, the level of a freq Hz tone in
// consecutive windows of the first audio stream of input (a file or URL): the
// audio is band-passed twice around freq (another tone an octave or more away
// drops by about 45 dB), cut in windows, and astats reports each window's RMS
// level. A sine of amplitude 1/8 (ffmpeg's sine source) measures about
// -21 dBFS.
func ToneLevels(t testing.TB, input string, freq int, window time.Duration) []ToneLevel {
	t.Helper()
	ffmpeg := RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	meta := filepath.Join(t.TempDir(), fmt.Sprintf("levels-%d.txt", freq))
	samples := int(window.Seconds() * 48000)
	// ametadata's file option is a filter argument: escape what the filter
	// graph parser would take for syntax.
	esc := strings.NewReplacer(`\`, `\\\\`, `:`, `\\:`, `'`, `\\'`, `,`, `\,`).Replace(meta)
	af := fmt.Sprintf("aresample=48000,pan=mono|c0=c0,bandpass=f=%d:width_type=h:w=50,bandpass=f=%d:width_type=h:w=50,"+
		"asetnsamples=n=%d:p=0,astats=metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level,"+
		"ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file=%s", freq, freq, samples, esc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", input,
		"-map", "0:a:0", "-af", af, "-f", "null", "-")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: ffmpeg measuring %d Hz in %s: %v\n%s", freq, input, err, out)
	}
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatalf("testenv: ffmpeg wrote no levels of %d Hz in %s: %v", freq, input, err)
	}
	levels := parseLevels(data)
	if len(levels) == 0 {
		t.Fatalf("testenv: no audio levels of %d Hz in %s:\n%s", freq, input, data)
	}
	return levels
}

// parseLevels reads ametadata's print output: a "frame:N pts:P pts_time:T"
// line, then key=value lines.
func parseLevels(data []byte) []ToneLevel {
	var out []ToneLevel
	at := math.NaN()
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "frame:") {
			at = math.NaN()
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "pts_time:"); ok {
					at, _ = strconv.ParseFloat(v, 64)
				}
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "lavfi.astats.Overall.RMS_level="); ok && !math.IsNaN(at) {
			rms, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsInf(rms, -1) || rms < -200 {
				rms = -200
			}
			out = append(out, ToneLevel{At: at, RMS: rms})
		}
	}
	return out
}
