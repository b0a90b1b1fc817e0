package web

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
	"lectern/recorder"
)

// TestBrowserLiveLecture: the studio goes live and shares its screen; two classrooms
// play it; one raises a hand, gets the floor and publishes, and the studio and the
// other classroom see and hear it; the floor is taken back and its publication ends.
func TestBrowserLiveLecture(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Chuyển đổi số — Bài 1")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	hue := s.token(id, auth.RoleSite, "hue")
	hanoi := s.token(id, auth.RoleSite, "ha-noi")
	b := newBrowser(t)

	studio := b.tab("studio")
	studio.open(s.url + "/studio/" + id + "?token=" + trainer)
	studio.firstPaint()
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	if u := studio.text("#session-title"); u != "Chuyển đổi số — Bài 1" {
		t.Errorf("studio title %q", u)
	}
	studio.screenshot("studio-ready")
	studio.click("#golive")
	studio.waitJS("live badge", `document.getElementById('live-badge').dataset.live === 'on'`, 20*time.Second)
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)

	roomA := b.tab("room-hue")
	roomA.open(s.url + "/room/" + id + "?token=" + hue)
	roomA.firstPaint()
	roomB := b.tab("room-ha-noi")
	roomB.open(s.url + "/room/" + id + "?token=" + hanoi)
	for _, room := range []*tab{roomA, roomB} {
		room.waitRising("main.framesDecoded", 20, 30*time.Second)
		room.waitRising("main.audioPackets", 20, 10*time.Second)
		room.waitJS("stage playing", `document.getElementById('stage').dataset.state === 'playing'`, 10*time.Second)
		var href string
		if err := room.eval(`location.href`, &href); err != nil || strings.Contains(href, "token=") {
			t.Errorf("%s: the token stays in the address bar: %q %v", room.name, href, err)
		}
	}

	// A network drop: the server loses the classroom's connection; the page says so
	// and plays again by itself.
	var resource string
	if err := roomB.eval(`window.lectern.health().then(h => new URL(h.main.resource).pathname)`, &resource); err != nil || resource == "" {
		t.Fatalf("WHEP resource of %s: %q %v", roomB.name, resource, err)
	}
	if resp, body := s.do("DELETE", resource, testAdmin, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", resource, resp.StatusCode, body)
	}
	roomB.waitJS("reconnecting shown", `document.getElementById('stage').dataset.state === 'reconnecting'`, 20*time.Second)
	roomB.screenshot("room-reconnecting")
	roomB.waitJS("playing again", `document.getElementById('stage').dataset.state === 'playing'`, 30*time.Second)
	roomB.waitRising("main.framesDecoded", 20, 20*time.Second)

	// Slides: the studio shares its screen; the classrooms show it large.
	studio.click("#share")
	studio.waitJS("screen preview", `!document.getElementById('screen-preview').hidden`, 15*time.Second)
	roomA.waitRising("main.videos.1.framesDecoded", 10, 20*time.Second)
	roomA.waitJS("slides large", `document.getElementById('box-slides').className === 'main-video' && !document.getElementById('box-camera').hidden`, 10*time.Second)
	studio.waitJS("viewers counted", `Number(document.getElementById('viewers').textContent) >= 2`, 10*time.Second)
	studio.screenshot("studio-live")
	roomA.screenshot("room-slides")
	roomA.click("#swap")
	roomA.waitJS("camera large after swap", `document.getElementById('box-camera').className === 'main-video'`, 5*time.Second)
	roomB.screenshot("room-playing")

	// Talk-back: a hand, the floor, the classroom on air.
	roomA.click("#hand")
	roomA.waitJS("hand raised", `document.getElementById('hand').getAttribute('aria-pressed') === 'true'`, 10*time.Second)
	studio.waitJS("hand shown", `!!document.querySelector('#hands li[data-participant="hue"]')`, 10*time.Second)
	studio.screenshot("studio-hand")
	studio.click(`#hands li[data-participant="hue"] button[data-action="give"]`)
	roomA.waitJS("on air", `window.lectern.health().then(h => h.onAir)`, 20*time.Second)
	roomA.waitRising("publisher.framesEncoded", 10, 20*time.Second)
	studio.waitRising("speakers.hue.framesDecoded", 10, 30*time.Second)
	studio.waitRising("speakers.hue.audioPackets", 10, 10*time.Second)
	roomB.waitRising("speakers.hue.framesDecoded", 10, 30*time.Second)
	roomB.waitRising("speakers.hue.audioPackets", 10, 10*time.Second)
	roomA.waitJS("on-air banner", `!document.getElementById('onair').hidden`, 5*time.Second)
	studio.screenshot("studio-speaker")
	roomA.screenshot("room-on-air")
	roomB.screenshot("room-other-speaker")

	// The floor taken back: the publication ends everywhere.
	studio.click(`#speakers li[data-participant="hue"] button[data-action="take-back"]`)
	roomA.waitJS("off air", `window.lectern.health().then(h => !h.speaking)`, 15*time.Second)
	roomB.waitJS("tile removed", `!document.querySelector('#tiles .tile')`, 15*time.Second)
	eventually(t, "publication site-hue to end", 15*time.Second, func() bool {
		var st sessionState
		apiGet(t, s, "/api/sessions/"+id, &st)
		return !hasPublication(st, "site-hue")
	})

	// The studio reloaded while live goes live again by itself; the classrooms play on.
	studio.open(s.url + "/studio/" + id)
	studio.waitJS("live again", `window.lectern.health && window.lectern.health().then(h => h.publishing)`, 20*time.Second)
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)
	roomB.waitJS("playing after the studio reload", `document.getElementById('stage').dataset.state === 'playing'`, 20*time.Second)
	roomB.waitRising("main.framesDecoded", 20, 20*time.Second)

	// The trainer stops: the classrooms say the lecture has ended.
	studio.click("#stop")
	roomB.waitJS("ended overlay", `document.getElementById('stage').dataset.state === 'ended'`, 15*time.Second)
	roomB.screenshot("room-ended-live")
	for _, tb := range []*tab{studio, roomA, roomB} {
		tb.noConsoleErrors()
	}
}

