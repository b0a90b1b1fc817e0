package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
	"lectern/recorder"
)

// chapteredReplay records a real lecture (a pion publisher through the
// recorder of a first stack), gives its meta.json and the index a timeline (Huế
// holds the floor from 2 s to 4 s), and serves the store from a second stack
// with the pages, whose recorder loads that index. It returns the second
// stack, the recording, a learner token of the session and the first stack's
// view of the recording (before the timeline).
func chapteredReplay(t *testing.T) (*stack, recordingSummary, string, recordingView) {
	t.Helper()
	d := testrec.DirStore(t)
	s1 := newStack(t, stackOptions{recorder: true, store: d, timeout: 5 * time.Minute})
	id := s1.createSession("Bài giảng có câu hỏi")
	trainer := s1.token(id, auth.RoleTrainer, "trainer")
	learner := s1.token(id, auth.RoleLearner, "hv1") // the same secret signs the second stack's tokens
	rec := recordedLecture(t, s1, id, 6, publishClip(t, s1, id, trainer))
	var before recordingView
	apiGet(t, s1, "/api/recordings/"+rec.ID, &before)

	timeline := []recorder.TimelineEntry{
		{At: 1, Type: recorder.TimelineHand, Participant: "site-hue", Name: "Huế"},
		{At: 2, Type: recorder.TimelineFloor, Participant: "site-hue", Name: "Huế"},
		{At: 4, Type: recorder.TimelineFloorEnd, Participant: "site-hue"},
	}
	ctx := context.Background()
	patch := func(key string, change func(map[string]any)) {
		t.Helper()
		rc, _, err := d.Open(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		err = json.NewDecoder(rc).Decode(&doc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		change(doc)
		b, _ := json.Marshal(doc)
		if err := d.Put(ctx, key, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	patch(before.Prefix+"meta.json", func(m map[string]any) { m["timeline"] = timeline })
	eventually(t, "the index to hold the finished recording", 30*time.Second, func() bool {
		rc, _, err := d.Open(ctx, "recordings/index.json", 0, -1)
		if err != nil {
			return false
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return bytes.Contains(b, []byte(`"status":"complete"`))
	})
	patch("recordings/index.json", func(ix map[string]any) {
		for _, m := range ix["recordings"].([]any) {
			if m := m.(map[string]any); m["id"] == rec.ID {
				m["timeline"] = timeline
			}
		}
	})
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s2 := newStack(t, stackOptions{pages: pages, recorder: true, store: d, timeout: 5 * time.Minute})
	return s2, rec, learner, before
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
	want := []Chapter{{Start: 0, End: 2, Kind: ChapterLecture}, {Start: 2, End: 4, Kind: ChapterQuestion, Participant: "site-hue", Name: "Huế"},
		{Start: 4, End: v.Duration, Kind: ChapterLecture}}
	if len(v.Chapters) != 3 || v.Chapters[1] != want[1] || v.Chapters[2] != want[2] {
		t.Fatalf("chapters %+v; want %+v", v.Chapters, want)
	}
	if v.Links["master"] != "/replay/"+rec.ID+"/master.m3u8" {
		t.Errorf("links %v", v.Links)
	}

	get := func(path string) (int, string, string) {
		resp, body := s.do("GET", path, learner, "", "")
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	base := "/replay/" + rec.ID + "/"
	for _, c := range []struct{ path, ctype, has string }{
		{"chapters.vtt", "text/vtt", "00:00:02.000 --> 00:00:04.000\nCâu hỏi từ Huế\n"},
		{"chapters.vtt?lang=en", "text/vtt", "00:00:02.000 --> 00:00:04.000\nQuestion from Huế\n"},
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
		if !strings.Contains(string(out), "00:02.000 --> 00:04.000\n"+title+"\n") {
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
	player.waitJS("seeked to the question", `(() => { const v = document.getElementById('video'); return v.currentTime >= 1.9 && v.currentTime < 4; })()`, 10*time.Second)
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
