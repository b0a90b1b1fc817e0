package web

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
)

// gstInstall is what the GStreamer interop test needs on Debian.
const gstInstall = "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good " +
	"gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-nice python3-gi " +
	"gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0"

// requireWebrtcbin returns the system Python that runs testdata/webrtcbin.py, or
// fails the test with the install command.
func requireWebrtcbin(t *testing.T) string {
	t.Helper()
	inspect := testenv.RequireTool(t, "gst-inspect-1.0", gstInstall)
	for _, element := range []string{"webrtcbin", "nicesrc", "x264enc", "opusenc", "rtph264pay", "rtpopuspay", "videotestsrc"} {
		if out, err := exec.Command(inspect, element).CombinedOutput(); err != nil {
			t.Fatalf("GStreamer element %s is missing (%v %s); install it with: %s", element, err, out, gstInstall)
		}
	}
	py := "/usr/bin/python3" // the system one: python3-gi installs there
	if out, err := exec.Command(py, "-c", `import gi; gi.require_version("GstWebRTC", "1.0"); from gi.repository import GstWebRTC`).CombinedOutput(); err != nil {
		t.Fatalf("python3-gi with GstWebRTC is missing (%v: %s); install it with: %s", err, out, gstInstall)
	}
	return py
}

// runWebrtcbin runs testdata/webrtcbin.py for d and returns its output.
func runWebrtcbin(ctx context.Context, t *testing.T, py, mode, url, token string, d time.Duration) string {
	t.Helper()
	script, _ := filepath.Abs("testdata/webrtcbin.py")
	cmd := exec.CommandContext(ctx, py, script, mode, url, token, strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("webrtcbin %s: %v\n%s", mode, err, out)
	}
	return string(out)
}

// TestGStreamerBundleOnly: GStreamer's webrtcbin with its default bundle policy
// (max-bundle, so its audio section is bundle-only) publishes over WHIP with video
// and audio, and plays both over WHEP.
func TestGStreamerBundleOnly(t *testing.T) {
	py := requireWebrtcbin(t)
	s := newStack(t, stackOptions{webrtcUDP: ":0"}) // libnice gathers no loopback candidates
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")

	published := make(chan string, 1)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() { published <- runWebrtcbinNoFatal(ctx, py, "whip", s.url+"/whip/"+id, trainer, 20*time.Second) }()

	tracks := func() string {
		var names []string
		for _, p := range s.reg.Session(id).Publications() {
			for _, tr := range p.Tracks {
				names = append(names, tr.Name)
			}
		}
		return strings.Join(names, " ")
	}
	deadline := time.After(20 * time.Second)
	for !strings.Contains(tracks(), "trainer/video") || !strings.Contains(tracks(), "trainer/audio") {
		select {
		case out := <-published:
			t.Fatalf("the publisher ended early; the session has tracks %q\n%s", tracks(), out)
		case <-deadline:
			cancel()
			t.Fatalf("the session has tracks %q, want trainer/video and trainer/audio; publisher:\n%s", tracks(), <-published)
		case <-time.After(50 * time.Millisecond):
		}
	}

	out := runWebrtcbin(s.ctx, t, py, "whep", s.url+"/whep/"+id, s.token(id, auth.RoleSite, "hue"), 6*time.Second)
	if !strings.Contains(out, "a=bundle-only") {
		t.Fatalf("webrtcbin's offer has no bundle-only section: the test does not test what it says\n%s", out)
	}
	m := regexp.MustCompile(`received video=(\d+) audio=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counts from the player:\n%s", out)
	}
	video, _ := strconv.Atoi(m[1])
	audio, _ := strconv.Atoi(m[2])
	if video < 30 || audio < 30 {
		t.Fatalf("webrtcbin played video=%d audio=%d packets, want both\n%s", video, audio, out)
	}
	cancel()
	if pub := <-published; !strings.Contains(pub, "a=bundle-only") {
		t.Fatalf("the publisher's offer has no bundle-only section:\n%s", pub)
	}
}

// runWebrtcbinNoFatal is runWebrtcbin for another goroutine: the error goes into
// the output.
func runWebrtcbinNoFatal(ctx context.Context, py, mode, url, token string, d time.Duration) string {
	script, _ := filepath.Abs("testdata/webrtcbin.py")
	out, err := exec.CommandContext(ctx, py, script, mode, url, token, strconv.FormatFloat(d.Seconds(), 'f', 1, 64)).CombinedOutput()
	if err != nil && ctx.Err() == nil {
		return fmt.Sprintf("%s\nexit: %v", out, err)
	}
	return string(out)
}
