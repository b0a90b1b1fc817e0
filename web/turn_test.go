package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/turnserver"
)

// linkICE parses the ice-server Link headers of a WHIP/WHEP answer (RFC 9725 §4.6).
func linkICE(h http.Header) []webrtc.ICEServer {
	re := regexp.MustCompile(`^<([^>]+)>; rel="ice-server"(?:; username="([^"]*)"; credential="([^"]*)")?`)
	var out []webrtc.ICEServer
	for _, l := range h.Values("Link") {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, webrtc.ICEServer{URLs: []string{m[1]}, Username: m[2], Credential: m[3]})
		}
	}
	return out
}

// TestWHEPThroughEmbeddedTURN: a classroom that can reach the server only through
// TURN (ICETransportPolicy relay) takes the credentials of the WHEP answer's Link
// headers, as the pages' whip-whep client does, and receives the trainer's media
// through the embedded TURN server over UDP and over TCP.
func TestWHEPThroughEmbeddedTURN(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ts, err := turnserver.Start(turnserver.Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
				RelayIP: net.IPv4(127, 0, 0, 1), MediaIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Secret: []byte("turn secret")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ts.Close() })
			s := newStack(t, stackOptions{config: func(c *Config) { c.TURNServers = ts.ICEServers }})
			id := s.createSession("Lecture")
			trainer := s.token(id, auth.RoleTrainer, "trainer")
			site := s.token(id, auth.RoleSite, "ha-giang")

			pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			playing, stop := context.WithCancel(s.ctx)
			played := make(chan error, 1)
			go func() { played <- pub.Play(playing, testpeer.SyntheticClip(20*time.Second, 30, 30, 3000), nil) }()
			defer func() { stop(); <-played }()

			api, err := testpeer.NewAPI(testpeer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			pc, err := api.NewPeerConnection(webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
				if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
					t.Fatal(err)
				}
			}
			got := make(chan struct{})
			var once sync.Once
			var readers sync.WaitGroup
			pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				readers.Add(1)
				defer readers.Done()
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
					if tr.Kind() == webrtc.RTPCodecTypeVideo {
						once.Do(func() { close(got) })
					}
				}
			})
			defer func() { _ = pc.Close(); readers.Wait() }()

			// The offer goes out before gathering (trickle ICE): the answer's Link
			// headers bring the TURN credentials, then the relay candidates are
			// gathered and sent by PATCH.
			offer, err := pc.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequestWithContext(s.ctx, "POST", s.url+"/whep/"+id, strings.NewReader(offer.SDP))
			req.Header.Set("Content-Type", "application/sdp")
			req.Header.Set("Authorization", "Bearer "+site)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("WHEP: %d %s", resp.StatusCode, answer)
			}
			var ice []webrtc.ICEServer
			for _, srv := range linkICE(resp.Header) {
				if strings.HasPrefix(srv.URLs[0], "turn:") && strings.HasSuffix(srv.URLs[0], "transport="+transport) {
					ice = append(ice, srv)
				}
			}
			if len(ice) != 1 || ice[0].Username == "" || !strings.HasSuffix(ice[0].Username, ":"+id+"/ha-giang") {
				t.Fatalf("TURN-%s servers in the Link headers: %+v (all: %q)", transport, ice, resp.Header.Values("Link"))
			}
			if err := pc.SetConfiguration(webrtc.Configuration{ICEServers: ice, ICETransportPolicy: webrtc.ICETransportPolicyRelay}); err != nil {
				t.Fatal(err)
			}
			gathered := webrtc.GatheringCompletePromise(pc)
			if err := pc.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			<-gathered
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
				t.Fatal(err)
			}
			var frag strings.Builder
			for _, line := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
				if strings.HasPrefix(line, "a=candidate:") {
					if !strings.Contains(line, "typ relay") {
						t.Fatalf("relay-only peer gathered %q", line)
					}
					frag.WriteString(line + "\r\n")
				}
			}
			if frag.Len() == 0 {
				t.Fatalf("no relay candidate through TURN-%s", transport)
			}
			loc := resp.Header.Get("Location")
			if r, body := s.do("PATCH", loc, site, "application/trickle-ice-sdpfrag", frag.String(), "If-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNoContent {
				t.Fatalf("trickle: %d %s", r.StatusCode, body)
			}
			select {
			case <-got:
			case <-time.After(20 * time.Second):
				t.Fatalf("no video through TURN-%s (ICE %s)", transport, pc.ICEConnectionState())
			}
			if ts.Allocations() < 1 {
				t.Errorf("TURN allocations %d, want ≥ 1", ts.Allocations())
			}
		})
	}
}

// TestTURNCredentialsOnlyForAuthenticatedOffers: OPTIONS (open to anyone) carries
// no TURN credentials; a WHEP answer without the embedded server carries none either.
func TestTURNCredentialsOnlyForAuthenticatedOffers(t *testing.T) {
	ts, err := turnserver.Start(turnserver.Config{UDPAddr: "127.0.0.1:0",
		RelayIP: net.IPv4(127, 0, 0, 1), MediaIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Secret: []byte("turn secret")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	s := newStack(t, stackOptions{config: func(c *Config) { c.TURNServers = ts.ICEServers }})
	id := s.createSession("Lecture")
	resp, _ := s.do("OPTIONS", "/whep/"+id, "", "", "")
	if links := strings.Join(resp.Header.Values("Link"), ","); strings.Contains(links, "turn:") {
		t.Errorf("OPTIONS hands out TURN credentials: %q", links)
	}
}
