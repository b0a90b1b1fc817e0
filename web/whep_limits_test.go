package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
)

// publishTrainer starts a trainer publishing a synthetic clip until the test ends.
func (s *stack) publishTrainer(session string) {
	s.t.Helper()
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+session, s.token(session, auth.RoleTrainer, "trainer"), nil))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		_ = pub.Play(ctx, testpeer.SyntheticClip(2*time.Second, 30, 30, 2000), nil)
	}()
	s.t.Cleanup(func() { cancel(); <-played; pub.Close() })
}

// deadOffer is a real player's offer whose peer never connects (the answer is
// never applied): what a flood of WHEP POSTs sends.
func deadOffer(t *testing.T) string {
	t.Helper()
	api, err := testpeer.NewAPI(testpeer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

// play connects a real player and waits for its video and audio.
func (s *stack) play(path, token string) (*testpeer.Subscriber, string) {
	s.t.Helper()
	var loc string
	sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 1, 1, s.signal(path, token, &loc), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(sub.Close)
	for i, n := range []int{20, 20} {
		if err := sub.WaitPackets(s.ctx, i, n); err != nil {
			s.t.Fatalf("player of %s, section %d: %v", path, i, err)
		}
	}
	return sub, loc
}

// TestWHEPFloodFromOneToken: one viewer link posts 20 offers that never connect to a
// session of 20 places, and keeps posting. Only DefaultWHEPConnectingPerToken of them
// are taken, the rest get 429 with a reason and Retry-After, and a classroom then
// connects and plays: offers still connecting take no subscriber place.
func TestWHEPFloodFromOneToken(t *testing.T) {
	s := newStack(t, stackOptions{maxSubscribers: 20, iceTimeout: time.Minute})
	id := s.createSession("Lecture")
	s.publishTrainer(id)
	viewer := s.token(id, auth.RoleViewer, "leaked-link")
	offer := deadOffer(t)
	codes := map[int]int{}
	for round := 0; round < 2; round++ { // the flood repeats
		for i := 0; i < 20; i++ {
			resp, body := s.do("POST", "/whep/"+id, viewer, "application/sdp", offer)
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests &&
				(resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "still connecting") || !strings.Contains(body, `"status":429`)) {
				t.Fatalf("refusal without a reason or Retry-After: %v %s", resp.Header, body)
			}
		}
	}
	if codes[http.StatusCreated] != DefaultWHEPConnectingPerToken || codes[http.StatusTooManyRequests] != 40-DefaultWHEPConnectingPerToken {
		t.Fatalf("status codes %v, want %d × 201 and the rest 429", codes, DefaultWHEPConnectingPerToken)
	}
	sess := s.reg.Session(id)
	if sess.Connecting() != DefaultWHEPConnectingPerToken || sess.Subscribers() != 0 {
		t.Fatalf("connecting %d subscribers %d", sess.Connecting(), sess.Subscribers())
	}
	s.play("/whep/"+id, s.token(id, auth.RoleSite, "hue"))
	if sess.Subscribers() != 1 {
		t.Fatalf("subscribers %d after the classroom connected, want 1", sess.Subscribers())
	}
}

// TestWHEPConnectingPerAddress: offers still connecting are bounded per client
// address too, whatever their tokens; a place comes back when an offer ends (here
// DELETE) or connects.
func TestWHEPConnectingPerAddress(t *testing.T) {
	s := newStack(t, stackOptions{iceTimeout: time.Minute, config: func(c *Config) {
		c.WHEPConnectingPerToken, c.WHEPConnectingPerAddress = -1, 3
	}})
	id := s.createSession("Lecture")
	s.publishTrainer(id)
	offer := deadOffer(t)
	var locs []string
	for i := 0; i < 3; i++ {
		resp, body := s.do("POST", "/whep/"+id, s.token(id, auth.RoleViewer, "v"+string(rune('a'+i))), "application/sdp", offer)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("offer %d: %d %s", i, resp.StatusCode, body)
		}
		locs = append(locs, resp.Header.Get("Location"))
	}
	other := s.token(id, auth.RoleViewer, "another")
	resp, body := s.do("POST", "/whep/"+id, other, "application/sdp", offer)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "address") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth offer from the address: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := s.do("DELETE", locs[0], testAdmin, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	// The place given back lets a real player in; once it has connected, its own
	// place is free again for the next offer.
	s.play("/whep/"+id, other)
	if err := waitUntil(s, func() bool { return s.reg.Session(id).Connecting() == 2 }); err != nil {
		t.Fatalf("connecting %d after the player connected, want 2", s.reg.Session(id).Connecting())
	}
	if resp, body := s.do("POST", "/whep/"+id, other, "application/sdp", offer); resp.StatusCode != http.StatusCreated {
		t.Fatalf("an offer after the player connected: %d %s", resp.StatusCode, body)
	}
}

// TestSiteReconnectReplacesItsConnection: a classroom's new WHEP connection (same
// session, same site, same publication) closes its previous one, so a classroom that
// reloads its page gets back into a full session at once. Another classroom does not
// replace it.
func TestSiteReconnectReplacesItsConnection(t *testing.T) {
	s := newStack(t, stackOptions{maxSubscribers: 1, iceTimeout: time.Minute})
	id := s.createSession("Lecture")
	s.publishTrainer(id)
	hue := s.token(id, auth.RoleSite, "hue")
	first, loc1 := s.play("/whep/"+id, hue)
	_, loc2 := s.play("/whep/"+id, s.token(id, auth.RoleSite, "hue")) // a new link of the same classroom
	if _, ok := s.edge.Resource(loc1[strings.LastIndex(loc1, "/")+1:]); ok {
		t.Fatal("the classroom's previous connection is still there")
	}
	if _, ok := s.edge.Resource(loc2[strings.LastIndex(loc2, "/")+1:]); !ok {
		t.Fatal("the classroom's new connection is gone")
	}
	if err := waitUntil(s, func() bool { return first.PC.ConnectionState() != webrtc.PeerConnectionStateConnected }); err != nil {
		t.Fatal("the previous connection stayed up")
	}
	if n := s.reg.Session(id).Subscribers(); n != 1 {
		t.Fatalf("subscribers %d, want 1", n)
	}
	resp, body := s.do("POST", "/whep/"+id, s.token(id, auth.RoleSite, "da-nang"), "application/sdp", deadOffer(t))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("another classroom in the full session: %d %s", resp.StatusCode, body)
	}
	if _, ok := s.edge.Resource(loc2[strings.LastIndex(loc2, "/")+1:]); !ok {
		t.Fatal("another classroom's offer replaced this one")
	}
}

// TestViewerConnectionCap: with ViewerConnections set, one viewer link plays on at
// most that many screens at once; off by default.
func TestViewerConnectionCap(t *testing.T) {
	s := newStack(t, stackOptions{config: func(c *Config) { c.ViewerConnections = 2 }})
	id := s.createSession("Lecture")
	s.publishTrainer(id)
	viewer := s.token(id, auth.RoleViewer, "hall")
	_, loc := s.play("/whep/"+id, viewer)
	s.play("/whep/"+id, viewer)
	resp, body := s.do("POST", "/whep/"+id, viewer, "application/sdp", deadOffer(t))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "viewer link") {
		t.Fatalf("a third screen: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("DELETE", loc, viewer, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	s.play("/whep/"+id, viewer)
}