func hasPublication(st sessionState, name string) bool {
	for _, p := range st.Publications {
		if p.Name == name {
			return true
		}
	}
	return false
}

// TestBrowserErrorsAndPages: wrong or missing tokens give a clear message (never a
// blank page); the lobby, the admin's invitations, the replay library and the 404
// page render, at 1366×768 and on a phone.
func TestBrowserErrorsAndPages(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Quản lý hồ sơ điện tử")
	other := s.createSession("Buổi khác")
	site := s.token(id, auth.RoleSite, "hue")
	b := newBrowser(t)
	tb := b.tab("errors")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"room-no-token", "/room/" + id, "thiếu mã truy cập"},
		{"room-bad-token", "/room/" + id + "?token=not-a-token", "không hợp lệ hoặc đã hết hạn"},
		{"studio-wrong-role", "/studio/" + id + "?token=" + site, "dành cho điểm cầu"},
		{"room-unknown-session", "/room/zzzzzzzzzz?token=" + site, "Không tìm thấy buổi học"},
		{"room-other-session", "/room/" + other + "?token=" + site, "không dùng được"},
		{"studio-no-token", "/studio/" + id, "thiếu mã truy cập"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb.t = t
			tb.open(s.url + tc.path)
			tb.waitJS("fatal message", `document.body.dataset.state === 'fatal'`, 10*time.Second)
			if msg := tb.text(".fatal-message"); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to contain %q", msg, tc.want)
			}
			tb.screenshot("error-" + tc.name)
		})
	}
	tb.t = t
	tb.open(s.url + "/no/such/page")
	tb.waitJS("404 page", `document.querySelector('.fatal-message').textContent.includes('Không có trang')`, 10*time.Second)
	tb.screenshot("error-404")
	// Failed API calls show up as network errors in the console; nothing else may.
	tb.noConsoleErrors("Failed to load resource")

	// The lobby, in Vietnamese and in English; the admin creates a session and its invitations.
	lobby := b.tab("lobby")
	lobby.open(s.url + "/")
	lobby.firstPaint()
	lobby.waitJS("session listed", `!!document.querySelector('li.session[data-session="`+id+`"]')`, 10*time.Second)
	lobby.screenshot("lobby")
	lobby.click("#admin summary")
	lobby.typeInto("#admin-token", testAdmin)
	lobby.click("#admin-login button[type=submit]")
	lobby.waitJS("admin panel", `!document.getElementById('admin-panel').hidden`, 10*time.Second)
	lobby.typeInto("#c-title", "Ứng dụng AI trong hành chính công")
	lobby.click("#create-form button[type=submit]")
	lobby.waitJS("invitation dialog", `document.getElementById('invite-dialog').open`, 10*time.Second)
	lobby.typeInto("#m-sites", "Hà Nội\nThừa Thiên Huế\nĐà Nẵng")
	lobby.click("#mint-form button[type=submit]")
	lobby.waitJS("invitation links", `document.querySelectorAll('#invite-links li').length === 6`, 10*time.Second)
	if got := lobby.text(`#invite-links li[data-name="thua-thien-hue"] label`); !strings.Contains(got, "Thừa Thiên Huế") {
		t.Errorf("classroom invitation label %q", got)
	}
	lobby.click(`#invite-links li[data-name="da-nang"] button.btn-secondary`)
	lobby.waitJS("QR code", `document.getElementById('qr-dialog').open && !!document.querySelector('#qr svg')`, 10*time.Second)
	lobby.screenshot("lobby-qr")
	lobby.click("#qr-close")
	lobby.screenshot("lobby-invitations")
	var link string
	if err := lobby.eval(`document.querySelector('#invite-links li[data-role="site"] input').value`, &link); err != nil || !strings.Contains(link, "/room/") {
		t.Errorf("classroom link %q %v", link, err)
	}
	lobby.click("#invite-close")
	lobby.click("#lang-switch")
	lobby.waitJS("English", `document.documentElement.lang === 'en' && document.querySelector('h1').textContent === 'Live lectures'`, 5*time.Second)
	lobby.screenshot("lobby-en")
	lobby.click("#lang-switch")
	lobby.noConsoleErrors()

	// A classroom on a phone.
	phone := b.tab("phone")
	phone.viewport(390, 844, true)
	phone.open(s.url + "/room/" + id + "?token=" + site)
	phone.waitJS("waiting overlay", `document.getElementById('stage').dataset.state === 'waiting'`, 15*time.Second)
	phone.screenshot("room-phone")
	phone.open(s.url + "/")
	phone.waitJS("lobby", `!!document.querySelector('li.session')`, 10*time.Second)
	phone.screenshot("lobby-phone")
	phone.noConsoleErrors()

	// The replay library with nothing recorded yet, and a recording that does not
	// exist: a clear message, never a blank page.
	learner := s.token(id, auth.RoleLearner, "learner")
	rp := b.tab("replays")
	rp.open(s.url + "/replays?token=" + learner)
	rp.waitJS("library loaded", `document.getElementById('list-status').textContent !== 'Đang tải…'`, 10*time.Second)
	if msg := rp.text("#list-status"); msg != "Không có bản ghi nào." || !rp.hidden("#recordings") || !rp.hidden("#list-message") {
		t.Errorf("empty replay library says %q (message %q)", msg, rp.text("#list-message"))
	}
	rp.screenshot("replays-empty")
	rp.open(s.url + "/replays/" + id + "-trainer-20200101-000000-000000")
	rp.waitJS("fatal message", `document.body.dataset.state === 'fatal'`, 10*time.Second)
	if msg := rp.text(".fatal-message"); !strings.Contains(msg, "Không tìm thấy bản ghi này") {
		t.Errorf("unknown recording: %q", msg)
	}
	rp.screenshot("replay-not-found")
	rp.noConsoleErrors("Failed to load resource")
}

