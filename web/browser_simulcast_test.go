package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lectern/auth"
)

// The studio sends its camera as three simulcast layers; the server gives each
// classroom one of them, and a classroom can pin one from its page. Chromium's fake
// camera captures 1280×720 (the studio asks for it), so the layers are 1280, 640 and
// 320 pixels wide.

// liveSimulcastStudio opens the studio of session id, goes live, and waits until
// the server has all three camera layers with packets and Chromium reports at
// least two sending simulcast encodings (rids).
func liveSimulcastStudio(t *testing.T, s *stack, b *browser, id, token string) *tab {
	t.Helper()
	studio := b.tab("studio")
	studio.open(s.url + "/studio/" + id + "?token=" + token)
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitJS("live badge", `document.getElementById('live-badge').dataset.live === 'on'`, 20*time.Second)
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)

	// The server: trainer/video, trainer/video~1 and trainer/video~2, each with packets.
	// Chromium starts with the lowest layer and adds the others as its estimate of the
	// link grows (the server's TWCC feedback), within seconds on loopback.
	var last map[string]uint64
	eventually(t, "three camera layers with packets on the server", 45*time.Second, func() bool {
		last = layerPackets(t, s, id)
		return last["video"] > 0 && last["video~1"] > 0 && last["video~2"] > 0
	})
	t.Logf("server camera layers: packets %v", last)

	// Chromium: one outbound-rtp per rid, sending.
	var rids []string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rids = sendingRids(studio)
		if len(rids) >= 2 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(rids) < 2 {
		studio.fail("Chromium sends simulcast encodings %v, want at least 2 (publisher health %v)", rids, studio.health()["publisher"])
	}
	t.Logf("Chromium sends camera layers %v (publisher %v)", rids, studio.health()["publisher"])
	return studio
}

// layerPackets returns the packets of the trainer's camera layers, by track name
// relative to the publication ("video", "video~1", "video~2").
func layerPackets(t *testing.T, s *stack, id string) map[string]uint64 {
	t.Helper()
	var st sessionState
	apiGet(t, s, "/api/sessions/"+id, &st)
	out := map[string]uint64{}
	for _, p := range st.Publications {
		if p.Name != "trainer" {
			continue
		}
		for _, tr := range p.Tracks {
			if tr.Kind != "video" {
				continue
			}
			name := tr.Name[strings.LastIndexByte(tr.Name, '/')+1:]
			out[name] = tr.Packets
		}
	}
	return out
}

// sendingRids returns the rids of the studio's video outbound-rtp stats that have
// sent packets.
func sendingRids(studio *tab) []string {
	var rids []string
	if err := studio.eval(`window.lectern.health().then(h => ((h.publisher && h.publisher.layers) || []).filter(l => l.packets > 0).map(l => l.rid))`, &rids); err != nil {
		studio.fail("outbound rids: %v", err)
	}
	return rids
}

// pin chooses a layer in the classroom page's selector, as a person would.
func (tb *tab) pin(layer string) {
	tb.t.Helper()
	tb.waitJS("layer selector shown", `!document.getElementById('layer-pin-box').hidden`, 20*time.Second)
	expr := fmt.Sprintf(`(() => { const s = document.getElementById('layer-pin'); s.value = %q; s.dispatchEvent(new Event('change')); return s.value })()`, layer)
	var got string
	if err := tb.eval(expr, &got); err != nil || got != layer {
		tb.fail("pin %s: selector value %q, %v", layer, got, err)
	}
}

// TestBrowserSimulcastStudio: the studio page publishes its camera as three
// simulcast layers (the server gets trainer/video, video~1 and video~2 with
// packets; Chromium reports several sending rids), and a classroom plays the top
// layer at 1280 pixels wide with its page showing "high".
func TestBrowserSimulcastStudio(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Simulcast")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	site := s.token(id, auth.RoleSite, "hue")
	b := newBrowser(t)
	studio := liveSimulcastStudio(t, s, b, id, trainer)

	room := b.tab("room")
	room.open(s.url + "/room/" + id + "?token=" + site)
	room.waitRising("main.framesDecoded", 20, 30*time.Second)
	room.waitJS("top layer decoded (1280 wide)", `window.lectern.health().then(h => h.main.videos[0].width === 1280)`, 30*time.Second)
	room.waitJS("layer shown as high", `!document.getElementById('layer').hidden && document.getElementById('layer-value').dataset.layer === 'high'`, 20*time.Second)
	if txt := room.text("#layer-value"); txt != "Cao" {
		t.Errorf("layer text %q, want Cao", txt)
	}
	studio.waitJS("studio lists the layers it sends", `document.getElementById('h-layers').textContent.includes('1280×720 · 640×360 · 320×180')`, 20*time.Second)
	room.screenshot("room-simulcast-high")
	studio.screenshot("studio-simulcast")
	for _, tb := range []*tab{studio, room} {
		tb.noConsoleErrors()
	}
}

