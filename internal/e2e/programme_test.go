package e2e

// Acceptance tests of the programme (issue 12), against the lectern binary: a
// trainer publishing a 440 Hz tone, a classroom given the floor publishing
// 1 kHz; what /whep/{session}, rtsp://…/{session} and the session's main
// recording carry is decoded and measured.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
)

// The test sources: the trainer's camera (testsrc, 320x240) with a 440 Hz
// tone, a classroom's (SMPTE bars, 640x360) with a 1 kHz tone; a keyframe
// every second, so a switch of the programme's picture waits at most that.
func trainerClip(t *testing.T) *clip.Clip {
	return testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "testsrc", Width: 320, Height: 240, FPS: 30, GOP: 30, Tone: trainerTone, Duration: 10 * time.Second})
}

func siteClip(t *testing.T) *clip.Clip {
	return testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "smptebars", Width: 640, Height: 360, FPS: 30, GOP: 30, Tone: siteTone, Duration: 10 * time.Second})
}

// lecture is a running session with its trainer publishing, a classroom (Huế)
// that may be given the floor, and a generic WHEP viewer of /whep/{session}.
type lecture struct {
	*app
	id                           string
	trainerTok, siteTok, viewTok string
	trainer                      *source
	viewer                       *viewer
	began                        time.Time // when the trainer started publishing
}

// startLecture starts the binary, creates a session with the given extra JSON
// fields (e.g. `"programme_video":"speaker"`), publishes the trainer and
// connects a viewer, and waits until the viewer has a second of sound.
func startLecture(t *testing.T, ctx context.Context, fields string) *lecture {
	t.Helper()
	return startLectureWith(t, ctx, fields, func(l *lecture) { l.trainer = l.publish(l.id, l.trainerTok, trainerClip(t)) })
}

// programmeLecture skips an end-to-end test under -short (it takes about,
// e.g. "20 s"), then starts a lecture (startLecture with fields) under a
// context of 3 minutes, cancelled as the test function returns (the cleanup
// registered last runs first), or as it fails to start.
func programmeLecture(t *testing.T, about, fields string) (context.Context, *lecture) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: the lectern binary, pion peers and ffmpeg for about " + about)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	l := startLecture(t, ctx, fields)
	t.Cleanup(cancel)
	return ctx, l
}

// startLectureWith is startLecture with the trainer published by publish.
func startLectureWith(t *testing.T, ctx context.Context, fields string, publish func(l *lecture)) *lecture {
	t.Helper()
	trainerClip(t) // made before the clock of the lecture runs
	siteClip(t)
	l := &lecture{app: startApp(t, ctx)}
	body := `{"title":"Chuyển đổi số - Bài 12"`
	if fields != "" {
		body += "," + fields
	}
	var created string
	l.id, created = l.createSession(body + "}")
	t.Logf("session %s", created)
	l.trainerTok = l.token(l.id, "trainer", "trainer", "Giảng viên")
	l.siteTok = l.token(l.id, "site", "hue", "Huế")
	l.viewTok = l.token(l.id, "viewer", "hall", "Hội trường")
	l.began = time.Now()
	publish(l)
	l.viewer = l.watch("/whep/"+l.id, l.viewTok)
	l.viewer.waitAudio(t, ctx, 50)
	return l
}

// floorRound plays the trainer alone for 2 s, gives Huế the floor (floor) for
// 4 s, takes it back, plays 3 s more and stops Huế's publisher; it returns the
// moments the trainer alone was heard until, Huế spoke, the floor was revoked
// and the round ended.
func (l *lecture) floorRound(t *testing.T, ctx context.Context) (start, spoke, revoked, end time.Time) {
	t.Helper()
	start = l.mediaFor(t, ctx, 2*time.Second)
	site, spoke := l.floor(t, ctx)
	l.mediaFor(t, ctx, 4*time.Second)
	revoked = time.Now()
	l.revoke(l.id, "hue", l.trainerTok)
	end = l.mediaFor(t, ctx, 3*time.Second)
	site.stop()
	return start, spoke, revoked, end
}

// floor gives Huế the floor and publishes its camera and microphone; it
// returns the classroom's source and when its first audio packet went out.
func (l *lecture) floor(t *testing.T, ctx context.Context) (*source, time.Time) {
	t.Helper()
	l.grant(l.id, "hue", l.siteTok, l.trainerTok)
	site := l.publish(l.id, l.siteTok, siteClip(t))
	testenv.WaitFor(ctx, t, "the classroom's first audio packet", func() bool { return !site.firstAudioAt().IsZero() })
	return site, site.firstAudioAt()
}

