package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
)

func TestSessionAPI(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Chuyển đổi số - Bài 1")
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"create without token", "POST", "/api/sessions", "", `{"title":"x"}`, 401},
		{"create with a participant token", "POST", "/api/sessions", s.token(id, auth.RoleTrainer, "trainer"), `{"title":"x"}`, 403},
		{"create without title", "POST", "/api/sessions", testAdmin, `{"title":""}`, 400},
		{"create with bad json", "POST", "/api/sessions", testAdmin, `{"title":`, 400},
		{"get with admin", "GET", "/api/sessions/" + id, testAdmin, "", 200},
		{"get with viewer token", "GET", "/api/sessions/" + id, s.token(id, auth.RoleViewer, "v1"), "", 200},
		{"get unknown", "GET", "/api/sessions/zzzzzzzzzz", testAdmin, "", 404},
		{"get path traversal", "GET", "/api/sessions/..%2f..%2fetc", testAdmin, "", 404},
		{"get with garbage token", "GET", "/api/sessions/" + id, "not-a-jwt", "", 401},
		{"mint bad role", "POST", "/api/sessions/" + id + "/tokens", testAdmin, `{"role":"boss","name":"x"}`, 400},
		{"mint bad name", "POST", "/api/sessions/" + id + "/tokens", testAdmin, `{"role":"site","name":"Hà Nội"}`, 400},
		{"mint bad ttl", "POST", "/api/sessions/" + id + "/tokens", testAdmin, `{"role":"site","name":"hn","ttl":"soon"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := ""
			if tc.body != "" {
				ct = "application/json"
			}
			resp, body := s.do(tc.method, tc.path, tc.token, ct, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want >= 400 && !strings.Contains(body, `"error"`) {
				t.Fatalf("error body without a reason: %s", body)
			}
		})
	}
	resp, body := s.do("GET", "/api/sessions", testAdmin, "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, "Chuyển đổi số") {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/api/sessions", "", "", ""); resp.StatusCode != 200 || strings.Contains(body, "Chuyển đổi số") {
		t.Fatalf("an unlisted session in the public list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("DELETE", "/api/sessions/"+id, testAdmin, "", ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp, _ := s.do("GET", "/api/sessions/"+id, testAdmin, "", ""); resp.StatusCode != 404 {
		t.Fatalf("deleted session still there: %d", resp.StatusCode)
	}
}

func signedToken(t *testing.T, secret []byte, session string, role auth.Role, exp time.Time) string {
	t.Helper()
	c := auth.Claims{Session: session, Role: role, Name: "trainer", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "lectern", ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(exp.Add(-2 * time.Hour))}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestWHIPBadInput(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	other := s.createSession("Other lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	api, _ := testpeer.NewAPI(testpeer.Options{VP8Only: true})
	pc, _ := api.NewPeerConnection(webrtc.Configuration{})
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	vp8, _ := pc.CreateOffer(nil)
	for _, tc := range []struct {
		name, path, token, ct, body string
		want                        int
		mention                     []string
	}{
		{"no token", "/whip/" + id, "", "application/sdp", "v=0", 401, nil},
		{"expired token", "/whip/" + id, signedToken(t, testSecret, id, auth.RoleTrainer, time.Now().Add(-time.Hour)), "application/sdp", "v=0", 401, []string{"expired"}},
		{"wrongly signed token", "/whip/" + id, signedToken(t, []byte("another-secret-another-secret-xx"), id, auth.RoleTrainer, time.Now().Add(time.Hour)), "application/sdp", "v=0", 401, nil},
		{"other session's token", "/whip/" + other, trainer, "application/sdp", "v=0", 403, nil},
		{"viewer publishing", "/whip/" + id, s.token(id, auth.RoleViewer, "v"), "application/sdp", "v=0", 403, nil},
		{"site without the floor", "/whip/" + id, s.token(id, auth.RoleSite, "hue"), "application/sdp", "v=0", 403, []string{"floor"}},
		{"unknown session", "/whip/nosuchsess", trainer, "application/sdp", "v=0", 404, nil},
		{"not sdp", "/whip/" + id, trainer, "text/plain", "hello", 415, []string{"application/sdp"}},
		{"garbage sdp", "/whip/" + id, trainer, "application/sdp", "this is not sdp", 400, []string{"SDP"}},
		{"too large", "/whip/" + id, trainer, "application/sdp", strings.Repeat("a", 70<<10), 413, nil},
		{"vp8 only", "/whip/" + id, trainer, "application/sdp", vp8.SDP, 422, []string{"H.264", "Opus", "VP8"}},
		{"whep unknown publication", "/whep/" + id + "/site-nobody", trainer, "application/sdp", "v=0", 404, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do("POST", tc.path, tc.token, tc.ct, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			for _, m := range tc.mention {
				if !strings.Contains(body, m) {
					t.Fatalf("body %q does not mention %q", body, m)
				}
			}
		})
	}
	for _, tc := range []struct{ name, method, path string }{
		{"patch unknown resource", "PATCH", "/whip/" + id + "/00000000000000000000000000000000"},
		{"delete unknown resource", "DELETE", "/whip/" + id + "/00000000000000000000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(tc.method, tc.path, trainer, "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n")
			if resp.StatusCode != 404 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		})
	}
	if s.edge.Resources() != 0 {
		t.Fatal("refused requests left connections behind")
	}
}

func TestWHIPToWHEPOverHTTP(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	ev := s.subscribeEvents(id, s.token(id, auth.RoleViewer, "watcher"))
	var pubLoc string
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, true, s.signal("/whip/"+id, trainer, &pubLoc))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if !strings.HasPrefix(pubLoc, "/whip/"+id+"/") {
		t.Fatalf("Location %q", pubLoc)
	}
	go pub.Play(s.ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 3000), nil)
	go func() { // the screen share carries a picture too
		c := testpeer.SyntheticClip(2*time.Second, 5, 5, 3000)
		var seq uint16
		for i, au := range c.Video {
			for _, p := range au.Packetize(1200) {
				seq++
				p.PayloadType, p.SequenceNumber, p.Timestamp = 102, seq, uint32(i)*18000
				_ = pub.Screen.WriteRTP(&p)
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	ev.waitFor(t, "session.live", "")

	var subs []*testpeer.Subscriber
	for i, role := range []auth.Role{auth.RoleSite, auth.RoleViewer, auth.RoleTrainer} {
		var loc string
		sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 2, 1, s.signal("/whep/"+id, s.token(id, role, "p"+string(rune('a'+i))), &loc), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if !strings.HasPrefix(loc, "/whep/"+id+"/") {
			t.Fatalf("WHEP Location %q", loc)
		}
		subs = append(subs, sub)
	}
	for i, sub := range subs {
		for sec, n := range []int{60, 3, 30} { // camera, screen, audio
			if err := sub.WaitPackets(s.ctx, sec, n); err != nil {
				t.Fatalf("subscriber %d section %d: %v", i, sec, err)
			}
		}
	}
	resp, body := s.do("GET", "/api/sessions/"+id, trainer, "", "")
	var st sessionState
	_ = json.Unmarshal([]byte(body), &st)
	if resp.StatusCode != 200 || !st.Live || st.Subscribers != 3 || len(st.Publications) != 1 || len(st.Publications[0].Tracks) != 3 {
		t.Fatalf("session state: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "subscribers", "3")

	// The trainer says goodbye: the publication ends at once.
	if resp, body := s.do("DELETE", pubLoc, trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "publication.removed", "trainer")
	ev.waitFor(t, "session.ended", "")
}

func TestTrickleAndICERestart(t *testing.T) {
	s, viewer, loc, _, res := newWHEPViewer(t)
	etag := res.ETag()
	frag := "a=ice-ufrag:" + "zzzz" + "\r\na=ice-pwd:" + "0123456789abcdefghijkl" + "\r\n"

	resp, body := s.do("PATCH", loc, viewer, "application/trickle-ice-sdpfrag", frag, "If-Match", `"wrong"`)
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("wrong ETag: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("PATCH", loc, viewer, "application/sdp", frag, "If-Match", etag)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("wrong content type: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("PATCH", loc, viewer, "application/trickle-ice-sdpfrag", "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n", "If-Match", etag)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("trickle: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do("PATCH", loc, viewer, "application/trickle-ice-sdpfrag", frag, "If-Match", etag)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "a=ice-ufrag:") || resp.Header.Get("ETag") == etag {
		t.Fatalf("ICE restart: %d etag %q→%q %s", resp.StatusCode, etag, resp.Header.Get("ETag"), body)
	}
	if resp, _ := s.do("DELETE", loc, viewer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}

func TestCORSAndICEServerDiscovery(t *testing.T) {
	s := newStack(t, stackOptions{iceServers: []webrtc.ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}}})
	id := s.createSession("Lecture")
	resp, _ := s.do("OPTIONS", "/whip/"+id, "", "", "", "Origin", "https://portal.example.edu", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://portal.example.edu" {
		t.Fatalf("preflight allow-origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Link"), ","), `<stun:stun.example.org:3478>; rel="ice-server"`) {
		t.Fatalf("Link headers %q", resp.Header.Values("Link"))
	}
	resp, _ = s.do("GET", "/api/sessions", "", "", "", "Origin", "https://portal.example.edu")
	exposed := strings.ToLower(resp.Header.Get("Access-Control-Expose-Headers"))
	for _, h := range []string{"location", "etag", "link", "accept-patch"} {
		if !strings.Contains(exposed, h) {
			t.Fatalf("%s not exposed: %q", h, exposed)
		}
	}
	resp, _ = s.do("GET", "/api/sessions", "", "", "", "Origin", "https://evil.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("an unlisted origin was allowed")
	}
}

func TestTalkBack(t *testing.T) {
	s := newStack(t, stackOptions{})
	id := s.createSession("Lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	site := s.token(id, auth.RoleSite, "hue")
	otherSite := s.token(id, auth.RoleSite, "da-nang")
	ev := s.subscribeEvents(id, trainer)

	if resp, body := s.do("POST", "/api/sessions/"+id+"/hands", trainer, "", ""); resp.StatusCode != 403 {
		t.Fatalf("trainer raising a hand: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("POST", "/api/sessions/"+id+"/hands", site, "", ""); resp.StatusCode != 200 {
		t.Fatalf("raise hand: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "hands", `"participant":"hue"`)
	if resp, _ := s.do("PUT", "/api/sessions/"+id+"/speakers/hue", otherSite, "", ""); resp.StatusCode != 403 {
		t.Fatalf("a site granted the floor: %d", resp.StatusCode)
	}
	if resp, body := s.do("PUT", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("grant: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "speakers", `"publication":"site-hue"`)

	var siteLoc string
	sitePub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, site, &siteLoc))
	if err != nil {
		t.Fatal(err)
	}
	defer sitePub.Close()
	go sitePub.Play(s.ctx, testpeer.SyntheticClip(time.Second, 30, 30, 2000), nil)
	ev.waitFor(t, "publication.added", "site-hue")

	// The studio and another classroom hear (and see) the classroom with the floor.
	var listeners []*testpeer.Subscriber
	for _, tok := range []string{trainer, otherSite} {
		sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, s.signal("/whep/"+id+"/site-hue", tok, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		listeners = append(listeners, sub)
	}
	for _, sub := range listeners {
		if err := sub.WaitPackets(s.ctx, 1, 20); err != nil {
			t.Fatal("audio of the classroom with the floor:", err)
		}
		if err := sub.WaitPackets(s.ctx, 0, 20); err != nil {
			t.Fatal("video of the classroom with the floor:", err)
		}
	}

	// Taking the floor back ends the classroom's publication and its connection.
	if resp, body := s.do("DELETE", "/api/sessions/"+id+"/speakers/hue", trainer, "", ""); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	ev.waitFor(t, "speakers", "[]")
	ev.waitFor(t, "publication.removed", "site-hue")
	if err := waitUntil(s, func() bool { return sitePub.PC.ConnectionState() != webrtc.PeerConnectionStateConnected }); err != nil {
		t.Fatal("the classroom's connection stayed up after the floor was taken back")
	}
	if resp, _ := s.do("POST", "/whip/"+id, site, "application/sdp", "v=0"); resp.StatusCode != 403 {
		t.Fatalf("publishing after revoke: %d", resp.StatusCode)
	}
}

func waitUntil(s *stack, cond func() bool) error {
	for !cond() {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// TestWHEPBurst sends 200 WHEP requests at once; the session allows 150 subscribers.
// Each is served or cleanly refused, and the peers that never connect are cleaned up.
// The per-token and per-address limits of offers still connecting are off here: this
// is the session's own budget (whep_limits_test.go tests those).
func TestWHEPBurst(t *testing.T) {
	s := newStack(t, stackOptions{maxSubscribers: 150, iceTimeout: 5 * time.Second,
		config: func(c *Config) { c.WHEPConnectingPerToken, c.WHEPConnectingPerAddress = -1, -1 }})
	id := s.createSession("Busy lecture")
	viewer := s.token(id, auth.RoleViewer, "v")
	api, _ := testpeer.NewAPI(testpeer.Options{})
	pc, _ := api.NewPeerConnection(webrtc.Configuration{})
	defer pc.Close()
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	offer, _ := pc.CreateOffer(nil)

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(s.ctx, "POST", s.url+"/whep/"+id, strings.NewReader(offer.SDP))
			req.Header.Set("Content-Type", "application/sdp")
			req.Header.Set("Authorization", "Bearer "+viewer)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Peers that never connect free their place after the ICE timeout, so on a
	// loaded machine a few late requests may be served: every answer is a 201 or a
	// clean 503, and the limit was enforced.
	if codes[201]+codes[503] != 200 || codes[201] < 150 || codes[503] == 0 {
		t.Fatalf("status codes %v, want 150+ × 201 and the rest 503", codes)
	}
	if resp, _ := s.do("GET", "/healthz", "", "", ""); resp.StatusCode != 200 {
		t.Fatal("server unhealthy after the burst")
	}
	if err := waitUntil(s, func() bool { return s.edge.Resources() == 0 && s.reg.Session(id).Subscribers() == 0 }); err != nil {
		t.Fatalf("never cleaned up: %d connections, %d subscribers counted", s.edge.Resources(), s.reg.Session(id).Subscribers())
	}
}