// TestBrowserLayerPin: of two classrooms, the one that pins "low" decodes a smaller
// picture (320 wide) while the other decodes 1280; pinning "audio only" shows the
// paused notice while the sound keeps arriving; "auto" brings the picture back.
func TestBrowserLayerPin(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Simulcast pin")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	b := newBrowser(t)
	studio := liveSimulcastStudio(t, s, b, id, trainer)

	low := b.tab("room-low")
	lowURL := s.url + "/room/" + id + "?token=" + s.token(id, auth.RoleSite, "lao-cai")
	low.open(lowURL)
	top := b.tab("room-top")
	top.open(s.url + "/room/" + id + "?token=" + s.token(id, auth.RoleSite, "ha-noi"))
	for _, room := range []*tab{low, top} {
		room.waitRising("main.framesDecoded", 20, 30*time.Second)
	}

	low.pin("low")
	low.waitJS("low layer decoded", `window.lectern.health().then(h => h.main.videos[0].width > 0 && h.main.videos[0].width < 1280)`, 30*time.Second)
	low.waitJS("layer shown as low, pinned", `document.getElementById('layer-value').dataset.layer === 'low' && window.lectern.health().then(h => h.layer.pin === 'low')`, 20*time.Second)
	low.waitRising("main.framesDecoded", 20, 20*time.Second)
	top.waitJS("the other classroom decodes 1280", `window.lectern.health().then(h => h.main.videos[0].width === 1280)`, 30*time.Second)
	var widths [2]float64
	widths[0] = number(low.health(), "main.videos.0.width")
	widths[1] = number(top.health(), "main.videos.0.width")
	t.Logf("frame width: pinned low %v, auto %v", widths[0], widths[1])
	if widths[0] >= widths[1] {
		t.Errorf("pinned low decodes %v wide, the other classroom %v", widths[0], widths[1])
	}
	if txt := low.text("#layer-value"); txt != "Thấp (đã chọn)" {
		t.Errorf("pinned layer text %q", txt)
	}
	low.screenshot("room-pinned-low")

	// The choice holds across a reload of the page (with its own link: the tabs of
	// one browser share the remembered token).
	low.open(lowURL)
	low.waitJS("pin kept after a reload", `window.lectern && window.lectern.health ? window.lectern.health().then(h => !!h.layer && h.layer.pin === 'low' && h.main.videos[0].width > 0 && h.main.videos[0].width < 1280 && document.getElementById('layer-pin').value === 'low') : false`, 30*time.Second)

	// Audio only: the notice, no new frames, the sound goes on.
	low.pin("audio")
	low.waitJS("paused notice", `!document.getElementById('video-paused').hidden && document.getElementById('stage').dataset.state === 'video-paused'`, 20*time.Second)
	if got := low.text("#video-paused-title"); got != "Chỉ âm thanh: đã tạm dừng hình ảnh" {
		t.Errorf("notice %q", got)
	}
	if !low.hidden("#overlay") {
		t.Errorf("the overlay covers the stage during a video pause")
	}
	low.waitRising("main.audioPackets", 50, 10*time.Second)
	frames := number(low.health(), "main.framesDecoded")
	low.waitRising("main.audioPackets", 50, 10*time.Second)
	if after := number(low.health(), "main.framesDecoded"); after > frames+2 {
		t.Errorf("video paused, yet %v frames decoded meanwhile", after-frames)
	}
	low.click("#lang-switch")
	if got := low.text("#video-paused-title"); got != "Audio only: video paused" {
		t.Errorf("English notice %q", got)
	}
	low.screenshot("room-audio-only")
	low.viewport(390, 844, true)
	low.screenshot("room-audio-only-phone")
	low.viewport(1366, 768, false)
	low.click("#lang-switch")
	top.waitRising("main.framesDecoded", 20, 10*time.Second) // the other classroom is untouched

	// Auto again: the picture comes back by itself.
	low.pin("auto")
	low.waitJS("notice gone", `document.getElementById('video-paused').hidden`, 20*time.Second)
	low.waitRising("main.framesDecoded", 20, 20*time.Second)
	for _, tb := range []*tab{studio, low, top} {
		tb.noConsoleErrors()
	}
}

