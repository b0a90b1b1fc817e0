package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/testenv"
)

const installFFmpeg = "apt-get install ffmpeg"

// published is how an ffmpeg publisher ended.
type published struct {
	frames int // video frames it encoded and sent
	stderr string
	err    error
}

// publishRTSP runs ffmpeg publishing a 640x360 30 fps test pattern (H.264
// baseline, no B-frames, a keyframe a second) with a 440 Hz tone in audioCodec
// (libopus or aac, 48 kHz stereo; pcm_mulaw or pcm_alaw, 8 kHz mono) to url over RTSP/TCP for d. The channel yields
// the result once ffmpeg exits; ffmpeg is killed if the test ends first.
func publishRTSP(t *testing.T, url, audioCodec string, d time.Duration) <-chan published {
	t.Helper()
	bin := testenv.RequireTool(t, "ffmpeg", installFFmpeg)
	secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	channels, rate := "2", "48000"
	if strings.HasPrefix(audioCodec, "pcm_") { // G.711 (pcm_mulaw, pcm_alaw): 8 kHz mono
		channels, rate = "1", "8000"
	}
	cmd := exec.Command(bin, "-hide_banner", "-nostdin", "-v", "error", "-progress", "pipe:1", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", secs,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-bf", "0", "-g", "30", "-b:v", "1500k",
		"-c:a", audioCodec, "-ac", channels, "-ar", rate,
		"-f", "rtsp", "-rtsp_transport", "tcp", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := make(chan published, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := cmd.Wait()
		frames, _ := strconv.Atoi(testenv.LastProgress(stdout.String(), "frame"))
		out <- published{frames: frames, stderr: stderr.String(), err: err}
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return out
}

// stream is one stream of a probed file.
type stream struct {
	Kind   string // "video", "audio"
	Codec  string // "h264", "aac", "opus"
	Frames int    // decoded frames (packets, for audio)
}

// probe is what ffprobe says about a file or playlist.
type probe struct {
	Duration float64
	Streams  []stream
}

// stream returns the first stream of kind.
func (p probe) stream(kind string) (stream, bool) {
	for _, s := range p.Streams {
		if s.Kind == kind {
			return s, true
		}
	}
	return stream{}, false
}

// ffprobe reads every frame of path and reports its streams and duration.
func ffprobe(ctx context.Context, t *testing.T, path string, extra ...string) probe {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", installFFmpeg)
	args := append([]string{"-v", "error"}, extra...)
	args = append(args, "-count_frames", "-show_entries", "format=duration:stream=codec_type,codec_name,nb_read_frames", "-of", "json", path)
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ffprobe %s: %v\n%s", path, err, ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			CodecType    string `json:"codec_type"`
			CodecName    string `json:"codec_name"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	var p probe
	p.Duration, _ = strconv.ParseFloat(res.Format.Duration, 64)
	for _, s := range res.Streams {
		n, _ := strconv.Atoi(s.NbReadFrames)
		p.Streams = append(p.Streams, stream{Kind: s.CodecType, Codec: s.CodecName, Frames: n})
	}
	return p
}

// decodeErrors decodes every stream of path with ffmpeg and returns what it
// reported at error level ("" when the media is clean).
func decodeErrors(ctx context.Context, t *testing.T, path string, extra ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "ffmpeg", installFFmpeg)
	args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, extra...)
	out, err := exec.CommandContext(ctx, bin, append(args, "-i", path, "-f", "null", "-")...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg decode %s: %v\n%s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

// annexB reassembles the H.264 a WebRTC subscriber receives (RFC 6184 single NAL
// units, STAP-A, FU-A) into an Annex-B stream starting at the first parameter
// set, and counts the IDR pictures. Its methods are safe for concurrent use.
type annexB struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	fu      []byte
	started bool
	idrs    int
	ts      uint32
	auIDR   bool
}

// add takes one RTP packet, on the subscriber's reading goroutine.
func (a *annexB) add(p *rtp.Packet) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.Timestamp != a.ts {
		a.ts, a.auIDR = p.Timestamp, false
	}
	b := p.Payload
	if len(b) < 2 {
		return
	}
	switch b[0] & 0x1f {
	case 24: // STAP-A
		for b = b[1:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || n > len(b)-2 {
				return
			}
			a.nalu(b[2 : 2+n])
			b = b[2+n:]
		}
	case 28: // FU-A
		if b[1]&0x80 != 0 {
			a.fu = append(a.fu[:0], b[0]&0xe0|b[1]&0x1f)
		} else if len(a.fu) == 0 {
			return
		}
		a.fu = append(a.fu, b[2:]...)
		if b[1]&0x40 != 0 {
			a.nalu(a.fu)
			a.fu = a.fu[:0]
		}
	default:
		a.nalu(b)
	}
}

// nalu appends one NAL unit; mu is held.
func (a *annexB) nalu(n []byte) {
	switch n[0] & 0x1f {
	case 7: // SPS
		a.started = true
	case 5: // IDR slice
		if a.started && !a.auIDR {
			a.idrs++
		}
		a.auIDR = true
	}
	if a.started {
		a.buf.Write([]byte{0, 0, 0, 1})
		a.buf.Write(n)
	}
}

// keyframes returns the IDR pictures received after the first SPS.
func (a *annexB) keyframes() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.idrs
}

// write saves the stream to a .h264 file.
func (a *annexB) write(t *testing.T) string {
	t.Helper()
	a.mu.Lock()
	data := bytes.Clone(a.buf.Bytes())
	a.mu.Unlock()
	path := filepath.Join(t.TempDir(), "received.h264")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
