package turnserver_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"lectern/internal/testpeer"
	"lectern/turnserver"
)

// TestMain makes the test certificate a trusted root (SSL_CERT_FILE, read when
// Go first loads the system roots): pion's ICE agent checks a turns: server
// against those, with no way to pass a pool.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "turnserver-test")
	if err != nil {
		panic(err)
	}
	cert, pemCert, err := newCert()
	if err != nil {
		panic(err)
	}
	testCert = cert
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pemCert, 0o600); err != nil {
		panic(err)
	}
	os.Setenv("SSL_CERT_FILE", path)
	defer os.RemoveAll(dir)
	goleak.VerifyTestMain(m)
}

var testCert tls.Certificate

var secret = []byte("test-turn-secret")

func startServer(t *testing.T) *turnserver.Server {
	t.Helper()
	s, err := turnserver.Start(turnserver.Config{
		UDPAddr:  "127.0.0.1:0",
		TCPAddr:  "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		TLS:      &tls.Config{Certificates: []tls.Certificate{testCert}},
		RelayIP:  net.IPv4(127, 0, 0, 1),
		MediaIPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		Secret:   secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// turnClient opens a pion TURN client (UDP) on the server with the given credentials.
func turnClient(t *testing.T, s *turnserver.Server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: s.UDPAddr().String(), STUNServerAddr: s.UDPAddr().String(),
		Username: user, Password: pass, Realm: turnserver.Realm, Conn: conn, RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// startUDPServer starts a server on loopback UDP only, relaying to loopback, with
// o's limits (MediaPorts, MaxPerClient, RelayBitrate); the caller closes it.
func startUDPServer(t *testing.T, o turnserver.Config) *turnserver.Server {
	t.Helper()
	o.UDPAddr, o.RelayIP, o.MediaIPs, o.Secret = "127.0.0.1:0", net.IPv4(127, 0, 0, 1), []net.IP{net.IPv4(127, 0, 0, 1)}, secret
	s, err := turnserver.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allocate connects a client with a classroom's credentials for the next hour
// and allocates a relay; the caller closes the relay.
func allocate(t *testing.T, s *turnserver.Server) (*turn.Client, net.PacketConn) {
	t.Helper()
	user, pass := s.Credentials("classroom-1", time.Now().Add(time.Hour))
	c := turnClient(t, s, user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	return c, relay
}

func TestCredentialsRefusedWhenWrongOrExpired(t *testing.T) {
	s := startServer(t)
	now := time.Now()
	goodUser, goodPass := turnserver.MintCredentials(secret, "classroom-1", now, now.Add(time.Hour))
	expUser, expPass := turnserver.MintCredentials(secret, "classroom-1", now.Add(-2*time.Hour), now.Add(-time.Hour))
	otherUser, otherPass := turnserver.MintCredentials([]byte("another secret"), "classroom-1", now, now.Add(time.Hour))
	cases := []struct {
		name, user, pass string
		ok               bool
	}{
		{"wrong password", goodUser, "bm90IHRoZSBwYXNzd29yZA==", false},
		{"other secret", otherUser, otherPass, false},
		{"expired", expUser, expPass, false},
		{"extended expiry, same password", strings.Replace(goodUser, goodUser[:strings.Index(goodUser, ":")], "9999999999", 1), goodPass, false},
		{"valid", goodUser, goodPass, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Refusals()
			c := turnClient(t, s, tc.user, tc.pass)
			relay, err := c.Allocate()
			if tc.ok {
				if err != nil {
					t.Fatalf("valid credentials refused: %v", err)
				}
				_ = relay.Close()
				return
			}
			if err == nil {
				_ = relay.Close()
				t.Fatal("allocation granted")
			}
			if s.Refusals() <= before {
				t.Errorf("refusal not counted")
			}
		})
	}
}

func TestMintCredentialsCapsLifetime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	user, _ := turnserver.MintCredentials(secret, "a:b", now, now.Add(30*24*time.Hour))
	if want := "1800043200:ab"; user != want {
		t.Errorf("username %q, want %q (expiry capped at 12 h, ':' removed from the participant)", user, want)
	}
	user, _ = turnserver.MintCredentials(secret, "x", now, now.Add(time.Minute))
	if want := "1800000060:x"; user != want {
		t.Errorf("username %q, want %q (the token's earlier expiry kept)", user, want)
	}
}

func TestRelayOnlyToOwnMediaAddresses(t *testing.T) {
	s := startServer(t)
	c, relay := allocate(t, s)
	defer relay.Close()
	for _, foreign := range []string{"192.0.2.1:9", "10.1.2.3:3478", "8.8.8.8:53"} {
		addr, _ := net.ResolveUDPAddr("udp4", foreign)
		before := s.Refusals()
		if err := c.CreatePermission(addr); err == nil {
			t.Errorf("permission to %s granted: open relay", foreign)
		}
		if s.Refusals() <= before {
			t.Errorf("refusal for %s not counted", foreign)
		}
	}
	// This server's own media address stays reachable.
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	if err := c.CreatePermission(media.LocalAddr()); err != nil {
		t.Fatalf("permission to own media address refused: %v", err)
	}
	if _, err := relay.WriteTo([]byte("hello"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := media.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("relayed datagram: %q, %v", buf[:n], err)
	}
	if from.String() != relay.LocalAddr().String() {
		t.Errorf("datagram from %s, want relay %s", from, relay.LocalAddr())
	}
}

// TestRelayOnlySubscriberReceivesMedia: a pion peer that may use only relay
// candidates reaches a media sender on this host through TURN over UDP, over
// TCP and over TLS, and receives its RTP.
func TestRelayOnlySubscriberReceivesMedia(t *testing.T) {
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			s := startServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			api, err := testpeer.NewAPI(testpeer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sender, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			defer sender.Close()
			track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "lecture")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sender.AddTrack(track); err != nil {
				t.Fatal(err)
			}

			var ice []webrtc.ICEServer
			for _, srv := range s.ICEServers("127.0.0.1", "classroom-1", time.Now().Add(time.Hour)) {
				var urls []string
				for _, u := range srv.URLs {
					want := "turn:" + "*transport=" + transport
					if transport == "tls" {
						want = "turns:*transport=tcp"
					}
					prefix, suffix, _ := strings.Cut(want, "*")
					if strings.HasPrefix(u, prefix) && strings.HasSuffix(u, suffix) {
						urls = append(urls, u)
					}
				}
				srv.URLs = urls
				ice = append(ice, srv)
			}
			if len(ice) != 1 || len(ice[0].URLs) != 1 {
				t.Fatalf("ICE servers for %s: %+v", transport, ice)
			}
			recvAPI := relayAPI(t)
			receiver, err := recvAPI.NewPeerConnection(webrtc.Configuration{ICEServers: ice, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
			if err != nil {
				t.Fatal(err)
			}
			defer receiver.Close()
			if _, err := receiver.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
			got := make(chan struct{})
			var once sync.Once
			var readers sync.WaitGroup
			receiver.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				readers.Add(1)
				defer readers.Done()
				for {
					if _, _, err := tr.ReadRTP(); err != nil {
						return
					}
					once.Do(func() { close(got) })
				}
			})

			offer, err := receiver.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			gathered := webrtc.GatheringCompletePromise(receiver)
			if err := receiver.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			<-gathered
			if !strings.Contains(receiver.LocalDescription().SDP, "typ relay") {
				t.Fatalf("no relay candidate gathered over TURN-%s:\n%s", transport, receiver.LocalDescription().SDP)
			}
			if err := sender.SetRemoteDescription(*receiver.LocalDescription()); err != nil {
				t.Fatal(err)
			}
			answer, err := sender.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			sgathered := webrtc.GatheringCompletePromise(sender)
			if err := sender.SetLocalDescription(answer); err != nil {
				t.Fatal(err)
			}
			<-sgathered
			if err := receiver.SetRemoteDescription(*sender.LocalDescription()); err != nil {
				t.Fatal(err)
			}

			var writer sync.WaitGroup
			writer.Add(1)
			go func() {
				defer writer.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for seq := uint16(0); ; seq++ {
					select {
					case <-ctx.Done():
						return
					case <-got:
						return
					case <-tick.C:
					}
					// An IDR NAL unit, enough for the receiver to see RTP.
					_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: []byte{0x65, 0x88, 0x84, 0x00}})
				}
			}()
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatalf("no media through TURN-%s (state %s)", transport, receiver.ICEConnectionState())
			}
			writer.Wait()
			pair, err := receiver.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err != nil || pair == nil {
				t.Fatalf("selected pair: %v", err)
			}
			if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
				t.Errorf("receiver's local candidate is %s, want relay", pair.Local.Typ)
			}
			if s.Allocations() < 1 {
				t.Errorf("allocations gauge %d, want ≥ 1", s.Allocations())
			}
			_ = receiver.Close()
			_ = sender.Close()
			readers.Wait()
		})
	}
}