// TestBrowserLayerWithoutExtension: against a server whose WHEP answers carry no
// layer extension (an older Lectern, another WHEP server: here a proxy drops the
// Link), the classroom plays as before and shows no layer controls.
func TestBrowserLayerWithoutExtension(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Older server")
	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		var keep []string
		for _, l := range r.Header.Values("Link") {
			for _, one := range strings.Split(l, ", <") {
				if !strings.Contains(one, whepLayerRel) {
					if !strings.HasPrefix(one, "<") {
						one = "<" + one
					}
					keep = append(keep, one)
				}
			}
		}
		r.Header.Del("Link")
		for _, l := range keep {
			r.Header.Add("Link", l)
		}
		return nil
	}
	older := httptest.NewServer(proxy)
	t.Cleanup(older.Close)

	b := newBrowser(t)
	studio := b.tab("studio")
	studio.open(s.url + "/studio/" + id + "?token=" + s.token(id, auth.RoleTrainer, "trainer"))
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)

	room := b.tab("room")
	room.open(older.URL + "/room/" + id + "?token=" + s.token(id, auth.RoleSite, "hue"))
	room.waitRising("main.framesDecoded", 20, 30*time.Second)
	room.waitRising("main.audioPackets", 20, 10*time.Second)
	room.waitJS("stage playing", `document.getElementById('stage').dataset.state === 'playing'`, 10*time.Second)
	var layerURL string
	if err := room.eval(`window.lectern.health().then(h => h.layerURL)`, &layerURL); err != nil || layerURL != "" {
		t.Errorf("layer URL %q without the extension (%v)", layerURL, err)
	}
	time.Sleep(2500 * time.Millisecond) // a layer poll's time: it must not show anything
	for _, sel := range []string{"#layer", "#layer-pin-box", "#video-paused"} {
		if !room.hidden(sel) {
			t.Errorf("%s shown without the layer extension", sel)
		}
	}
	for _, tb := range []*tab{studio, room} {
		tb.noConsoleErrors()
	}
}

// TestBrowserSimulcastRefused: a server whose WHIP answer lacks the rid header
// extension (an older Lectern: here a proxy drops it) makes Chromium refuse the
// simulcast answer; the studio ends that resource (DELETE) and publishes one layer,
// which the classrooms play.
func TestBrowserSimulcastRefused(t *testing.T) {
	s := pagesStack(t)
	id := s.createSession("Older server, simulcast")
	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deletes []int // statuses of DELETEs of WHIP resources
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		req := r.Request
		if req.Method == http.MethodDelete && strings.HasPrefix(req.URL.Path, "/whip/") {
			mu.Lock()
			deletes = append(deletes, r.StatusCode)
			mu.Unlock()
		}
		if req.Method != http.MethodPost || !strings.HasPrefix(req.URL.Path, "/whip/") || r.StatusCode != http.StatusCreated {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		var keep []string
		for _, line := range strings.SplitAfter(string(body), "\n") {
			if !strings.Contains(line, "rtp-stream-id") {
				keep = append(keep, line)
			}
		}
		answer := strings.Join(keep, "")
		r.Body = io.NopCloser(strings.NewReader(answer))
		r.ContentLength = int64(len(answer))
		r.Header.Set("Content-Length", strconv.Itoa(len(answer)))
		return nil
	}
	older := httptest.NewServer(proxy)
	t.Cleanup(older.Close)

	b := newBrowser(t)
	studio := b.tab("studio")
	studio.open(older.URL + "/studio/" + id + "?token=" + s.token(id, auth.RoleTrainer, "trainer"))
	studio.waitJS("camera and microphone ready", `!document.getElementById('golive').disabled`, 20*time.Second)
	studio.click("#golive")
	studio.waitJS("live badge", `document.getElementById('live-badge').dataset.live === 'on'`, 20*time.Second)
	studio.waitRising("publisher.framesEncoded", 10, 20*time.Second)
	if rids := sendingRids(studio); len(rids) != 0 {
		t.Errorf("Chromium sends rids %v after the refusal, want one plain encoding", rids)
	}
	room := b.tab("room")
	room.open(s.url + "/room/" + id + "?token=" + s.token(id, auth.RoleSite, "hue"))
	room.waitRising("main.framesDecoded", 20, 30*time.Second)
	if layers := layerPackets(t, s, id); len(layers) != 1 || layers["video"] == 0 {
		t.Errorf("camera tracks on the server: %v, want video alone", layers)
	}
	mu.Lock()
	if len(deletes) != 1 || deletes[0] != http.StatusOK {
		t.Errorf("DELETEs of refused WHIP resources: %v, want one answered 200", deletes)
	}
	mu.Unlock()
	if !studio.hidden("#h-layers") {
		t.Errorf("the studio lists layers while sending one: %q", studio.text("#h-layers"))
	}
	for _, tb := range []*tab{studio, room} {
		tb.noConsoleErrors()
	}
}
