package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/catalog"
	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/internal/testrec"
	"lectern/recorder"
)

// answerOf is a signal that also keeps the SDP answer, whose msid lines name the
// server's tracks ("programme-audio", "trainer-video").
func answerOf(sig testpeer.Signal, answer *string) testpeer.Signal {
	return func(offer string) (string, error) {
		a, err := sig(offer)
		*answer = a
		return a, err
	}
}

// msids returns the track ids of an answer's a=msid lines, in order.
func msids(answer string) []string {
	var out []string
	for line := range strings.Lines(answer) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "a=msid:"); ok {
			if _, track, ok := strings.Cut(rest, " "); ok {
				out = append(out, track)
			}
		}
	}
	return out
}

// programmeClip is a short real H.264 + Opus clip (a test pattern, a 440 Hz tone).
func programmeClip(t *testing.T) *clip.Clip {
	return testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "testsrc", Width: 320, Height: 240, FPS: 30, GOP: 30, Tone: 440, Duration: 6 * time.Second})
}

// TestWHEPProgramme: with the programme on, /whep/{session} plays the programme's
// tracks (also to a viewer that came before the trainer: its tracks appear with
// the trainer), /whep/{session}/trainer the trainer's own; /whep/{session}/programme
// names it too. Real pion peers over loopback.
func TestWHEPProgramme(t *testing.T) {
	s := newStack(t, stackOptions{programme: true})
	id := s.createSession("Chuyển đổi số - Bài 12")
	viewer := s.token(id, auth.RoleViewer, "hall")
	site := s.token(id, auth.RoleSite, "hue")

	var early string
	first, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, answerOf(s.signal("/whep/"+id, viewer, nil), &early), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// The classroom page opens the trainer's own tracks before the lecture starts too.
	var earlyTrainer string
	room, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, answerOf(s.signal("/whep/"+id+"/trainer", site, nil), &earlyTrainer), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer room.Close()

	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, s.token(id, auth.RoleTrainer, "trainer"), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() { _ = pub.Play(ctx, programmeClip(t), nil) }()

	subscribe := func(path, token string) (*testpeer.Subscriber, []string) {
		t.Helper()
		var answer string
		sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, answerOf(s.signal(path, token, nil), &answer), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		t.Cleanup(sub.Close)
		for i := range 2 {
			if err := sub.WaitPackets(s.ctx, i, 30); err != nil {
				t.Fatalf("%s section %d: %v", path, i, err)
			}
		}
		return sub, msids(answer)
	}
	for _, tc := range []struct {
		path, token string
		want        string
	}{
		{"/whep/" + id, viewer, "programme-video,programme-audio"},
		{"/whep/" + id, site, "programme-video,programme-audio"},
		{"/whep/" + id + "/trainer", site, "trainer-video,trainer-audio"},
		{"/whep/" + id + "/programme", viewer, "programme-video,programme-audio"},
	} {
		if _, got := subscribe(tc.path, tc.token); strings.Join(got, ",") != tc.want {
			t.Errorf("POST %s: tracks %v, want %s", tc.path, got, tc.want)
		}
	}
	if got := strings.Join(msids(early), ","); got != "programme-video,programme-audio" {
		t.Errorf("a viewer before the trainer: tracks %s, want the programme's", got)
	}
	if got := strings.Join(msids(earlyTrainer), ","); got != "trainer-video,trainer-audio" {
		t.Errorf("a classroom page before the trainer: tracks %s, want the trainer's", got)
	}
	for i := range 2 {
		if err := first.WaitPackets(s.ctx, i, 30); err != nil {
			t.Fatalf("the viewer that came before the trainer, section %d: %v", i, err)
		}
		if err := room.WaitPackets(s.ctx, i, 30); err != nil {
			t.Fatalf("the classroom page that came before the trainer, section %d: %v", i, err)
		}
	}
	// The programme publication is listed with the session, beside the trainer's.
	resp, body := s.do("GET", "/api/sessions/"+id, viewer, "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"programme"`) || !strings.Contains(body, `"name":"trainer"`) {
		t.Fatalf("session state: %d %s", resp.StatusCode, body)
	}
}

