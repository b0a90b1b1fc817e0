package netns

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Sockets made through the namespace live behind the veth: a TCP connection from
// it reaches the host at HostIP from NSIP, a command run in it sees the
// namespace's address, and Close removes everything.
func TestNamespaceSocketsAndCommand(t *testing.T) {
	n := New(t, Options{})
	ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HostIP, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c.RemoteAddr()
		_, _ = c.Write([]byte("hi"))
		_ = c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.DialTCP(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	_ = c.Close()
	if from := (<-accepted).(*net.TCPAddr).AddrPort().Addr(); from != n.NSIP || string(b) != "hi" {
		t.Errorf("host saw the connection from %v (read %q), want from the namespace's %v", from, b, n.NSIP)
	}
	// 127.0.0.1 inside is the namespace's own loopback: the host's listener is not there.
	if c, err := n.DialTCP(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ln.Addr().(*net.TCPAddr).Port)).String()); err == nil {
		_ = c.Close()
		t.Error("dialled the host's port on 127.0.0.1 from inside the namespace")
	}
	// HTTP from inside: the server sees the namespace's address.
	hln, err := net.Listen("tcp", netip.AddrPortFrom(n.HostIP, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.RemoteAddr) })}
	go func() { _ = srv.Serve(hln) }()
	defer srv.Close()
	resp, err := n.HTTPClient().Get("http://" + hln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if from, err := netip.ParseAddrPort(string(body)); err != nil || from.Addr() != n.NSIP {
		t.Errorf("HTTP request arrived from %q, want %v", body, n.NSIP)
	}
	// The up direction can be limited too, and unlimited again.
	if err := n.SetUpRate(1_000_000); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Command(ctx, "tc", "qdisc", "show", "dev", n.NSIf).CombinedOutput(); err != nil || !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "1Mbit") {
		t.Errorf("after SetUpRate(1M): %v: %s", err, out)
	}
	if err := n.SetUpRate(0); err != nil {
		t.Fatal(err)
	}
	if out, _ := n.Command(ctx, "tc", "qdisc", "show", "dev", n.NSIf).CombinedOutput(); strings.Contains(string(out), "tbf") {
		t.Errorf("after SetUpRate(0) a tbf is left: %s", out)
	}
	out, err := n.Command(ctx, "ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil || !strings.Contains(string(out), n.NSIP.String()+"/30") || strings.Contains(string(out), n.HostIP.String()+"/30") {
		t.Errorf("ip addr in the namespace (%v): %s; want %v only", err, out, n.NSIP)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/var/run/netns/" + n.Name); !os.IsNotExist(err) {
		t.Errorf("namespace %s still there after Close (%v)", n.Name, err)
	}
	if _, err := net.InterfaceByName(n.HostIf); err == nil {
		t.Errorf("veth %s still there after Close", n.HostIf)
	}
}

// A pion peer inside the namespace receives at most about the tbf rate of a
// 2.5 Mbit/s stream sent by a pion peer on the host, and SetRate raises it.
func TestPionBehindTBF(t *testing.T) {
	const rate = 600_000
	n := New(t, Options{DownBps: rate})
	nsNet, err := n.Net()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.HostIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, sock)
	defer mux.Close()
	api := func(server bool) *webrtc.API {
		m := &webrtc.MediaEngine{}
		if err := m.RegisterDefaultCodecs(); err != nil {
			t.Fatal(err)
		}
		se := webrtc.SettingEngine{}
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		if server {
			se.SetICEUDPMux(mux)
		} else {
			se.SetNet(nsNet)
		}
		return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	}
	srv, err := api(true).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "netns-test")
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
	defer cl.Close()
	if _, err := cl.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var bytes atomic.Int64
	readDone := make(chan struct{})
	cl.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		defer close(readDone)
		buf := make([]byte, 1500)
		for {
			k, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			bytes.Add(int64(k))
		}
	})
	connect(t, cl, srv)
	pair, err := cl.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Address != n.NSIP.String() {
		t.Fatalf("client's selected pair %v (%v): want its local address %v", pair, err, n.NSIP)
	}

	// 2.5 Mbit/s of 1100-byte payloads for d.
	seq := 0
	send := func(d time.Duration) int64 {
		before := bytes.Load()
		start := time.Now()
		payload := make([]byte, 1100)
		for sent := 0; time.Since(start) < d; sent++ {
			if ahead := time.Duration(sent*1100*8)*time.Second/2_500_000 - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			seq++
			if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(seq), Timestamp: uint32(seq * 900)}, Payload: payload}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond) // what is queued arrives (the queue holds 100 ms)
		return bytes.Load() - before
	}
	limited := send(2 * time.Second)
	if err := n.SetRate(3_000_000); err != nil {
		t.Fatal(err)
	}
	raised := send(2 * time.Second)
	t.Logf("received %d B in 2 s at %d bit/s, %d B after SetRate(3M)", limited, rate, raised)
	// Payload bytes: headers (RTP, SRTP, UDP, IP, Ethernet: ~80 B a packet) also
	// count against the rate, so payload stays below it; 2.3 s x rate + burst.
	if max := int64(rate/8*2.3) + 16000; limited > max {
		t.Errorf("behind %d bit/s received %d payload bytes in 2.3 s, over %d", rate, limited, max)
	}
	if limited < rate/8*2/2 {
		t.Errorf("behind %d bit/s received only %d bytes in 2 s: the link carries nothing?", rate, limited)
	}
	if want := int64(2_500_000 / 8 * 2 * 0.9); raised < want {
		t.Errorf("after SetRate(3M) received %d of the stream's %d bytes in 2 s, want at least %d", raised, 2_500_000/8*2, want)
	}
	_ = cl.Close()
	<-readDone
}

// connect does offer/answer between cl and srv and waits until both are connected.
func connect(t *testing.T, cl, srv *webrtc.PeerConnection) {
	t.Helper()
	offer, err := cl.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(cl)
	if err := cl.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := srv.SetRemoteDescription(*cl.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := srv.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(srv)
	if err := srv.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := cl.SetRemoteDescription(*srv.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for srv.ConnectionState() != webrtc.PeerConnectionStateConnected || cl.ConnectionState() != webrtc.PeerConnectionStateConnected {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: server %s, client %s", srv.ConnectionState(), cl.ConnectionState())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
