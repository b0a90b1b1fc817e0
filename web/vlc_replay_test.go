package web

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
)

// TestVLCPlaysReplay: VLC, what many classrooms and learners open a link with,
// plays a recorded lecture's HLS replay (/replay/{id}/index.m3u8 with the learner's
// ?token=, which the playlist hands on to its segments) from start to end. Its
// stream output writes what it demuxed from the fMP4 segments to a file, which
// ffprobe decodes with the clip's duration, frames and both streams. (Debian's VLC
// has no RTSP: its live555 module is disabled, so RTSP readers are tested with
// ffmpeg and GStreamer instead.)
func TestVLCPlaysReplay(t *testing.T) {
	bin := testenv.RequireTool(t, "cvlc", "apt-get install vlc-bin vlc-plugin-base")
	c := testrec.LectureClip(t)
	d := testrec.DirStore(t)
	s, _, _ := newReplayStack(t, d, nil)
	id := s.createSession("Chuyển đổi số - Bài 2")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")

	rv := recordWholeClip(t, s, c, id, trainer, learner)

	// VLC refuses to run as root: as root, it runs as nobody, in a directory
	// nobody may write (its HOME, and the output).
	dir, err := os.MkdirTemp("", "lectern-vlc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "replay.mkv")
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ignore-config", "--intf", "dummy", "--play-and-exit",
		"--sout", "#std{access=file,mux=mkv,dst="+out+"}",
		s.url+"/replay/"+rv.ID+"/index.m3u8?token="+learner)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir, "XDG_DATA_HOME="+dir)
	cmd.Dir = dir
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cvlc: %v\n%s", err, log)
	}
	got := testrec.FFprobe(t, out)
	// VLC's Matroska muxer drops the very last frame (it has no duration); its TS
	// muxer would leave up to a second unwritten at the end, hence Matroska.
	if !near(got.Duration, c.Duration.Seconds(), 0.5) || got.VideoFrames < len(c.Video)-2 {
		t.Errorf("what VLC played: %+v, want about %v and %d frames\n%s", got, c.Duration, len(c.Video), log)
	}
	if codecs := probeCodecs(ctx, t, out); !slices.Equal(codecs, []string{"audio/opus", "video/h264"}) {
		t.Errorf("what VLC played has streams %v, want H.264 and Opus\n%s", codecs, log)
	}
	t.Logf("VLC played %+v of the %v clip (%d frames)", got, c.Duration, len(c.Video))
}

// probeCodecs returns the streams of path as sorted "kind/codec" strings.
func probeCodecs(ctx context.Context, t *testing.T, path string) []string {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	out, err := exec.CommandContext(ctx, bin, "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	var codecs []string
	for _, s := range res.Streams {
		codecs = append(codecs, strings.Join([]string{s.CodecType, s.CodecName}, "/"))
	}
	slices.Sort(codecs)
	return codecs
}