// relayAPI is a pion API for a peer that reaches the server only through TURN.
func relayAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

// TestRelayOnlyToMediaPorts: with MediaPorts set, a relay cannot reach other
// ports of this server's own addresses (another service on loopback): those
// datagrams are dropped and counted, the media port still gets its own.
func TestRelayOnlyToMediaPorts(t *testing.T) {
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s := startUDPServer(t, turnserver.Config{MediaPorts: []int{media.LocalAddr().(*net.UDPAddr).Port}})
	defer s.Close()
	c, relay := allocate(t, s)
	defer relay.Close()
	if err := c.CreatePermission(media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	before := s.Refusals()
	if _, err := relay.WriteTo([]byte("to another service"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.WriteTo([]byte("media"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = media.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := media.ReadFrom(buf); err != nil || string(buf[:n]) != "media" {
		t.Fatalf("media port got %q, %v", buf[:n], err)
	}
	// The relay handled the first datagram before the second, and loopback
	// delivers at send time: had it been relayed, it would be queued already
	// (the short deadline only ends the read of an empty socket).
	_ = other.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := other.ReadFrom(buf); err == nil {
		t.Fatalf("another port of this host got %q through the relay", buf[:n])
	}
	if s.Refusals() <= before {
		t.Error("dropped datagram not counted")
	}
}

// TestAllocationsCappedPerClientAddress: one address (a classroom behind NAT)
// holds at most MaxPerClient relays; the next is refused (486) and counted.
func TestAllocationsCappedPerClientAddress(t *testing.T) {
	s := startUDPServer(t, turnserver.Config{MaxPerClient: 2})
	defer s.Close()
	user, pass := s.Credentials("classroom-1", time.Now().Add(time.Hour))
	for i := range 2 {
		relay, err := turnClient(t, s, user, pass).Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		defer relay.Close()
	}
	before := s.Refusals()
	if relay, err := turnClient(t, s, user, pass).Allocate(); err == nil {
		_ = relay.Close()
		t.Fatal("third allocation from one address granted with a cap of 2")
	}
	if s.Refusals() <= before {
		t.Error("quota refusal not counted")
	}
	if got := s.Allocations(); got != 2 {
		t.Errorf("allocations gauge %d, want 2", got)
	}
}

// FuzzMintCredentials: whatever the participant name, the minted username is
// "<expiry>:<id>" with one colon and pion's TURN REST handler accepts the pair.
func FuzzMintCredentials(f *testing.F) {
	for _, seed := range []string{"classroom-1", "abc/ha-noi", "a:b:c", "", "Hà Nội", "\x00:\xff"} {
		f.Add(seed)
	}
	check := turn.LongTermTURNRESTAuthHandler(string(secret), nil)
	f.Fuzz(func(t *testing.T, participant string) {
		now := time.Now()
		user, pass := turnserver.MintCredentials(secret, participant, now, now.Add(time.Hour))
		if strings.Count(user, ":") != 1 {
			t.Fatalf("username %q has not exactly one ':'", user)
		}
		_, key, ok := check(&turn.RequestAttributes{Username: user, Realm: turnserver.Realm, SrcAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
		if !ok || string(key) != string(turn.GenerateAuthKey(user, turnserver.Realm, pass)) {
			t.Fatalf("pion refuses minted %q", user)
		}
	})
}

// TestRelayBitrateCap: one allocation cannot push more than its budget through
// the relay: beyond the one-second burst, datagrams are dropped and counted.
func TestRelayBitrateCap(t *testing.T) {
	const bitrate = 80_000 // 10 000 bytes a second, the burst too
	s := startUDPServer(t, turnserver.Config{RelayBitrate: bitrate})
	defer s.Close()
	c, relay := allocate(t, s)
	defer relay.Close()
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	if err := c.CreatePermission(media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	const sent, size = 100, 1000 // 100 kB at once: ten times the budget
	payload := make([]byte, size)
	for range sent {
		if _, err := relay.WriteTo(payload, media.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	buf := make([]byte, 2*size)
	for {
		// The read deadline only ends the count once the relay has gone quiet.
		_ = media.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := media.ReadFrom(buf); err != nil {
			break
		}
		received++
	}
	if received == 0 || received > 2*bitrate/8/size {
		t.Errorf("received %d of %d datagrams of %d bytes through a %d bit/s relay", received, sent, size, bitrate)
	}
	if dropped := s.Dropped(); dropped == 0 || int(dropped)+received > sent {
		t.Errorf("dropped %d, received %d, sent %d", dropped, received, sent)
	}
}
