package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"lectern/auth"
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

	// The trainer stops: the classrooms say so.
	studio.click("#stop")
	roomB.waitJS("waiting overlay", `document.getElementById('stage').dataset.state === 'waiting'`, 15*time.Second)
	roomB.screenshot("room-waiting")
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

	// The replay library, before or after the recorder exists: never a blank page.
	learner := s.token(id, auth.RoleLearner, "learner")
	rp := b.tab("replays")
	rp.open(s.url + "/replays?token=" + learner)
	rp.waitJS("library loaded", `document.getElementById('list-status').hidden || document.getElementById('list-status').textContent !== 'Đang tải…'`, 10*time.Second)
	rp.screenshot("replays")
	if apiGet(t, s, "/api/recordings", nil) == http.StatusNotFound {
		if msg := rp.text("#list-message"); !strings.Contains(msg, "chưa hoạt động") {
			t.Errorf("replay library without the API says %q", msg)
		}
		rp.open(s.url + "/replays/some-recording?token=" + learner)
		rp.waitJS("fatal message", `document.body.dataset.state === 'fatal'`, 10*time.Second)
		rp.screenshot("replay-unavailable")
	}
	rp.noConsoleErrors("Failed to load resource")
}

// TestBrowserReplay: a lecture recorded through the studio plays on the replay page,
// seeks to the middle and plays on; speed, resume and the embeddable player work.
// It needs the recorder behind /api/recordings in the test stack, and says so when
// that is missing.
func TestBrowserReplay(t *testing.T) {
	s := pagesStack(t)
	if code := apiGet(t, s, "/api/recordings", nil); code == http.StatusNotFound {
		t.Skip("the replay API (/api/recordings) is not wired into the test stack yet: this test runs once the recorder is")
	}
	id := s.createSession("Bài giảng được ghi lại")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "learner")
	b := newBrowser(t)
	studio := b.tab("studio-rec")
	studio.open(s.url + "/studio/" + id + "?token=" + trainer)
	studio.waitJS("devices", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitRising("publisher.framesEncoded", 300, 60*time.Second) // about 12 s of lecture
	studio.click("#stop")

	var rec map[string]any
	eventually(t, "a finished recording of the session", 60*time.Second, func() bool {
		var page map[string]any
		if apiGet(t, s, "/api/recordings?session="+id, &page) != http.StatusOK {
			return false
		}
		items, _ := page["items"].([]any)
		if items == nil {
			items, _ = page["recordings"].([]any)
		}
		for _, it := range items {
			r, _ := it.(map[string]any)
			if number(r, "duration_seconds")+number(r, "duration") >= 8 {
				rec = r
				return true
			}
		}
		return false
	})
	rid, _ := rec["id"].(string)

	player := b.tab("replay")
	player.open(s.url + "/replays?token=" + learner)
	player.waitJS("recording listed", `!!document.querySelector('tr[data-recording="`+rid+`"] a')`, 15*time.Second)
	player.screenshot("replays-list")
	player.click(`tr[data-recording="` + rid + `"] a`)
	player.waitJS("player ready", `!!window.lectern.player && document.getElementById('video').readyState >= 1`, 20*time.Second)
	player.firstPaint()
	if err := player.eval(`document.getElementById('video').play().then(() => true)`, nil); err != nil {
		player.fail("play: %v", err)
	}
	player.waitJS("playing", `document.getElementById('video').currentTime > 1`, 20*time.Second)
	player.waitJS("seek to the middle", `(() => { const v = document.getElementById('video'); v.dataset.mid = v.duration / 2; v.currentTime = v.duration / 2; return true })()`, 5*time.Second)
	player.waitJS("plays on after the seek", `(() => { const v = document.getElementById('video'); return v.currentTime > Number(v.dataset.mid) + 1 && !v.paused })()`, 20*time.Second)
	player.click(`#speeds input[value="1.5"] + span`)
	player.waitJS("speed 1.5", `document.getElementById('video').playbackRate === 1.5`, 5*time.Second)
	player.screenshot("replay-playing")
	player.open(s.url + "/replays/" + rid)
	player.waitJS("resume offered", `!document.getElementById('resume').hidden`, 20*time.Second)
	player.screenshot("replay-resume")
	player.noConsoleErrors()

	embed := b.tab("embed")
	embed.open(s.url + "/replays/" + rid + "/embed?token=" + learner)
	embed.waitJS("embedded player ready", `document.getElementById('video').readyState >= 1`, 20*time.Second)
	embed.screenshot("replay-embed")
	embed.noConsoleErrors()
}
