package udprelay

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A pion client connects to a pion "server" (one UDP mux port, as Lectern's edge)
// through the relay: ICE succeeds with the server seeing the relay's upstream
// socket as the client (peer-reflexive), and all media flows through the relay,
// shaped.
func TestPionThroughRelay(t *testing.T) {
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, sock)
	t.Cleanup(func() { _ = mux.Close() })
	api := func(server bool) *webrtc.API {
		m := &webrtc.MediaEngine{}
		if err := m.RegisterDefaultCodecs(); err != nil {
			t.Fatal(err)
		}
		se := webrtc.SettingEngine{}
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		if server {
			se.SetICEUDPMux(mux)
		}
		return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	}
	srv, err := api(true).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "relay-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	cl, err := api(false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	if _, err := cl.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	received := make(chan int, 1)
	cl.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := 0
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				received <- n
				return
			}
			n++
		}
	})

	relay := newRelay(t, Config{Down: Shape{RateBps: 400_000}}) // upstream learnt from the answer
	signal := relay.WrapSignal(func(offer string) (string, error) {
		if err := srv.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
			return "", err
		}
		answer, err := srv.CreateAnswer(nil)
		if err != nil {
			return "", err
		}
		done := webrtc.GatheringCompletePromise(srv)
		if err := srv.SetLocalDescription(answer); err != nil {
			return "", err
		}
		<-done
		return srv.LocalDescription().SDP, nil
	})
	offer, err := cl.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(cl)
	if err := cl.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	answer, err := signal(cl.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for srv.ConnectionState() != webrtc.PeerConnectionStateConnected || cl.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-ctx.Done():
			t.Fatalf("not connected: server %s, client %s", srv.ConnectionState(), cl.ConnectionState())
		case <-time.After(20 * time.Millisecond):
		}
	}
	pair, err := srv.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("server's selected pair: %v, %v", pair, err)
	}
	if got := net.JoinHostPort(pair.Remote.Address, strconv.Itoa(int(pair.Remote.Port))); got != relay.UpstreamAddr().String() {
		t.Errorf("server's remote candidate %s (%s), want the relay's upstream socket %s", got, pair.Remote.Typ, relay.UpstreamAddr())
	}

	// 1 Mbit/s of 1000-byte packets for 2 s through a 400 kbit/s down link.
	start := time.Now()
	payload := make([]byte, 1000)
	for i := 0; time.Since(start) < 2*time.Second; i++ {
		if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i * 900)}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(8 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	_ = cl.Close()
	n := <-received
	st := relay.Down.Stats()
	t.Logf("client got %d RTP packets; relay down %+v", n, st)
	if n == 0 {
		t.Fatal("no media arrived through the relay")
	}
	if st.QueueDropped == 0 || n > 140 { // 400 kbit/s x 2.3 s / 1000+ bytes ~ 115 + bucket
		t.Errorf("media was not shaped: %d packets arrived, %d dropped at the queue", n, st.QueueDropped)
	}
}
