package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
)

// chapteredReplay records a real lecture (a pion publisher through the stack's
// recorder) during which the trainer gives the floor to the classroom Huế (its
// hand raised over HTTP, the floor granted and taken back over HTTP: the
// floor's hook marks the recording's timeline). It returns the stack, the
// recording, a learner token of the session and the recording as it was
// before the floor was given (no timeline yet).
func chapteredReplay(t *testing.T) (*stack, recordingSummary, string, recordingView) {
	t.Helper()
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{pages: pages, recorder: true, timeout: 5 * time.Minute})
	id := s.createSession("Bài giảng có câu hỏi")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	resp, body := s.do("POST", "/api/sessions/"+id+"/tokens", testAdmin, "application/json", `{"role":"site","name":"hue","display":"Huế","ttl":"1h"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint the classroom's token: %d %s", resp.StatusCode, body)
	}
	var site mintResponse
	_ = json.Unmarshal([]byte(body), &site)

	stop := publishClip(t, s, id, trainer)
	stored := func(seconds float64) recordingView {
		t.Helper()
		var v recordingView
		eventually(t, fmt.Sprintf("%.0f s of stored recording", seconds), 90*time.Second, func() bool {
			var page recordingPage
			apiGet(t, s, "/api/recordings?session="+id, &page)
			if len(page.Recordings) != 1 {
				return false
			}
			apiGet(t, s, "/api/recordings/"+page.Recordings[0].ID, &v)
			return v.Duration >= seconds
		})
		return v
	}
	before := stored(2)
	// No timeline yet: no chapters track, a master playlist without subtitles.
	if resp, body := s.do("GET", "/replay/"+before.ID+"/chapters.vtt", learner, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("chapters.vtt of a recording without a timeline: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/replay/"+before.ID+"/master.m3u8", learner, "", ""); resp.StatusCode != http.StatusOK || strings.Contains(body, "SUBTITLES") {
		t.Errorf("master.m3u8 of a recording without a timeline: %d\n%s", resp.StatusCode, body)
	}
	for _, c := range []struct{ method, path, token string }{
		{"POST", "/api/sessions/" + id + "/hands", site.Token},
		{"PUT", "/api/sessions/" + id + "/speakers/hue", trainer},
	} {
		if resp, body := s.do(c.method, c.path, c.token, "", ""); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	granted := stored(4)
	if resp, body := s.do("DELETE", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("take the floor back: %d %s", resp.StatusCode, body)
	}
	t.Logf("floor given after %.1f s of recording, taken back after about %.1f s", before.Duration, granted.Duration)
	rec := recordedLecture(t, s, id, 7, stop)
	return s, rec, learner, before
}

// TestReplayChapters: a recording with a timeline has chapters in the API, a
// WebVTT chapters track in both languages, and a master playlist naming it that
// ffmpeg plays, subtitle stream included; a recording without one has neither
// (its links are as before). Then the replay page in Chromium lists the
// chapters in Vietnamese and English, hls.js reads the chapters track from the
// master playlist, and a click on "Câu hỏi từ Huế" seeks the video there.
func TestReplayChapters(t *testing.T) {
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	s, rec, learner, before := chapteredReplay(t)

	if before.Chapters != nil || before.Links["master"] != "" || before.Links["chapters"] != "" {
		t.Errorf("a recording without a timeline: chapters %+v, links %v", before.Chapters, before.Links)
	}
	if code := apiGet(t, s, "/replay/"+rec.ID+"/chapters.vtt", nil); code != http.StatusOK {
		t.Fatalf("chapters.vtt: %d", code)
	}
	var v recordingView
	apiGet(t, s, "/api/recordings/"+rec.ID, &v)
	t.Logf("timeline %+v, chapters %+v", v.Timeline, v.Chapters)
	if len(v.Chapters) != 3 || v.Chapters[0].Kind != ChapterLecture || v.Chapters[2].Kind != ChapterLecture ||
		v.Chapters[1] != (Chapter{Start: v.Chapters[1].Start, End: v.Chapters[1].End, Kind: ChapterQuestion, Participant: "hue", Name: "Huế"}) ||
		v.Chapters[1].Start < 1.5 || v.Chapters[1].End-v.Chapters[1].Start < 1 || v.Chapters[2].End != v.Duration {
		t.Fatalf("chapters %+v of a %.1f s recording; want the lecture, Huế's question from about 2 s, the lecture", v.Chapters, v.Duration)
	}
	q := v.Chapters[1]
	if v.Links["master"] != "/replay/"+rec.ID+"/master.m3u8" {
		t.Errorf("links %v", v.Links)
	}

	get := func(path string) (int, string, string) {
		resp, body := s.do("GET", path, learner, "", "")
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	base := "/replay/" + rec.ID + "/"
	for _, c := range []struct{ path, ctype, has string }{
		{"chapters.vtt", "text/vtt", vttTime(q.Start) + " --> " + vttTime(q.End) + "\nCâu hỏi từ Huế\n"},
		{"chapters.vtt?lang=en", "text/vtt", vttTime(q.Start) + " --> " + vttTime(q.End) + "\nQuestion from Huế\n"},
		{"chapters-en.vtt", "text/vtt", "\nLecture\n"},
		{"chapters-vi.m3u8", "application/vnd.apple.mpegurl", "chapters-vi.vtt\n#EXT-X-ENDLIST\n"},
		{"master.m3u8", "application/vnd.apple.mpegurl", `SUBTITLES="chapters"` + "\nindex.m3u8\n"},
	} {
		code, ctype, body := get(base + c.path)
		if code != http.StatusOK || !strings.HasPrefix(ctype, c.ctype) || !strings.Contains(body, c.has) {
			t.Errorf("%s: %d %s\n%s\nwant it to hold %q", c.path, code, ctype, body, c.has)
		}
	}
	if resp, _ := s.do("HEAD", base+"master.m3u8", learner, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD master.m3u8: %d", resp.StatusCode)
	}
	if code, _, body := get(base + "chapters.vtt?lang=fr"); code != http.StatusBadRequest {
		t.Errorf("lang=fr: %d %s", code, body)
	}
	if resp, _ := s.do("GET", base+"chapters.vtt", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("chapters without a token: %d", resp.StatusCode)
	}

	// ffmpeg plays the master playlist (the player's token in the query, as
	// players without headers do). ffmpeg 5 reads the chapters' EXT-X-MEDIA and
	// declines WebVTT renditions of a master ("Can't support the subtitle"); it
	// reads the chapters track's own playlist, a WebVTT stream.
	masterURL := s.url + base + "master.m3u8?token=" + learner
	p := testrec.FFprobe(t, masterURL)
	if p.VideoFrames < 100 || p.AudioFrames < 100 || p.Duration < 6 {
		t.Errorf("the master playlist plays %+v", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ffprobe := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	if out, err := exec.CommandContext(ctx, ffprobe, "-v", "verbose", masterURL).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "subtitle(uri: chapters-vi.m3u8?token=") || !strings.Contains(string(out), "subtitle(uri: chapters-en.m3u8?token=") {
		t.Errorf("ffprobe of the master playlist does not name the chapters tracks (%v):\n%s", err, out)
	}
	for lang, title := range map[string]string{"vi": "Câu hỏi từ Huế", "en": "Question from Huế"} {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-i", s.url+base+"chapters-"+lang+".m3u8?token="+learner, "-f", "webvtt", "-")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ffmpeg reading the %s chapters track: %v\n%s", lang, err, stderr.String())
		}
		if !strings.Contains(string(out), " --> ") || !strings.Contains(string(out), "\n"+title+"\n") {
			t.Errorf("the %s chapters track as ffmpeg reads it:\n%s", lang, out)
		}
	}

	// The replay page.
	b := newBrowser(t)
	player := b.tab("replay-chapters")
	player.open(s.url + "/replays/" + rec.ID + "?token=" + learner)
	player.waitJS("player ready", `!!(window.lectern && window.lectern.player) && document.getElementById('video').readyState >= 1`, 30*time.Second)
	player.waitJS("chapters listed", `document.querySelectorAll('#chapter-list button.chapter').length === 3 && !document.getElementById('chapters').hidden`, 10*time.Second)
	if got := player.text(`#chapter-list button[data-chapter="1"] .chapter-title`); got != "Câu hỏi từ Huế" {
		t.Errorf("second chapter %q", got)
	}
	var subs []map[string]string
	player.waitJS("hls.js read the master playlist", `Array.isArray(window.lectern.player.subtitles)`, 10*time.Second)
	if err := player.eval(`window.lectern.player.subtitles`, &subs); err != nil || len(subs) != 2 || subs[0]["lang"] != "vi" || subs[1]["name"] != "Chapters" || subs[0]["group"] != "chapters" {
		t.Errorf("hls.js subtitle tracks %v, %v", subs, err)
	}
	player.click(`#chapter-list button[data-chapter="1"]`)
	player.waitJS("seeked to the question", fmt.Sprintf(`(() => { const v = document.getElementById('video'); return v.currentTime >= %f && v.currentTime < %f; })()`, q.Start-0.1, q.End), 10*time.Second)
	player.waitJS("the question highlighted", `document.querySelector('#chapter-list button[data-chapter="1"]').getAttribute('aria-current') === 'true'`, 10*time.Second)
	player.screenshot("replay-chapters")
	player.click("#lang-switch")
	player.waitJS("chapters in English", `document.querySelector('#chapter-list button[data-chapter="1"] .chapter-title').textContent === 'Question from Huế'`, 5*time.Second)
	if got := player.text("#chapters-heading"); got != "Chapters of the lecture" {
		t.Errorf("English heading %q", got)
	}
	player.noPlaybackError()
	player.noConsoleErrors()
}