// TestBrowserReplay: a lecture recorded through the studio (Chromium's fake camera
// and microphone, through the recorder of the test stack) is listed in the replay
// library and plays on the replay page: it seeks to the middle and plays on, changes
// speed, offers to resume, downloads as an MP4 that ffprobe decodes, and plays in the
// embeddable player.
func TestBrowserReplay(t *testing.T) {
	testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	s := pagesStack(t)
	const title = "Bài giảng được ghi lại"
	id := s.createSession(title)
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "learner")
	b := newBrowser(t)

	// About 12 s of lecture: live until the recording holds 11 s of stored segments
	// (the last one, still being written, follows at the stop).
	studio := b.tab("studio-rec")
	studio.open(s.url + "/studio/" + id + "?token=" + trainer)
	studio.waitJS("devices", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitJS("live badge", `document.getElementById('live-badge').dataset.live === 'on'`, 20*time.Second)
	var live recordingSummary
	eventually(t, "the recording to start", 30*time.Second, func() bool {
		var page recordingPage
		apiGet(t, s, "/api/recordings?session="+id, &page)
		if len(page.Recordings) == 1 {
			live = page.Recordings[0]
		}
		return live.ID != ""
	})
	if live.Status != recorder.StatusRecording || live.Publication != "trainer" || live.Title != title {
		t.Fatalf("recording in progress: %+v", live)
	}
	eventually(t, "11 s of stored recording", 90*time.Second, func() bool {
		var v recordingView
		apiGet(t, s, "/api/recordings/"+live.ID, &v)
		return v.Duration >= 11
	})
	studio.click("#stop")
	studio.waitJS("off air", `document.getElementById('live-badge').dataset.live !== 'on'`, 10*time.Second)

	var rec recordingView
	eventually(t, "the recording to be finalised", 60*time.Second, func() bool {
		var v recordingView
		apiGet(t, s, "/api/recordings/"+live.ID, &v)
		rec = v
		return rec.Status == recorder.StatusComplete
	})
	if rec.Duration < 11 || rec.Segments < 5 || !slices.ContainsFunc(rec.Codecs, func(c string) bool { return strings.HasPrefix(c, "avc1.") }) ||
		!slices.Contains(rec.Codecs, "opus") {
		t.Fatalf("finished recording: duration %.1f s, %d segments, codecs %q", rec.Duration, rec.Segments, rec.Codecs)
	}
	t.Logf("recording %s: %.1f s, %d segments, %q, %d bytes", rec.ID, rec.Duration, rec.Segments, rec.Codecs, rec.Bytes)
	studio.noConsoleErrors()

	// The library lists it, with its title and duration.
	player := b.tab("replay")
	player.open(s.url + "/replays?token=" + learner)
	row := `tr[data-recording="` + rec.ID + `"]`
	player.waitJS("recording listed", `!!document.querySelector('`+row+` a')`, 15*time.Second)
	if got := player.text(row + " a"); got != title {
		t.Errorf("listed title %q", got)
	}
	if got := player.text(row + " td:last-child"); got == "" || got == "–" {
		t.Errorf("listed duration %q", got)
	}
	player.screenshot("replays-list")

	// The player plays it from the start, seeks to the middle and plays on.
	player.click(row + " a")
	player.waitJS("player ready", `!!(window.lectern && window.lectern.player) && document.getElementById('video').readyState >= 1`, 20*time.Second)
	player.firstPaint()
	if err := player.eval(`document.getElementById('video').play().then(() => true)`, nil); err != nil {
		player.fail("play: %v", err)
	}
	player.waitJS("playing", `document.getElementById('video').currentTime > 1`, 20*time.Second)
	player.advancing("playing from the start", 0.5, 10*time.Second)
	player.noPlaybackError()
	var mid float64
	if err := player.eval(`new Promise((done) => {
		const v = document.getElementById('video');
		v.addEventListener('seeked', () => done(v.duration / 2), { once: true });
		v.currentTime = v.duration / 2;
	})`, &mid); err != nil {
		player.fail("seek to the middle: %v", err)
	}
	if mid < 4 {
		t.Fatalf("middle of the replay at %.2f s: the player sees a duration of %.2f s", mid, 2*mid)
	}
	player.waitJS("plays on after the seek", fmt.Sprintf(`(() => { const v = document.getElementById('video'); return v.currentTime >= %f && !v.paused })()`, mid+0.5), 20*time.Second)
	player.advancing("playing on after the seek", 0.5, 10*time.Second)
	player.noPlaybackError()
	player.screenshot("replay-playing")

	// Speed.
	player.click(`#speeds input[value="1.5"] + span`)
	player.waitJS("speed 1.5", `document.getElementById('video').playbackRate === 1.5 && document.querySelector('#speeds input[value="1.5"]').checked`, 5*time.Second)
	player.advancing("playing at 1.5×", 0.5, 10*time.Second)
	player.noPlaybackError()
	player.screenshot("replay-speed")

	// The learner goes back to the middle, pauses and leaves; on return the player
	// offers to resume there.
	var paused float64
	if err := player.eval(fmt.Sprintf(`new Promise((done) => {
		const v = document.getElementById('video');
		v.addEventListener('seeked', () => { v.pause(); done(v.currentTime); }, { once: true });
		v.currentTime = %f;
	})`, mid), &paused); err != nil {
		player.fail("seek back: %v", err)
	}
	player.open(s.url + "/replays/" + rec.ID)
	player.waitJS("resume offered", `!document.getElementById('resume').hidden`, 20*time.Second)
	player.waitJS("resumed position ready", `(() => { const v = document.getElementById('video'); return !v.seeking && v.readyState >= 3 })()`, 20*time.Second)
	var at float64
	if err := player.eval(`document.getElementById('video').currentTime`, &at); err != nil || at < math.Floor(paused)-0.5 || at > paused+0.5 {
		t.Errorf("resumed at %.2f s (%v), left at %.2f s", at, err, paused)
	}
	player.screenshot("replay-resume")

	// The download link returns an MP4 that ffprobe decodes whole.
	var href string
	if err := player.eval(`document.getElementById('download').href`, &href); err != nil || !strings.HasPrefix(href, s.url+"/replay/"+rec.ID+"/download.mp4") {
		t.Fatalf("download link %q %v", href, err)
	}
	var head struct {
		Status                   int
		ContentType, Disposition string
	}
	if err := player.eval(`fetch(document.getElementById('download').href, { method: 'HEAD' }).then((r) => ({
		status: r.status, contentType: r.headers.get('Content-Type'), disposition: r.headers.get('Content-Disposition') }))`, &head); err != nil {
		t.Fatalf("HEAD %s from the page: %v", href, err)
	}
	if head.Status != http.StatusOK || head.ContentType != "video/mp4" || !strings.HasPrefix(head.Disposition, "attachment") {
		t.Errorf("download from the page: %+v", head)
	}
	resp, err := http.Get(href)
	if err != nil {
		t.Fatal(err)
	}
	mp4, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "video/mp4" || len(mp4) < 10_000 || string(mp4[4:8]) != "ftyp" {
		t.Fatalf("download: %d %q, %d bytes %v", resp.StatusCode, resp.Header.Get("Content-Type"), len(mp4), err)
	}
	file := filepath.Join(t.TempDir(), "lecture.mp4")
	if err := os.WriteFile(file, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	got := testrec.FFprobe(t, file)
	if !near(got.Duration, rec.Duration, 1) || float64(got.VideoFrames) < 5*rec.Duration {
		t.Errorf("downloaded MP4: %.2f s and %d frames, recording %.2f s", got.Duration, got.VideoFrames, rec.Duration)
	}
	player.noConsoleErrors()

	// On a phone.
	player.viewport(390, 844, true)
	player.open(s.url + "/replays")
	player.waitJS("recording listed", `!!document.querySelector('`+row+` a')`, 15*time.Second)
	player.screenshot("replays-list-phone")
	player.open(s.url + "/replays/" + rec.ID)
	player.waitJS("player ready", `document.getElementById('video').readyState >= 3 && !document.getElementById('video').seeking`, 20*time.Second)
	player.screenshot("replay-phone")
	player.noConsoleErrors()

	// The embeddable player.
	embed := b.tab("embed")
	embed.open(s.url + "/replays/" + rec.ID + "/embed?token=" + learner)
	embed.waitJS("embedded player ready", `document.getElementById('video').readyState >= 1`, 20*time.Second)
	if err := embed.eval(`document.getElementById('video').play().then(() => true)`, nil); err != nil {
		embed.fail("play: %v", err)
	}
	embed.advancing("embedded player playing", 0.5, 20*time.Second)
	embed.noPlaybackError()
	embed.screenshot("replay-embed")
	embed.noConsoleErrors()
}

// advancing waits until the page's #video plays on by at least by seconds of media
// from where it is now.
func (tb *tab) advancing(what string, by float64, d time.Duration) {
	tb.t.Helper()
	var from float64
	if err := tb.eval(`document.getElementById('video').currentTime`, &from); err != nil {
		tb.fail("%s: currentTime: %v", what, err)
	}
	tb.waitJS(what, fmt.Sprintf(`(() => { const v = document.getElementById('video'); return !v.paused && v.currentTime >= %f })()`, from+by), d)
}

// noPlaybackError fails the test when the page's #video is in an error state or the
// page shows a warning (the player's "cannot be played").
func (tb *tab) noPlaybackError() {
	tb.t.Helper()
	var state struct {
		Error   string
		Warning string
	}
	if err := tb.eval(`(() => { const v = document.getElementById('video'), w = document.querySelector('.notice-warn');
		return { error: v.error ? v.error.code + ' ' + v.error.message : '', warning: w ? w.textContent : '' } })()`, &state); err != nil {
		tb.fail("player state: %v", err)
	}
	if state.Error != "" || state.Warning != "" {
		tb.fail("player in error: video error %q, warning %q", state.Error, state.Warning)
	}
}
