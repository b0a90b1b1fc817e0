package web

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/recorder"
	"lectern/storage"
)

// TestLectureTimeline: a trainer publishes (camera, microphone, and a screen-share
// section that sends nothing yet); a classroom raises its hand, is given the floor,
// the floor is taken back; then the trainer's slides start, and the publication
// ends. The trainer's recording's meta.json carries that timeline, in order, with
// times from the recording's start.
func TestLectureTimeline(t *testing.T) {
	store, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := newStack(t, stackOptions{recorder: true, store: store})
	id := s.createSession("Chuyển đổi số - Bài 2")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleViewer, "learner")
	site := s.token(id, auth.RoleSite, "hue")
	ev := s.subscribeEvents(id, trainer)

	var loc string
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, true, s.signal("/whip/"+id, trainer, &loc))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, stop := context.WithCancel(s.ctx)
	defer stop()
	camera := testpeer.SyntheticClip(time.Second, 30, 30, 2000)
	go pub.Play(ctx, camera, nil)
	// The recording starts once the camera's first keyframe is in.
	if err := waitUntil(s, func() bool {
		resp, body := s.do("GET", "/api/recordings?session="+id, learner, "", "")
		var page recordingPage
		return resp.StatusCode == 200 && json.Unmarshal([]byte(body), &page) == nil && len(page.Recordings) == 1
	}); err != nil {
		t.Fatal("the trainer's recording did not start:", err)
	}
	time.Sleep(300 * time.Millisecond) // the timeline's entries come after the start

	// The floor: a hand, a grant (which lowers the hand), taking it back.
	if resp, body := s.do("POST", "/api/sessions/"+id+"/hands", site, "", ""); resp.StatusCode != 200 {
		t.Fatalf("raise hand: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "hands", `"participant":"hue"`)
	if resp, body := s.do("PUT", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("grant: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "speakers", `"publication":"site-hue"`)
	if resp, body := s.do("DELETE", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "speakers", "[]")

	// The slides: the screen-share section starts sending.
	slides := testpeer.SyntheticClip(time.Second, 10, 10, 3000)
	go slides.Play(ctx, clip.PlayOptions{Loop: true, VideoSSRC: 4242,
		WriteVideo: func(p *rtp.Packet) error { return pub.Screen.WriteRTP(p) }})
	if err := waitUntil(s, func() bool {
		ls, ok := s.reg.Lookup(id)
		if !ok {
			return false
		}
		for _, p := range ls.Publications() {
			for _, tr := range p.Tracks {
				if strings.HasSuffix(tr.Name, "screen") && tr.Packets > 0 {
					return true
				}
			}
		}
		return false
	}); err != nil {
		t.Fatal("the screen share never arrived:", err)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	if resp, body := s.do("DELETE", loc, trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("WHIP DELETE: %d %s", resp.StatusCode, body)
	}
	rv := waitRecording(t, s, learner, id)

	r, _, err := store.Open(context.Background(), "recordings/"+id+"/"+rv.ID+"/meta.json", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	var meta recorder.Meta
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	want := []recorder.TimelineEntry{
		{Type: "hand", Participant: "hue", Name: "Lớp hue"},
		{Type: "floor", Participant: "hue", Name: "Lớp hue"},
		{Type: "hand_down", Participant: "hue", Name: "Lớp hue"},
		{Type: "floor_end", Participant: "hue", Name: "Lớp hue"},
		{Type: "slides"},
		{Type: "slides_end"},
	}
	got := meta.Timeline
	t.Logf("timeline of the %.3f s recording: %+v", meta.Duration, got)
	if len(got) != len(want) {
		t.Fatalf("timeline %+v, want the types of %+v", got, want)
	}
	last := 0.0
	for i, e := range got {
		w := want[i]
		if e != (recorder.TimelineEntry{At: e.At, Type: w.Type, Participant: w.Participant, Name: w.Name}) {
			t.Fatalf("timeline entry %d is %+v, want %+v (timeline %+v)", i, e, w, got)
		}
		if e.At < last || e.At <= 0 || e.At > meta.Duration+1 {
			t.Fatalf("timeline entry %d at %.3f s: not after %.3f s, or outside the %.3f s recording (%+v)", i, e.At, last, meta.Duration, got)
		}
		last = e.At
	}
}
