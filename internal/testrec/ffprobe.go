package testrec

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/internal/testenv"
)

// Probe is what ffprobe says about a media file, playlist or URL.
type Probe struct {
	Duration    float64
	VideoFrames int // of the first video stream
	AudioFrames int
	Streams     int
}

// FFprobe decodes every frame of url (a file or an http URL) and reports its
// duration and frame counts; extra are ffprobe options put before the input.
func FFprobe(t testing.TB, url string, extra ...string) Probe {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	args := append([]string{"-v", "error"}, extra...)
	args = append(args, "-count_frames", "-show_entries", "format=duration:stream=codec_type,nb_read_frames", "-of", "json", url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v\n%s", url, err, stderr)
	}
	var res struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			CodecType    string `json:"codec_type"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	var p Probe
	p.Duration, _ = strconv.ParseFloat(res.Format.Duration, 64)
	p.Streams = len(res.Streams)
	for _, s := range res.Streams {
		n, _ := strconv.Atoi(s.NbReadFrames)
		if strings.EqualFold(s.CodecType, "video") && p.VideoFrames == 0 {
			p.VideoFrames = n
		}
		if strings.EqualFold(s.CodecType, "audio") {
			p.AudioFrames = n
		}
	}
	return p
}