// TestWHEPWithoutProgramme: a server without the programme serves the trainer at
// /whep/{session}, as before.
func TestWHEPWithoutProgramme(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Chuyển đổi số - Bài 12")
	var answer string
	sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, answerOf(s.signal("/whep/"+id, s.token(id, auth.RoleViewer, "hall"), nil), &answer), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if got := strings.Join(msids(answer), ","); got != "trainer-video,trainer-audio" {
		t.Fatalf("tracks %s, want the trainer's", got)
	}
	// No programme is coming: asking for it is asking for a publication not live.
	if resp, body := s.do("POST", "/whep/"+id+"/programme", s.token(id, auth.RoleViewer, "hall"), "application/sdp", "v=0\r\n"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/whep/{session}/programme without the programme: %d %s", resp.StatusCode, body)
	}
}

// TestSessionProgrammeVideo: programme_video is set at creation and by PATCH,
// validated (400 with the reason; nothing changes), shown in the session.
func TestSessionProgrammeVideo(t *testing.T) {
	s := newStack(t, stackOptions{})
	session := func(body string) catalog.Session {
		t.Helper()
		var c catalog.Session
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return c
	}
	resp, body := s.do("POST", "/api/sessions", testAdmin, "application/json", `{"title":"T","programme_video":"speaker"}`)
	if resp.StatusCode != http.StatusCreated || session(body).ProgrammeVideo != "speaker" {
		t.Fatalf("create with speaker: %d %s", resp.StatusCode, body)
	}
	id := session(body).ID
	resp, body = s.do("POST", "/api/sessions", testAdmin, "application/json", `{"title":"T","programme_video":"grid"}`)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "programme_video") || !strings.Contains(body, "speaker") {
		t.Fatalf("create with grid: %d %s, want 400 naming the field and its values", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		token, body string
		status      int
		want        string // in the answer
	}{
		{testAdmin, `{"programme_video":"trainer"}`, 200, `"programme_video":"trainer"`},
		{testAdmin, `{"programme_video":"both"}`, 400, "programme_video"},
		{testAdmin, `{"programme_video":7}`, 400, "programme_video"},
		{testAdmin, `{"id":"x"}`, 400, "cannot be changed"},
		{testAdmin, `{"programme_vidoe":"speaker"}`, 400, "programme_vidoe"},
		{testAdmin, `[]`, 400, "JSON"},
		{testAdmin, `null`, 400, "object"},
		{s.token(id, auth.RoleTrainer, "trainer"), `{"programme_video":"speaker"}`, 403, ""},
		{"", `{"programme_video":"speaker"}`, 401, ""},
		{testAdmin, `{"programme_video":"speaker","title":"Bài 12","scheduled_at":null}`, 200, `"title":"Bài 12"`},
	} {
		resp, body := s.do("PATCH", "/api/sessions/"+id, tc.token, "application/json", tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("PATCH %s: %d %s, want %d with %s", tc.body, resp.StatusCode, body, tc.status, tc.want)
		}
	}
	resp, body = s.do("GET", "/api/sessions/"+id, testAdmin, "", "")
	if c := session(body); resp.StatusCode != 200 || c.ProgrammeVideo != "speaker" || c.Title != "Bài 12" {
		t.Fatalf("the session after the changes: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("PATCH", "/api/sessions/nosuchsess1", testAdmin, "application/json", `{"listed":true}`); resp.StatusCode != 404 {
		t.Fatalf("PATCH of an unknown session: %d %s", resp.StatusCode, body)
	}
}

// TestReplayProgramme records a lecture with the programme on: the list shows the
// programme's recording as the lecture (role programme), its GET names the
// trainer's own recording as a source, the trainer's names the lecture; all=true
// lists both; ffprobe plays the programme's recording.
func TestReplayProgramme(t *testing.T) {
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{programme: true, recorder: true, pages: pages, timeout: 3 * time.Minute})
	c := programmeClip(t)
	id := s.createSession("Chuyển đổi số - Bài 12")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	var loc string
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, &loc))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err = c.Play(s.ctx, clip.PlayOptions{
		WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
		WriteAudio: func(p *rtp.Packet) error { return pub.Audio.WriteRTP(p) },
	}); err != nil {
		t.Fatal(err)
	}
	if resp, body := s.do("DELETE", loc, trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("WHIP DELETE: %d %s", resp.StatusCode, body)
	}
	list := func(query string) []recordingSummary {
		t.Helper()
		resp, body := s.do("GET", "/api/recordings?session="+id+query, learner, "", "")
		var page recordingPage
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("list%s: %d %s", query, resp.StatusCode, body)
		}
		return page.Recordings
	}
	var all []recordingSummary
	testenv.WaitFor(s.ctx, t, "two complete recordings (the programme's, the trainer's)", func() bool {
		all = list("&all=true")
		done := 0
		for _, r := range all {
			if r.Status == recorder.StatusComplete {
				done++
			}
		}
		return done == 2
	})
	var prog, own recordingSummary
	for _, r := range all {
		switch r.Publication {
		case "programme":
			prog = r
		case "trainer":
			own = r
		}
	}
	if prog.Role != recorder.RoleProgramme || own.Role != recorder.RoleSource {
		t.Fatalf("all recordings: %+v, want the programme's (role programme) and the trainer's (role source)", all)
	}
	if lectures := list(""); len(lectures) != 1 || lectures[0].ID != prog.ID {
		t.Fatalf("the lectures: %+v, want the programme's recording alone", lectures)
	}
	if resp, body := s.do("GET", "/api/recordings?all=maybe", learner, "", ""); resp.StatusCode != 400 {
		t.Fatalf("all=maybe: %d %s", resp.StatusCode, body)
	}
	get := func(rid string) recordingView {
		t.Helper()
		resp, body := s.do("GET", "/api/recordings/"+rid, learner, "", "")
		var v recordingView
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("GET %s: %d %s", rid, resp.StatusCode, body)
		}
		return v
	}
	if v := get(prog.ID); len(v.Sources) != 1 || v.Sources[0].ID != own.ID || v.Sources[0].Publication != "trainer" ||
		v.Sources[0].Page != "/replays/"+own.ID || v.Lecture != nil || v.Role != recorder.RoleProgramme {
		t.Fatalf("the lecture: sources %+v, lecture %+v, role %q; want the trainer's recording as its source", v.Sources, v.Lecture, v.Role)
	}
	// An embed of the lecture plays it alone: it is not told of the other recordings.
	resp, body := s.do("POST", "/api/recordings/"+prog.ID+"/embeds", testAdmin, "application/json", `{}`)
	var emb struct{ Token string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &emb) != nil {
		t.Fatalf("embed: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/api/recordings/"+prog.ID, emb.Token, "", ""); resp.StatusCode != 200 || strings.Contains(body, `"sources"`) {
		t.Fatalf("the lecture for its embed: %d %s", resp.StatusCode, body)
	}
	if v := get(own.ID); v.Lecture == nil || v.Lecture.ID != prog.ID || len(v.Sources) != 0 {
		t.Fatalf("the trainer's recording: lecture %+v, sources %+v; want the programme's as its lecture", v.Lecture, v.Sources)
	}
	got := testrec.FFprobe(t, s.url+"/replay/"+prog.ID+"/download.mp4?token="+learner)
	if got.VideoFrames < len(c.Video)*3/4 || got.Duration < c.Duration.Seconds()*3/4 {
		t.Fatalf("the programme's recording: %+v, want about %v and %d frames", got, c.Duration, len(c.Video))
	}

	// The replay page of the lecture lists the trainer's own recording under
	// "Bản ghi riêng"; its page links back to the lecture.
	b := newBrowser(t)
	page := b.tab("replay-programme")
	page.open(s.url + "/replays/" + prog.ID + "?token=" + learner)
	page.waitJS("the separate recordings listed", `!document.getElementById('sources').hidden && document.querySelectorAll('#source-list li').length === 1`, 30*time.Second)
	if got := page.text("#sources-heading"); got != "Bản ghi riêng" {
		t.Errorf("heading %q, want Bản ghi riêng", got)
	}
	if got := page.text(`#source-list li[data-recording="` + own.ID + `"] a`); got != "Giảng viên" {
		t.Errorf("the trainer's recording is listed as %q", got)
	}
	page.click("#lang-switch")
	page.waitJS("in English", `document.getElementById('sources-heading').textContent === 'Separate recordings' && document.querySelector('#source-list a').textContent === 'Trainer'`, 5*time.Second)
	page.click("#source-list a")
	page.waitJS("the trainer's page links to the lecture", `location.pathname === '/replays/`+own.ID+`' && !document.getElementById('lecture-link').hidden && document.getElementById('lecture-href').getAttribute('href').startsWith('/replays/`+prog.ID+`')`, 30*time.Second)
	if !page.hidden("#sources") {
		t.Errorf("a source's own page lists separate recordings")
	}
	page.noConsoleErrors()
}
