package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestToneLevels: in a file with 440 Hz throughout and 1 kHz in its second
// half, ToneLevels finds 440 Hz in every window and 1 kHz only in the second
// half, about 45 dB apart from its absence.
func TestToneLevels(t *testing.T) {
	ffmpeg := RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	path := filepath.Join(t.TempDir(), "tones.ogg")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
		"-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=2",
		"-filter_complex", "[1]adelay=2000:all=1[b];[0][b]amix=inputs=2:duration=first:normalize=0",
		"-c:a", "libopus", "-b:a", "64000", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	low := ToneLevels(t, path, 440, 250*time.Millisecond)
	high := ToneLevels(t, path, 1000, 250*time.Millisecond)
	if len(low) < 15 || len(high) != len(low) {
		t.Fatalf("%d and %d windows of a 4 s file", len(low), len(high))
	}
	for i := range low {
		if low[i].RMS < -25 {
			t.Errorf("440 Hz at %.2f s: %.1f dBFS", low[i].At, low[i].RMS)
		}
		switch at := high[i].At; {
		case at < 1.75 && high[i].RMS > -60:
			t.Errorf("1 kHz before it starts, at %.2f s: %.1f dBFS", at, high[i].RMS)
		case at >= 2.25 && at < 3.75 && high[i].RMS < -25:
			t.Errorf("1 kHz at %.2f s: %.1f dBFS", at, high[i].RMS)
		}
	}
	t.Logf("440 Hz %v\n1 kHz %v", low, high)
}
