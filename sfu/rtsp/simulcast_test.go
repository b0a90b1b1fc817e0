package rtsp

import (
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// TestSimulcastPublisherToRTSPReader: a WHIP simulcast publisher's three layers
// reach the session as trainer/video, ~1 and ~2; an RTSP reader is planned the top
// layer only (trainer/video and audio, nothing of the lower layers), and ffprobe
// reading it sees 1280x720.
func TestSimulcastPublisherToRTSPReader(t *testing.T) {
	f := newFixture(t, nil)
	edge := newEdge(t)
	var layers []*clip.Clip
	for _, o := range testpeer.SimulcastClipOptions(4 * time.Second) {
		layers = append(layers, testenv.Clip(t, o))
	}
	pub, err := testpeer.NewSimulcastPublisher(f.ctx, func(offer string) (string, error) {
		_, ans, err := edge.Publish(f.sess, sfu.TrainerPublication, offer)
		return ans, err
	}, testpeer.SimulcastOptions{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	waitFor(f.ctx, t, "three video layers and audio with packets", func() bool {
		p, ok := f.sess.Publication(sfu.TrainerPublication)
		if !ok {
			return false
		}
		n := 0
		for _, tr := range p.Tracks() {
			if tr.Packets() > 40 {
				n++
			}
		}
		return n == 4
	})
	plan, err := readPlan(f.sess, target{session: testSession})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range plan {
		names = append(names, tr.name)
	}
	if strings.Join(names, ",") != "trainer/video,trainer/audio" {
		t.Fatalf("an RTSP reader is planned %v, want trainer/video,trainer/audio", names)
	}
	out, err := ffprobeStreams(t, f, auth.RoleViewer, "codec_name,width,height")
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	if !strings.Contains(out, "codec_name=h264|width=1280|height=720") || strings.Count(out, "codec_name=h264") != 1 {
		t.Fatalf("ffprobe streams (want one H.264 stream of 1280x720):\n%s", out)
	}
}
