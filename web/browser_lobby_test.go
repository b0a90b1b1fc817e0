package web

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"lectern/auth"
)

// TestBrowserLobbyPrivacyAndInvites: the lobby shows a visitor only the listed
// sessions; a browser holding a classroom link and a viewer link of an unlisted
// session sees it, with two buttons that say which is which.
func TestBrowserLobbyPrivacyAndInvites(t *testing.T) {
	s := pagesStack(t)
	open := createListed(t, s, "Hội thảo công khai", true)
	private := createListed(t, s, "Họp nội bộ", false)
	hidden := createListed(t, s, "Buổi không liên quan", false)
	site := s.token(private, auth.RoleSite, "hue")
	viewer := s.token(private, auth.RoleViewer, "viewer")
	b := newBrowser(t)

	lobby := b.tab("lobby-privacy")
	lobby.open(s.url + "/")
	lobby.waitJS("listed session", `!!document.querySelector('li.session[data-session="`+open+`"]')`, 10*time.Second)
	for _, id := range []string{private, hidden} {
		if !lobby.hidden(`li.session[data-session="` + id + `"]`) {
			t.Errorf("an unlisted session %s is shown to a visitor", id)
		}
	}

	// The browser opens its two invitations (each page remembers its link).
	room := b.tab("room-invites")
	for _, tok := range []string{site, viewer} {
		room.open(s.url + "/room/" + private + "?token=" + tok)
		room.waitJS("room loaded", `document.getElementById('stage').dataset.state === 'waiting'`, 15*time.Second)
	}
	room.close()
	lobby.open(s.url + "/")
	sel := `li.session[data-session="` + private + `"]`
	lobby.waitJS("the invited session", `!!document.querySelector('`+sel+`')`, 10*time.Second)
	if !lobby.hidden(`li.session[data-session="` + hidden + `"]`) {
		t.Errorf("an unlisted session without an invitation is shown")
	}
	var buttons []struct{ Role, Text, Href string }
	if err := lobby.eval(`[...document.querySelectorAll('`+sel+` a.btn')].map((a) => ({ role: a.dataset.role, text: a.textContent, href: a.getAttribute('href') }))`, &buttons); err != nil {
		t.Fatal(err)
	}
	if len(buttons) != 2 || buttons[0].Role != "site" || buttons[1].Role != "viewer" || buttons[0].Text == buttons[1].Text ||
		buttons[0].Text != "Vào lớp học (điểm cầu)" || buttons[1].Text != "Chỉ xem bài giảng" ||
		!strings.Contains(buttons[0].Href, url.QueryEscape(site)) || !strings.Contains(buttons[1].Href, url.QueryEscape(viewer)) {
		t.Errorf("join buttons %+v", buttons)
	}
	lobby.screenshot("lobby-two-invitations")
	lobby.click("#lang-switch")
	lobby.waitJS("English buttons", `document.querySelector('`+sel+` a[data-role="viewer"]').textContent === 'Watch only'`, 5*time.Second)
	if got := lobby.text(sel + ` a[data-role="site"]`); got != "Join as a classroom" {
		t.Errorf("English classroom button %q", got)
	}
	lobby.click("#lang-switch")

	// The admin sees every session, and creates a listed one.
	lobby.click("#admin summary")
	lobby.typeInto("#admin-token", testAdmin)
	lobby.click("#admin-login button[type=submit]")
	lobby.waitJS("every session for the admin", `!!document.querySelector('li.session[data-session="`+hidden+`"]')`, 10*time.Second)
	lobby.typeInto("#c-title", "Buổi công khai mới")
	lobby.click("#c-listed")
	if got := lobby.text(`#c-programme option[value="speaker"]`); got != "Điểm cầu đang phát biểu, khi có" {
		t.Errorf("the programme picture's speaker option reads %q", got)
	}
	if err := lobby.eval(`document.getElementById('c-programme').value = 'speaker'`, nil); err != nil {
		t.Fatal(err)
	}
	lobby.click("#create-form button[type=submit]")
	lobby.waitJS("invitation dialog", `document.getElementById('invite-dialog').open`, 10*time.Second)
	lobby.click("#invite-close")
	resp, body := s.do("GET", "/api/sessions", "", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, "Buổi công khai mới") || strings.Contains(body, "Họp nội bộ") {
		t.Errorf("public list after the admin created a listed session: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "programme_video") {
		t.Errorf("the public list shows the programme's picture setting: %s", body)
	}
	if resp, body := s.do("GET", "/api/sessions", testAdmin, "", ""); resp.StatusCode != 200 || !strings.Contains(body, `"programme_video":"speaker"`) {
		t.Errorf("the session created with the speaker's picture, in the admin's list: %d %s", resp.StatusCode, body)
	}
	lobby.noConsoleErrors()
}

// TestBrowserRoomEnded: a classroom opened before the lecture says it has not
// started; once the lecture has been given and recorded, the classroom says it has
// ended and links to its replay, which plays.
func TestBrowserRoomEnded(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Bài giảng đã xong")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	site := s.token(id, auth.RoleSite, "hue")
	b := newBrowser(t)

	room := b.tab("room-ended")
	room.open(s.url + "/room/" + id + "?token=" + site)
	room.waitJS("waiting", `document.getElementById('stage').dataset.state === 'waiting'`, 15*time.Second)
	if got := room.text("#overlay-text"); !strings.Contains(got, "chưa bắt đầu") || !room.hidden("#replay-link") {
		t.Errorf("before the lecture: %q (replay link shown: %v)", got, !room.hidden("#replay-link"))
	}

	rec := recordedLecture(t, s, id, 4, publishClip(t, s, id, trainer))
	room.waitJS("ended", `document.getElementById('stage').dataset.state === 'ended'`, 20*time.Second)
	room.waitJS("replay link", `!document.getElementById('replay-link').hidden`, 20*time.Second)
	if got := room.text("#overlay-text"); !strings.Contains(got, "đã kết thúc") || strings.Contains(got, "chưa bắt đầu") {
		t.Errorf("after the lecture: %q", got)
	}
	var href string
	if err := room.eval(`document.getElementById('replay-link').getAttribute('href')`, &href); err != nil || !strings.HasPrefix(href, "/replays/"+rec.ID+"?token=") {
		t.Fatalf("replay link %q %v", href, err)
	}
	room.screenshot("room-ended")

	// Opened after the end, the classroom says so at once.
	late := b.tab("room-late")
	late.open(s.url + "/room/" + id + "?token=" + site)
	late.waitJS("ended", `document.getElementById('stage').dataset.state === 'ended' && !document.getElementById('replay-link').hidden`, 15*time.Second)
	late.click("#replay-link")
	late.waitJS("replay player", `!!(window.lectern && window.lectern.player) && document.getElementById('video').readyState >= 1`, 20*time.Second)
	for _, tb := range []*tab{room, late} {
		tb.noConsoleErrors()
	}
}

// TestBrowserEmbedCodes: the replay page offers embed codes to the trainer only;
// the panel's toggle looks like a button; the code carries an embed token, not the
// trainer's or a learner's; the embedded player plays with it until it is revoked.
func TestBrowserEmbedCodes(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Bài giảng để nhúng")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	rec := recordedLecture(t, s, id, 4, publishClip(t, s, id, trainer))
	b := newBrowser(t)

	// A learner sees no embed panel.
	lt := b.tab("replay-learner")
	lt.open(s.url + "/replays/" + rec.ID + "?token=" + learner)
	lt.waitJS("player ready", `!!(window.lectern && window.lectern.player)`, 20*time.Second)
	if !lt.hidden("#embed-panel") {
		t.Error("the embed panel is shown to a learner")
	}
	lt.noConsoleErrors()
	lt.close()

	tt := b.tab("replay-trainer")
	tt.open(s.url + "/replays/" + rec.ID + "?token=" + trainer)
	tt.waitJS("embed panel", `!!(window.lectern && window.lectern.player) && !document.getElementById('embed-panel').hidden`, 20*time.Second)
	var look struct {
		Cursor, Border, Marker string
		Padding                float64
	}
	if err := tt.eval(`(() => { const s = document.querySelector('#embed-panel > summary'), c = getComputedStyle(s);
		return { cursor: c.cursor, border: c.borderTopStyle, padding: parseFloat(c.paddingLeft), marker: getComputedStyle(s, '::before').content } })()`, &look); err != nil {
		t.Fatal(err)
	}
	if look.Cursor != "pointer" || look.Border == "none" || look.Padding < 8 || !strings.Contains(look.Marker, "▸") {
		t.Errorf("the embed toggle does not look like a button: %+v", look)
	}
	tt.screenshot("replay-embed-closed")
	tt.click("#embed-panel > summary")
	tt.typeInto("#embed-label", "Cổng đào tạo tỉnh")
	tt.click("#embed-form button[type=submit]")
	tt.waitJS("embed code", `!document.getElementById('embed-result').hidden && document.querySelectorAll('#embed-list li').length === 1`, 10*time.Second)
	var code string
	if err := tt.eval(`document.getElementById('embed-code').value`, &code); err != nil {
		t.Fatal(err)
	}
	src := between(code, `src="`, `"`)
	u, err := url.Parse(strings.ReplaceAll(src, "&amp;", "&"))
	if err != nil || u.Path != "/replays/"+rec.ID+"/embed" {
		t.Fatalf("embed code %q", code)
	}
	embedToken := u.Query().Get("token")
	if c, err := s.issuer.Verify(embedToken); err != nil || c.Role != auth.RoleEmbed || c.Recording != rec.ID || strings.Contains(code, trainer) || strings.Contains(code, learner) {
		t.Fatalf("the embed code carries %+v (%v): %s", c, err, code)
	}
	tt.screenshot("replay-embed-open")

	// A portal page embeds it: it plays.
	et := b.tab("embedded")
	et.open(src)
	et.waitJS("embedded player ready", `document.getElementById('video').readyState >= 1`, 20*time.Second)
	if err := et.eval(`document.getElementById('video').play().then(() => true)`, nil); err != nil {
		et.fail("play: %v", err)
	}
	et.advancing("embedded player playing", 0.5, 20*time.Second)
	et.noPlaybackError()

	// Revoked from the replay page: the embed no longer plays, and says why.
	tt.click(`#embed-list li button[data-action="revoke"]`)
	tt.waitJS("revoked", `document.querySelectorAll('#embed-list li').length === 0`, 10*time.Second)
	et.open(src)
	et.waitJS("refused", `document.body.dataset.state === 'fatal'`, 15*time.Second)
	if got := et.text(".fatal-message"); !strings.Contains(got, "thu hồi") {
		t.Errorf("revoked embed says %q", got)
	}
	et.screenshot("embed-revoked")
	tt.noConsoleErrors()
	et.noConsoleErrors("Failed to load resource")
}

// TestBrowserReplayDateFilter: the library's date fields take day/month/year, the
// order of the page's language, whatever the browser's locale (en-US here), and
// filter the list by them.
func TestBrowserReplayDateFilter(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Bài giảng theo ngày")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	rec := recordedLecture(t, s, id, 2, publishClip(t, s, id, trainer))
	b := newBrowser(t)
	tb := b.tab("replays-dates")
	tb.open(s.url + "/replays?token=" + learner)
	row := `tr[data-recording="` + rec.ID + `"]`
	tb.waitJS("recording listed", `!!document.querySelector('`+row+`')`, 15*time.Second)
	var field struct{ Type, Placeholder string }
	if err := tb.eval(`({ type: document.getElementById('f-from').type, placeholder: document.getElementById('f-from').placeholder })`, &field); err != nil {
		t.Fatal(err)
	}
	if field.Type == "date" || field.Placeholder != "ngày/tháng/năm" {
		t.Errorf("date field %+v: a date input follows the browser's locale, not the page's", field)
	}
	day := func(d time.Time) string { return fmt.Sprintf("%02d/%02d/%d", d.Day(), d.Month(), d.Year()) }
	today := rec.StartedAt.Local()
	// The day after the recording: nothing; the day of it: listed.
	tb.typeInto("#f-from", day(today.AddDate(0, 0, 1)))
	tb.click("#filters button[type=submit]")
	tb.waitJS("filtered out", `!document.querySelector('`+row+`') && document.getElementById('list-status').textContent !== 'Đang tải…'`, 10*time.Second)
	tb.eval(`document.getElementById('f-from').value = ''`, nil)
	tb.typeInto("#f-from", day(today))
	tb.typeInto("#f-to", day(today))
	tb.click("#filters button[type=submit]")
	tb.waitJS("listed again", `!!document.querySelector('`+row+`')`, 10*time.Second)
	// A date in the browser's (US) order that is no day/month/year is refused clearly.
	tb.eval(`document.getElementById('f-from').value = ''`, nil)
	tb.typeInto("#f-from", "12/31/2026")
	tb.click("#filters button[type=submit]")
	tb.waitJS("bad date", `!document.getElementById('list-message').hidden && document.getElementById('f-from').getAttribute('aria-invalid') !== null`, 5*time.Second)
	if got := tb.text("#list-message"); !strings.Contains(got, "12/31/2026") {
		t.Errorf("bad date message %q", got)
	}
	tb.click("#lang-switch")
	tb.waitJS("English placeholder and message", `document.getElementById('f-from').placeholder === 'dd/mm/yyyy' &&
		document.getElementById('list-message').textContent.startsWith('The date')`, 5*time.Second)
	tb.screenshot("replays-date-filter")
	tb.noConsoleErrors()
}

// between returns the text of s between the first before and the next after.
func between(s, before, after string) string {
	_, rest, ok := strings.Cut(s, before)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, after)
	return v
}
