package web

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/turnserver"
)

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

			sub, hdr, err := testpeer.NewRelaySubscriber(s.ctx, s.url+"/whep/"+id, site,
				func(u string) bool {
					return strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "transport="+transport)
				})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			var found bool
			for _, srv := range testpeer.ICEServersFromLinks(hdr) {
				found = found || strings.HasSuffix(srv.URLs[0], "transport="+transport) && strings.HasSuffix(srv.Username, ":"+id+"/ha-giang")
			}
			if !found {
				t.Fatalf("no TURN-%s URL with this participant's credentials in %q", transport, hdr.Values("Link"))
			}
			select {
			case <-sub.Video:
			case <-time.After(20 * time.Second):
				t.Fatalf("no video through TURN-%s (ICE %s)", transport, sub.PC.ICEConnectionState())
			}
			if ts.Allocations() < 1 {
				t.Errorf("TURN allocations %d, want ≥ 1", ts.Allocations())
			}
		})
	}
}

// TestTURNCredentialsOnlyForAuthenticatedOffers: OPTIONS (open to anyone) carries
// no TURN credentials.
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