// mediaFor waits until the viewer has received d more of audio (20 ms packets):
// the lecture's phases are measured in media, not in wall-clock time. A
// programme that stopped fails the test within 20 s, not at its deadline.
func (l *lecture) mediaFor(t *testing.T, ctx context.Context, d time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	a, _ := l.viewer.packets()
	l.viewer.waitAudio(t, ctx, len(a)+int(d/(20*time.Millisecond)))
	return time.Now()
}

// rtspRecord starts ffmpeg reading the session's programme over RTSP (TCP)
// into a Matroska file, as a hall's decoder would read it; stop ends it and
// returns the file.
func (l *lecture) rtspRecord(t *testing.T) (stop func() string) {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	out := filepath.Join(t.TempDir(), "rtsp.mkv")
	halt := testenv.StartBackground(t, exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning",
		"-rtsp_transport", "tcp", "-i", l.rtspURL(l.id, l.viewTok), "-map", "0", "-c", "copy", "-f", "matroska", out))
	return func() string {
		if stderr := halt(); !fileExists(out) {
			t.Fatalf("ffmpeg reading RTSP wrote nothing:\n%s", stderr)
		}
		return out
	}
}

// TestProgrammeFloorAudio: while Huế holds the floor, the programme that a
// generic WHEP player (/whep/{session}) and an RTSP reader (ffmpeg) get
// carries both the trainer's 440 Hz and the classroom's 1 kHz; before and
// after, 440 Hz only. The audio of the WHEP player and of an RTSP reader has no
// gap in its sequence numbers and timestamps across both switches.
func TestProgrammeFloorAudio(t *testing.T) {
	ctx, l := programmeLecture(t, "20 s", "")
	stopRTSP := l.rtspRecord(t)
	reader := l.readRTSP(l.rtspURL(l.id, l.viewTok))
	start, spoke, revoked, end := l.floorRound(t, ctx)
	file := stopRTSP()

	audio, _ := l.viewer.packets()
	checkContinuous(t, "WHEP programme audio", audio, 960)
	checkForwarded(t, audio, trainerClip(t), start.Add(-time.Second), start, revoked.Add(time.Second), end)
	h := decodeAudio(t, audio)
	// Margins: a second for the mix to take in the classroom (its jitter buffer,
	// the first packets), one for it to let go after the floor is taken back.
	checkTones(t, "WHEP, before the floor", toneWindows(h, start.Add(-time.Second), start), false, 3)
	checkTones(t, "WHEP, the floor held", toneWindows(h, spoke.Add(time.Second), revoked), true, 10)
	checkTones(t, "WHEP, after the floor", toneWindows(h, revoked.Add(time.Second), end), false, 7)

	// An RTSP reader decoded in-process: the same, and continuous too.
	audio = reader.packets()
	checkContinuous(t, "RTSP programme audio", audio, 960)
	h = decodeAudio(t, audio)
	checkTones(t, "RTSP, before the floor", toneWindows(h, start.Add(-time.Second), start), false, 3)
	checkTones(t, "RTSP, the floor held", toneWindows(h, spoke.Add(time.Second), revoked), true, 10)
	checkTones(t, "RTSP, after the floor", toneWindows(h, revoked.Add(time.Second), end), false, 7)

	checkFileTones(t, "ffmpeg's recording of RTSP", file, 4*time.Second)

	// The metrics saw it: audio switched to mixing and back, time spent mixing,
	// no session mixing any more.
	if sw, mix, now := l.metric(`lectern_programme_switches_total{kind="audio"}`), l.metric("lectern_programme_mix_seconds_total"),
		l.metric("lectern_programme_mixing_sessions"); sw < 2 || mix <= 0 || now != 0 {
		t.Errorf("metrics: %v audio switches, %v s mixing, %v sessions mixing now; want ≥ 2, > 0, 0", sw, mix, now)
	}
}

