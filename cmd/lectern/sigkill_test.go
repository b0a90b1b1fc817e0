package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/internal/testenv"
)

// TestSIGKILLMidRecording kills the real binary with SIGKILL while a trainer
// publishes, restarts it on the same data directory and checks that the
// recording is finalised with what was recorded before the kill.
func TestSIGKILLMidRecording(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "lectern")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	httpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	const admin = "sigkill-admin-token-0123"
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-http", "127.0.0.1:"+strconv.Itoa(httpPort), "-webrtc-ip", "127.0.0.1",
			"-webrtc-udp-port", strconv.Itoa(udpPort), "-webrtc-tcp-port", "0", "-data-dir", dataDir, "-rtsp", "off",
			"-admin-token", admin, "-log-level", "info")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Lectern is running") {
				break
			}
		}
		go io.Copy(io.Discard, stdout)
		return cmd
	}
	cmd := start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, pub := publishTo(ctx, t, base, admin, "Kill test")
	defer pub.Close()
	c := testenv.Clip(t, clip.Options{Width: 640, Height: 360, FPS: 30, Bitrate: 1_000_000, Duration: 20 * time.Second, GOP: 60})
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	_ = c.Play(pctx, clip.PlayOptions{
		WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
		WriteAudio: func(p *rtp.Packet) error { return pub.Audio.WriteRTP(p) }})
	pcancel()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	t.Log("killed after 15 s of media")

	cmd = start()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", base+"/api/recordings", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var page struct {
			Recordings []struct {
				ID          string
				Status      string
				Interrupted bool
				Duration    float64
				Segments    int
			}
		}
		_ = json.Unmarshal(b, &page)
		if len(page.Recordings) == 1 && page.Recordings[0].Status == "complete" {
			r := page.Recordings[0]
			t.Logf("after restart: %+v", r)
			if !r.Interrupted || r.Duration < 11 || r.Segments < 3 {
				t.Fatalf("recovered recording %+v", r)
			}
			out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
				"format=duration:stream=nb_read_frames", "-of", "compact", base+"/replay/"+r.ID+"/download.mp4?token="+admin).CombinedOutput()
			t.Logf("ffprobe download: %s %v", out, err)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finalised recording: %s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