// checkForwarded fails the test unless the programme's audio packets that
// arrived in [from1, to1) and [from2, to2) (the trainer alone) are the trainer's
// own Opus packets, byte for byte: forwarded untouched, not decoded and
// encoded again.
func checkForwarded(t *testing.T, audio []captured, c *clip.Clip, from1, to1, from2, to2 time.Time) {
	t.Helper()
	own := make(map[string]bool, len(c.Audio))
	for _, f := range c.Audio {
		own[string(f.Data)] = true
	}
	n, foreign := 0, 0
	for _, p := range audio {
		if (p.at.Before(from1) || !p.at.Before(to1)) && (p.at.Before(from2) || !p.at.Before(to2)) {
			continue
		}
		n++
		if !own[string(p.pkt.Payload)] {
			foreign++
		}
	}
	if n < 50 || foreign > 0 {
		t.Errorf("the trainer alone: %d of %d programme audio packets are not the trainer's own (want every one forwarded untouched, and ≥ 50)", foreign, n)
	}
}

// checkFileTones measures both tones in a file's audio (250 ms windows) with
// ffmpeg: 440 Hz throughout; 1 kHz in one stretch about as long as the floor
// was held (floor), with trainer-only sound before and after it.
func checkFileTones(t *testing.T, what, file string, floor time.Duration) {
	t.Helper()
	const window = 250 * time.Millisecond
	low := testenv.ToneLevels(t, file, trainerTone, window)
	high := testenv.ToneLevels(t, file, siteTone, window)
	dump := func() string {
		s := ""
		for i := range low {
			s += fmt.Sprintf("%6.2f s  440 Hz %6.1f dB  1 kHz %6.1f dB\n", low[i].At, low[i].RMS, high[min(i, len(high)-1)].RMS)
		}
		return s
	}
	// Each clip's sine measures about -24 dBFS alone (a 1/8 sine upmixed to
	// stereo at -3 dB); a mix may halve each (-30).
	const present, absent = -36.0, -50.0
	first, last := -1, -1
	for i := range high {
		if high[i].RMS >= present {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	switch {
	case len(low) < int(floor/window)+8 || len(high) != len(low):
		t.Fatalf("%s: %d and %d windows of sound, too short:\n%s", what, len(low), len(high), dump())
	case first < 0:
		t.Fatalf("%s: no 1 kHz (the classroom) anywhere:\n%s", what, dump())
	}
	bad := 0
	for i := range low {
		// The first and last windows may be cut short by ffmpeg's start and stop.
		if i > 0 && i < len(low)-1 && low[i].RMS < present {
			bad++
			t.Errorf("%s: no 440 Hz (the trainer) at %.2f s", what, low[i].At)
		}
		inside := i >= first && i <= last
		switch {
		case inside && high[i].RMS < present:
			bad++
			t.Errorf("%s: the 1 kHz stretch is broken at %.2f s (%.1f dB)", what, high[i].At, high[i].RMS)
		case !inside && i != first-1 && i != last+1 && high[i].RMS > absent:
			bad++
			t.Errorf("%s: 1 kHz outside the floor at %.2f s (%.1f dB)", what, high[i].At, high[i].RMS)
		}
	}
	held := time.Duration(last-first+1) * window
	if held < floor-time.Second || held > floor+time.Second {
		bad++
		t.Errorf("%s: 1 kHz for %v, the floor was held about %v", what, held, floor)
	}
	if first < 4 || len(high)-1-last < 6 {
		bad++
		t.Errorf("%s: 1 kHz from window %d to %d of %d: want trainer-only sound before (≥ 1 s) and after (≥ 1.5 s)", what, first, last, len(high))
	}
	if bad > 0 {
		t.Logf("%s:\n%s", what, dump())
	}
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() > 0
}

// TestProgrammeRecording: the session's main recording is the programme's:
// played back with ffmpeg it has both tones while Huế held the floor and 440 Hz
// only before and after; its duration and frame counts are the lecture's;
// meta.json holds the lecture's timeline (the floor given to Huế, taken back),
// the API its chapters (the lecture, Huế's question, the lecture), and the HLS
// replay a master playlist with a WebVTT chapters track naming the question.
// The trainer's and the classroom's own recordings stay, as sources.
func TestProgrammeRecording(t *testing.T) {
	ctx, l := programmeLecture(t, "25 s", "")
	l.mediaFor(t, ctx, 2*time.Second)
	granted := time.Now()
	site, _ := l.floor(t, ctx)
	l.mediaFor(t, ctx, 4*time.Second)
	revoked := time.Now()
	l.revoke(l.id, "hue", l.trainerTok)
	l.mediaFor(t, ctx, 3*time.Second)
	site.stop()
	l.trainer.stop() // the lecture ends: no grace, its recordings are finalised
	ended := time.Now()
	lecture := ended.Sub(l.began).Seconds()

	main, own := l.recordings(t, ctx)
	t.Logf("programme recording %s: %.2f s (the lecture %.2f s), timeline %+v, chapters %+v", main.ID, main.Duration, lecture, main.Timeline, main.Chapters)

	// meta.json as stored holds the timeline.
	var stored recordingView
	readMeta(t, l.data, main.ID, &stored)
	var floorAt, endAt float64 = -1, -1
	for _, e := range stored.Timeline {
		switch {
		case e.Type == "floor" && e.Participant == "hue" && e.Name == "Huế":
			floorAt = e.At
		case e.Type == "floor_end" && e.Participant == "hue":
			endAt = e.At
		}
	}
	wantFloor, wantEnd := granted.Sub(main.StartedAt).Seconds(), revoked.Sub(main.StartedAt).Seconds()
	if floorAt < 0 || endAt < 0 || fabs(floorAt-wantFloor) > 1 || fabs(endAt-wantEnd) > 1 {
		t.Errorf("meta.json timeline %+v: want the floor given to Huế at about %.1f s and taken back at about %.1f s", stored.Timeline, wantFloor, wantEnd)
	}
	if len(main.Chapters) != 3 || main.Chapters[1].Kind != "question" || main.Chapters[1].Participant != "hue" ||
		fabs(main.Chapters[1].Start-wantFloor) > 1 || fabs(main.Chapters[1].End-wantEnd) > 1 {
		t.Errorf("chapters %+v: want the lecture, Huế's question from about %.1f s to %.1f s, the lecture", main.Chapters, wantFloor, wantEnd)
	}
	base := "/replay/" + main.ID + "/"
	for path, has := range map[string]string{"master.m3u8": `SUBTITLES="chapters"`, "chapters.vtt": "Câu hỏi từ Huế", "chapters.vtt?lang=en": "Question from Huế"} {
		if code, body := l.do("GET", base+path, appAdmin, "", ""); code != 200 || !strings.Contains(body, has) {
			t.Errorf("%s: %d, want it to hold %q:\n%s", path, code, has, body)
		}
	}

	// The programme's MP4 as a learner downloads it.
	file := filepath.Join(t.TempDir(), "programme.mp4")
	download(t, l.base+base+"download.mp4?token="+appAdmin, file)
	p := testrec.FFprobe(t, file)
	t.Logf("ffprobe of the programme's download: %+v", p)
	// A recording starts at the first keyframe it gets and ends with the
	// trainer. The test's publishers send one every second and ignore keyframe
	// requests (a browser or OBS answers them), so the programme's recording,
	// which joins the trainer's camera a moment after the trainer's own, may
	// start up to a second later. The last frames' durations may add a few
	// tens of milliseconds to the file.
	if fabs(p.Duration-main.Duration) > 0.5 || fabs(main.Duration-own.Duration) > 1.1 || fabs(p.Duration-lecture) > 1.5 {
		t.Errorf("the download plays %.2f s; the recording says %.2f s, the trainer's own %.2f s; the lecture lasted %.2f s", p.Duration, main.Duration, own.Duration, lecture)
	}
	if fabs(float64(p.VideoFrames)-30*p.Duration) > 0.05*30*p.Duration || fabs(float64(p.AudioFrames)-50*p.Duration) > 0.05*50*p.Duration {
		t.Errorf("%d video frames (30/s) and %d audio frames (50/s) in %.2f s", p.VideoFrames, p.AudioFrames, p.Duration)
	}
	checkFileTones(t, "the programme's recording", file, revoked.Sub(granted))
}

// recordings waits until the session's recordings (the programme's, the
// trainer's and Huế's) are complete after the lecture ended, and returns the
// programme's (checked to be the main one, the only one the catalogue of
// lectures lists) and the trainer's own.
func (l *lecture) recordings(t *testing.T, ctx context.Context) (main, own recordingView) {
	t.Helper()
	type summary struct {
		ID          string `json:"id"`
		Publication string `json:"publication"`
		Status      string `json:"status"`
	}
	var recs []summary
	testenv.WaitFor(ctx, t, "the session's recordings complete", func() bool {
		var page struct{ Recordings []summary }
		l.getJSON("/api/recordings?all=true&session="+l.id, &page)
		recs = page.Recordings
		n := 0
		for _, r := range recs {
			if r.Status == "complete" {
				n++
			}
		}
		return n == len(recs) && n >= 3
	})
	pubs := map[string]string{}
	for _, r := range recs {
		var v recordingView
		l.getJSON("/api/recordings/"+r.ID, &v)
		pubs[r.Publication] = v.Role
		if v.Publication == "trainer" {
			own = v
		}
		if v.Role == "programme" {
			if main.ID != "" {
				t.Fatalf("two programme recordings: %s and %s", main.ID, v.ID)
			}
			main = v
		}
	}
	if main.ID == "" || main.Publication != "programme" || pubs["trainer"] != "source" || pubs["site-hue"] != "source" {
		t.Fatalf("recordings by publication and role %v; want the programme's (the main one) and the trainer's and Huế's as sources", pubs)
	}
	var lectures struct{ Recordings []summary }
	l.getJSON("/api/recordings?session="+l.id, &lectures)
	if len(lectures.Recordings) != 1 || lectures.Recordings[0].ID != main.ID {
		t.Errorf("the session's lectures %+v, want its programme recording %s alone", lectures.Recordings, main.ID)
	}
	return main, own
}

// recordingView is the part of GET /api/recordings/{id} (and meta.json) the
// tests read.
type recordingView struct {
	ID          string    `json:"id"`
	Publication string    `json:"publication"`
	Role        string    `json:"role"`
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"started_at"`
	Duration    float64   `json:"duration"`
	Timeline    []struct {
		At          float64 `json:"at"`
		Type        string  `json:"type"`
		Participant string  `json:"participant"`
		Name        string  `json:"name"`
	} `json:"timeline"`
	Chapters []struct {
		Start       float64 `json:"start"`
		End         float64 `json:"end"`
		Kind        string  `json:"kind"`
		Participant string  `json:"participant"`
		Name        string  `json:"name"`
	} `json:"chapters"`
}

// readMeta reads the meta.json of recording id from the binary's local store
// (under its data directory).
func readMeta(t *testing.T, dataDir, id string, v any) {
	t.Helper()
	var found string
	_ = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "meta.json" && strings.Contains(path, id) && !strings.Contains(path, "spool") {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no meta.json of %s under %s", id, dataDir)
	}
	b, err := os.ReadFile(found)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", found, err)
	}
}

// download GETs url into the file path.
func download(t *testing.T, url, path string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
}

func fabs(x float64) float64 { return math.Abs(x) }

// TestProgrammeVideoSpeaker: in a session with programme_video "speaker", the
// picture a generic WHEP player gets is the trainer's camera (testsrc,
// 320x240), Huế's (SMPTE bars, 640x360) while it holds the floor, and the
// trainer's again once the floor is taken back: one track, one SSRC, no gap in
// sequence numbers and no new negotiation, each switch at a keyframe; ffmpeg
// decodes the whole of it. An RTSP reader's picture and the programme's
// recording switch alike.
func TestProgrammeVideoSpeaker(t *testing.T) {
	ctx, l := programmeLecture(t, "20 s", `"programme_video":"speaker"`)
	var sess struct {
		ProgrammeVideo string `json:"programme_video"`
	}
	l.getJSON("/api/sessions/"+l.id, &sess)
	if sess.ProgrammeVideo != "speaker" {
		t.Fatalf("session programme_video %q, want speaker", sess.ProgrammeVideo)
	}
	// A setting it does not know is refused with the reason.
	if code, body := l.do("POST", "/api/sessions", appAdmin, "application/json", `{"title":"T","programme_video":"picture-in-picture"}`); code != http.StatusBadRequest || !strings.Contains(body, "programme_video") {
		t.Errorf("programme_video picture-in-picture: %d %s; want 400 naming programme_video", code, body)
	}
	reader := l.readRTSP(l.rtspURL(l.id, l.viewTok))
	l.mediaFor(t, ctx, 2*time.Second)
	site, _ := l.floor(t, ctx)
	l.mediaFor(t, ctx, 4*time.Second)
	l.revoke(l.id, "hue", l.trainerTok)
	l.mediaFor(t, ctx, 3*time.Second)
	site.stop()
	remote := l.viewer.sub.PC.RemoteDescription().SDP

	_, video := l.viewer.packets()
	ssrcs := map[uint32]int{}
	for _, c := range video {
		ssrcs[uint32(c.pkt.SSRC)]++
	}
	if len(ssrcs) != 1 {
		t.Errorf("video packets of %d SSRCs %v, want one track throughout", len(ssrcs), ssrcs)
	}
	checkContinuous(t, "WHEP programme video", video, 0)
	if l.viewer.sub.PC.SignalingState().String() != "stable" || l.viewer.sub.PC.CurrentRemoteDescription().SDP != remote {
		t.Errorf("the viewer's connection was renegotiated (signaling state %s)", l.viewer.sub.PC.SignalingState())
	}

	checkSwitched(t, "the WHEP viewer's picture", decodeVideo(t, video))
	rtspVideo := reader.videoPackets()
	checkContinuous(t, "RTSP programme video", rtspVideo, 0)
	checkSwitched(t, "the RTSP reader's picture", decodeVideo(t, rtspVideo))

	// The replay is the lecture as it was: the programme's recording switches
	// pictures as the viewer's did, and plays through.
	l.trainer.stop()
	main, _ := l.recordings(t, ctx)
	file := filepath.Join(t.TempDir(), "programme.mp4")
	download(t, l.base+"/replay/"+main.ID+"/download.mp4?token="+appAdmin, file)
	checkSwitched(t, "the programme recording's picture", probeFrames(t, file))
}

// checkSwitched fails the test unless frames are the trainer's 320x240, Huế's
// 640x360 for about 4 s, then 320x240 again, each switch at a keyframe.
func checkSwitched(t *testing.T, what string, frames []decodedFrame) {
	t.Helper()
	var runs []string
	var lens []int
	for i, f := range frames {
		if len(runs) == 0 || runs[len(runs)-1] != f.size {
			runs, lens = append(runs, f.size), append(lens, 0)
			if !f.key {
				t.Errorf("%s: picture %d, the first at %s, is not a keyframe: the switch must wait for one", what, i, f.size)
			}
		}
		lens[len(lens)-1]++
	}
	t.Logf("%s: sizes in order %v, frames %v", what, runs, lens)
	// At 30 frames/s: 2 s of the trainer (less for a reader that joined later
	// and waited for a keyframe), ~4 s of Huế (from its first keyframe after
	// the grant), 3 s of the trainer (from its keyframe after the floor).
	if len(runs) != 3 || runs[0] != "320x240" || runs[1] != "640x360" || runs[2] != "320x240" ||
		lens[0] < 20 || lens[1] < 75 || lens[1] > 150 || lens[2] < 45 {
		t.Errorf("%s: sizes %v, frames %v; want the trainer's 320x240, Huế's 640x360 for about 4 s, 320x240 again", what, runs, lens)
	}
}

// decodeVideo writes a subscriber's H.264 packets to an Annex-B file and
// returns the pictures ffmpeg decodes from it, in order. Decoding errors fail
// the test.
func decodeVideo(t *testing.T, video []captured) []decodedFrame {
	t.Helper()
	path := filepath.Join(t.TempDir(), "programme.h264")
	w, err := h264writer.New(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range video {
		if err := w.WriteRTP(c.pkt); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return probeFrames(t, path, "-f", "h264")
}

// probeFrames returns the pictures ffmpeg decodes from the first video stream
// of the file path (extra: input options), in order; decoding errors fail the
// test.
func probeFrames(t *testing.T, path string, extra ...string) []decodedFrame {
	t.Helper()
	ffprobe := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	args := append(append([]string{"-v", "error"}, extra...), "-select_streams", "v:0", "-show_entries", "frame=key_frame,width,height", "-of", "json", path)
	cmd := exec.Command(ffprobe, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("ffprobe decoding %s: %v\n%s", path, err, stderr.String())
	}
	var res struct {
		Frames []struct {
			KeyFrame      int `json:"key_frame"`
			Width, Height int
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	frames := make([]decodedFrame, len(res.Frames))
	for i, f := range res.Frames {
		frames[i] = decodedFrame{size: fmt.Sprintf("%dx%d", f.Width, f.Height), key: f.KeyFrame == 1}
	}
	return frames
}

// decodedFrame is a picture as ffmpeg decoded it.
type decodedFrame struct {
	size string // "640x360"
	key  bool
}

// TestProgrammeBadFloorAudio: a floor holder whose audio cannot be decoded is
// left out of the mix with a log line, and the programme goes on with the
// trainer's tone, every packet decodable, without a gap; a classroom that
// stops sending in the middle of the mix does not stall it: the programme
// keeps its pace and carries the trainer alone.
func TestProgrammeBadFloorAudio(t *testing.T) {
	ctx, l := programmeLecture(t, "20 s", "")
	l.mediaFor(t, ctx, time.Second)

	// Huế's microphone sends Opus packets that do not decode (a code 3 packet
	// counting zero frames: RFC 6716 §3.2.5 makes it invalid).
	l.grant(l.id, "hue", l.siteTok, l.trainerTok)
	site := l.publishWith(l.id, l.siteTok, siteClip(t), func(p *rtp.Packet) *rtp.Packet {
		q := *p
		q.Payload = []byte{0xfb, 0x00, 0x11, 0x22, 0x33}
		return &q
	})
	testenv.WaitFor(ctx, t, "the classroom's first audio packet", func() bool { return !site.firstAudioAt().IsZero() })
	from := site.firstAudioAt()
	to := l.mediaFor(t, ctx, 3*time.Second)
	testenv.WaitFor(ctx, t, "a log line excluding Huế from the mix", func() bool {
		for _, line := range strings.Split(l.log.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "exclu") && strings.Contains(line, "site-hue") {
				return true
			}
		}
		return false
	})
	l.revoke(l.id, "hue", l.trainerTok)
	site.stop()
	if n := l.metric(`lectern_programme_excluded_total{reason="decode"}`); n != 1 {
		t.Errorf("%v holders excluded for undecodable audio, want 1", n)
	}
	audio, _ := l.viewer.packets()
	checkContinuous(t, "WHEP programme audio, an undecodable holder", audio, 960)
	checkTones(t, "WHEP, an undecodable holder", toneWindows(decodeAudio(t, audio), from, to), false, 10)

	// Huế again, with sound this time, until it falls silent mid-mix: no more
	// audio packets, its connection and video still up.
	l.mediaFor(t, ctx, time.Second)
	site, spoke := l.floor(t, ctx)
	l.mediaFor(t, ctx, 2*time.Second)
	silent := time.Now()
	site.setAudio(func(*rtp.Packet) *rtp.Packet { return nil })
	end := l.mediaFor(t, ctx, 3*time.Second)
	l.revoke(l.id, "hue", l.trainerTok)
	site.stop()

	t.Logf("Huế spoke from %s, fell silent at %s", spoke.Format("15:04:05.000"), silent.Format("15:04:05.000"))
	audio, _ = l.viewer.packets()
	checkContinuous(t, "WHEP programme audio, a holder falling silent", audio, 960)
	h := decodeAudio(t, audio)
	checkTones(t, "WHEP, mixing", toneWindows(h, spoke.Add(time.Second), silent), true, 4)
	checkTones(t, "WHEP, the holder silent", toneWindows(h, silent.Add(time.Second), end), false, 7)
	// The programme kept its pace: no stall in what the viewer received after
	// the holder fell silent (the mix runs on the trainer's clock, the holder's
	// jitter buffer is bounded). A second is far beyond any jitter buffer and
	// any scheduling delay of a loaded machine.
	var worst time.Duration
	for i := 1; i < len(audio); i++ {
		if audio[i].at.After(silent) {
			worst = max(worst, audio[i].at.Sub(audio[i-1].at))
		}
	}
	if worst > time.Second {
		t.Errorf("the programme's audio paused %v after the holder fell silent", worst)
	}
}

// TestProgrammeTrainerJitter: the trainer's packets held up on their way for
// 150 ms, then arriving at once (a jittery uplink), while Huế holds the floor:
// the programme's audio stays one continuous stream, its timestamps advancing
// by one frame per packet (no jump, no overlap a player would have to drop or
// conceal), with both tones.
func TestProgrammeTrainerJitter(t *testing.T) {
	ctx, l := programmeLecture(t, "15 s", "")
	l.mediaFor(t, ctx, time.Second)
	site, spoke := l.floor(t, ctx)
	l.mediaFor(t, ctx, 2*time.Second)
	// Every 50th packet of the trainer is held 150 ms: the ones behind it
	// follow at once when it goes (the player catches up on its schedule).
	n := 0
	l.trainer.setAudio(func(p *rtp.Packet) *rtp.Packet {
		if n++; n%50 == 0 {
			time.Sleep(150 * time.Millisecond)
		}
		return p
	})
	jittery := time.Now()
	end := l.mediaFor(t, ctx, 4*time.Second)
	l.trainer.setAudio(nil)
	l.revoke(l.id, "hue", l.trainerTok)
	site.stop()
	audio, _ := l.viewer.packets()
	checkContinuous(t, "WHEP programme audio, a jittery trainer", audio, 960)
	h := decodeAudio(t, audio)
	checkTones(t, "WHEP, mixing, a steady trainer", toneWindows(h, spoke.Add(time.Second), jittery), true, 4)
	checkTones(t, "WHEP, mixing, a jittery trainer", toneWindows(h, jittery, end), true, 15)
}

// TestProgrammeTwoHolders: two classrooms hold the floor at once, Huế (1 kHz)
// and Đà Nẵng (1.5 kHz): the programme carries the trainer and both; once
// Huế's floor is taken back, the trainer and Đà Nẵng only.
func TestProgrammeTwoHolders(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: the lectern binary, pion peers and ffmpeg for about 15 s")
	}
	const thirdTone = 1500
	third := testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "rgbtestsrc", Width: 480, Height: 270, FPS: 30, GOP: 30, Tone: thirdTone, Duration: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := startLecture(t, ctx, "")
	danangTok := l.token(l.id, "site", "danang", "Đà Nẵng")
	l.mediaFor(t, ctx, time.Second)
	hue, _ := l.floor(t, ctx)
	l.grant(l.id, "danang", danangTok, l.trainerTok)
	danang := l.publish(l.id, danangTok, third)
	testenv.WaitFor(ctx, t, "Đà Nẵng's first audio packet", func() bool { return !danang.firstAudioAt().IsZero() })
	both := danang.firstAudioAt()
	revoked := l.mediaFor(t, ctx, 3*time.Second)
	l.revoke(l.id, "hue", l.trainerTok)
	hue.stop()
	end := l.mediaFor(t, ctx, 3*time.Second)
	l.revoke(l.id, "danang", l.trainerTok)
	danang.stop()

	audio, _ := l.viewer.packets()
	checkContinuous(t, "WHEP programme audio, two holders", audio, 960)
	h := decodeAudio(t, audio)
	check := func(what string, from, to time.Time, want map[float64]bool, min int) {
		t.Helper()
		ws := toneWindows(h, from, to)
		if len(ws) < min {
			t.Errorf("%s: %d windows of sound, want at least %d", what, len(ws), min)
		}
		lowest := map[float64]float64{}
		for _, w := range ws {
			for f, present := range want {
				a := amplitude(w.pcm, f)
				if l, ok := lowest[f]; !ok || a < l {
					lowest[f] = a
				}
				if present && a < tonePresent || !present && a > toneAbsent {
					t.Errorf("%s: %.0f Hz at %.4f in the window of %s (want it present: %v)", what, f, a, w.at.Format("15:04:05.000"), present)
				}
			}
		}
		t.Logf("%s: the lowest amplitude of each tone in %d windows: %v", what, len(ws), lowest)
	}
	check("the trainer, Huế and Đà Nẵng", both.Add(time.Second), revoked, map[float64]bool{trainerTone: true, siteTone: true, thirdTone: true}, 7)
	check("the trainer and Đà Nẵng", revoked.Add(time.Second), end, map[float64]bool{trainerTone: true, siteTone: false, thirdTone: true}, 7)
}

// TestProgrammeAACTrainer: the trainer is a studio encoder publishing H.264
// and AAC over RTSP (ffmpeg, 440 Hz): a generic WHEP player of the programme
// gets Opus that decodes to the tone; while Huế (Opus, 1 kHz) holds the floor it
// hears both, then 440 Hz only, continuously.
func TestProgrammeAACTrainer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: the lectern binary, ffmpeg and pion peers for about 20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := startLectureWith(t, ctx, "", func(l *lecture) {
		encoder := publishRTSP(t, l.rtspURL(l.id, l.trainerTok), "aac", cameraFor)
		t.Cleanup(func() {
			select {
			case p := <-encoder:
				if t.Failed() {
					t.Logf("the ffmpeg encoder ended: %v\n%s", p.err, p.stderr)
				}
			default:
			}
		})
	})
	if codec := l.viewer.sub.Track(1).Codec; codec != "audio/opus" {
		t.Fatalf("the programme's audio reaches the WHEP player as %q, want audio/opus", codec)
	}
	start, spoke, revoked, end := l.floorRound(t, ctx)

	audio, _ := l.viewer.packets()
	checkContinuous(t, "WHEP programme audio of an AAC trainer", audio, 960)
	h := decodeAudio(t, audio)
	checkTones(t, "WHEP, an AAC trainer alone", toneWindows(h, start.Add(-time.Second), start), false, 3)
	checkTones(t, "WHEP, an AAC trainer, the floor held", toneWindows(h, spoke.Add(time.Second), revoked), true, 10)
	checkTones(t, "WHEP, an AAC trainer, after the floor", toneWindows(h, revoked.Add(time.Second), end), false, 7)
}
