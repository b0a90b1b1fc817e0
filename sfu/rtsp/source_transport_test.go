package rtsp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/sfu"
)

// libCamera is an IP camera stand-in written with gortsplib's server, not ours: it
// serves a looped clip as H.264 (parameter sets only in the SDP) and Opus at
// rtsp://addr/cam, over UDP when udp is set (otherwise TCP only, as cameras behind
// some firewalls are), and records what its readers do.
type libCamera struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	addr   string

	mu         sync.Mutex
	transports []gortsplib.Transport // of each session that played
	rrs        atomic.Int32          // RTCP receiver reports received from readers
}

func newLibCamera(t *testing.T, ctx context.Context, udp bool) *libCamera {
	t.Helper()
	c, sps, pps := stripParams(loadClip(t))
	video := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}}}
	audio := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{
		&format.Opus{PayloadTyp: 111, ChannelCount: 2}}}
	cam := &libCamera{}
	for attempt := 0; ; attempt++ {
		cam.srv = &gortsplib.Server{
			Handler:     cam,
			RTSPAddress: "127.0.0.1:0",
			Listen: func(network, address string) (net.Listener, error) {
				ln, err := net.Listen(network, address)
				if err == nil {
					cam.addr = ln.Addr().String()
				}
				return ln, err
			},
		}
		if udp {
			// The library wants an even RTP port and the next one for RTCP.
			port := 20000 + 2*rand.IntN(20000)
			cam.srv.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(port)
			cam.srv.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(port+1)
		}
		err := cam.srv.Start()
		if err == nil {
			break
		}
		if attempt == 20 {
			t.Fatalf("camera stand-in: %v", err)
		}
	}
	t.Cleanup(cam.srv.Close)
	cam.stream = &gortsplib.ServerStream{Server: cam.srv, Desc: &description.Session{Medias: []*description.Media{video, audio}}}
	if err := cam.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.stream.Close)

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	write := func(m *description.Media, pt uint8) func(*rtp.Packet) error {
		return func(p *rtp.Packet) error {
			cp := *p
			cp.PayloadType = pt
			return cam.stream.WritePacketRTP(m, &cp)
		}
	}
	go func() {
		defer close(done)
		_ = c.Play(ctx, clip.PlayOptions{Loop: true, MTU: 1400, WriteVideo: write(video, 96), WriteAudio: write(audio, 111)})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cam
}

func (cam *libCamera) url() string { return "rtsp://" + cam.addr + "/cam" }

func (cam *libCamera) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, cam.stream, nil
}

func (cam *libCamera) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, cam.stream, nil
}

func (cam *libCamera) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	cam.mu.Lock()
	cam.transports = append(cam.transports, *ctx.Session.SetuppedTransport())
	cam.mu.Unlock()
	ctx.Session.OnPacketRTCPAny(func(_ *description.Media, p rtcp.Packet) {
		if rr, ok := p.(*rtcp.ReceiverReport); ok && len(rr.Reports) > 0 && rr.Reports[0].LastSequenceNumber > 0 {
			cam.rrs.Add(1)
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (cam *libCamera) playedOver() []gortsplib.Transport {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	return append([]gortsplib.Transport(nil), cam.transports...)
}

// publicationPackets returns the packets written so far to each track of the
// session's publication pub, by the track's local name ("video", "audio").
func publicationPackets(sess *sfu.Session, pub string) map[string]uint64 {
	p, ok := sess.Publication(pub)
	if !ok {
		return nil
	}
	out := map[string]uint64{}
	for _, tr := range p.Tracks() {
		out[strings.TrimPrefix(tr.Name(), pub+"/")] = tr.Packets()
	}
	return out
}

// TestPullSourceUDP pulls a camera (gortsplib's server) that offers RTP over UDP:
// the source plays it over UDP, video and audio reach the session, and the camera
// receives RTCP receiver reports for what it sends (cameras use them to see their
// readers are alive).
func TestPullSourceUDP(t *testing.T) {
	f := newFixture(t, nil)
	cam := newLibCamera(t, f.ctx, true)
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t),
		BackoffMin: 50 * time.Millisecond, Timeout: 5 * time.Second, Logger: testLogger()})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: cam.url(), Name: "udp-cam", As: "trainer"}); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "the source to go live", func() bool { return sourceState(sources, testSession).State == StateLive })
	waitFor(f.ctx, t, "video and audio in the session", func() bool {
		n := publicationPackets(f.sess, sfu.TrainerPublication)
		return n["video"] > 100 && n["audio"] > 50
	})
	if got := cam.playedOver(); len(got) != 1 || got[0] != gortsplib.TransportUDP {
		t.Fatalf("the camera was played over %v, want UDP once", got)
	}
	waitFor(f.ctx, t, "a receiver report at the camera", func() bool { return cam.rrs.Load() > 0 })
	if st := sourceState(sources, testSession); st.State != StateLive {
		t.Fatalf("source %+v", st)
	}
}

// TestPullSourceTCPFallback: a camera that refuses RTP over UDP is played over TCP
// on the same connection attempt.
func TestPullSourceTCPFallback(t *testing.T) {
	f := newFixture(t, nil)
	cam := newLibCamera(t, f.ctx, false)
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t),
		BackoffMin: time.Hour, Timeout: 5 * time.Second, Logger: testLogger()})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: cam.url(), Name: "tcp-cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "video and audio in the session", func() bool {
		n := publicationPackets(f.sess, "site-tcp-cam")
		return n["video"] > 100 && n["audio"] > 50
	})
	if got := cam.playedOver(); len(got) != 1 || got[0] != gortsplib.TransportTCP {
		t.Fatalf("the camera was played over %v, want TCP once", got)
	}
	if st := sourceState(sources, testSession); st.State != StateLive || st.LastError != "" {
		t.Fatalf("source %+v", st)
	}
}

// scriptedCamera is an RTSP camera stand-in answering from a script, for what a
// library server will not do: a short session timeout, a Transport naming another
// address. It serves one Opus stream. setup answers SETUP (status and Transport);
// onPlay runs after PLAY was answered, with a function writing an interleaved
// frame. requests records "METHOD session?" for each request.
type scriptedCamera struct {
	peer     *fakePeer
	mu       sync.Mutex
	requests []string
}

func newScriptedCamera(t *testing.T, setup func(req *base.Request) *base.Response, onPlay func(ctx context.Context, writeFrame func(ch int, payload []byte) error)) *scriptedCamera {
	t.Helper()
	sc := &scriptedCamera{}
	sc.peer = newFakePeer(t, func(nc net.Conn) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer func() {
			cancel()
			_ = nc.Close()
			wg.Wait()
		}()
		rc := conn.NewConn(nc)
		var wmu sync.Mutex
		write := func(res *base.Response) error {
			wmu.Lock()
			defer wmu.Unlock()
			return rc.WriteResponse(res)
		}
		writeFrame := func(ch int, payload []byte) error {
			wmu.Lock()
			defer wmu.Unlock()
			buf := make([]byte, 4+len(payload))
			return rc.WriteInterleavedFrame(&base.InterleavedFrame{Channel: ch, Payload: payload}, buf)
		}
		for {
			what, err := rc.Read()
			if err != nil {
				return
			}
			req, ok := what.(*base.Request)
			if !ok {
				continue // RTCP from the client
			}
			_, hasSession := req.Header["Session"]
			sc.mu.Lock()
			sc.requests = append(sc.requests, fmt.Sprintf("%s %v", req.Method, hasSession))
			sc.mu.Unlock()
			res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{}}
			switch req.Method {
			case base.Options:
				res.Header["Public"] = base.HeaderValue{"DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}
			case base.Describe:
				res.Header["Content-Type"] = base.HeaderValue{"application/sdp"}
				res.Header["Content-Base"] = base.HeaderValue{"rtsp://" + nc.LocalAddr().String() + "/cam/"}
				res.Body = []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
					"m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=control:trackID=0\r\n")
			case base.Setup:
				res = setup(req)
			}
			res.Header["CSeq"] = req.Header["CSeq"]
			if err := write(res); err != nil {
				return
			}
			if req.Method == base.Play && onPlay != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					onPlay(ctx, writeFrame)
				}()
			}
		}
	})
	return sc
}

func (sc *scriptedCamera) url() string { return "rtsp://127.0.0.1:" + sc.peer.port() + "/cam" }

// count returns how many requests were "METHOD true" (with a session) for method.
func (sc *scriptedCamera) count(method base.Method) int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	n := 0
	for _, r := range sc.requests {
		if r == string(method)+" true" {
			n++
		}
	}
	return n
}

// opusFrames writes Opus packets on interleaved channel 0 every 20 ms until ctx ends.
func opusFrames(ctx context.Context, writeFrame func(ch int, payload []byte) error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 0x1234}, Payload: []byte{0xfc, 0xff, 0xfe}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.SequenceNumber++
		p.Timestamp += 960
		b, _ := p.Marshal()
		if writeFrame(0, b) != nil {
			return
		}
	}
}

// TestPullSourceKeepAlives: a camera whose session times out after a second gets
// keep-alives (GET_PARAMETER, which it lists in Public) while it plays, and the
// source stays live; removing the source tears the camera's session down.
func TestPullSourceKeepAlives(t *testing.T) {
	f := newFixture(t, nil)
	cam := newScriptedCamera(t, func(req *base.Request) *base.Response {
		var th headers.Transport
		if th.Unmarshal(req.Header["Transport"]) != nil || th.Protocol != headers.TransportProtocolTCP {
			return &base.Response{StatusCode: base.StatusUnsupportedTransport, Header: base.Header{}}
		}
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
			"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"},
			"Session":   base.HeaderValue{"7e3f0a;timeout=1"},
		}}
	}, opusFrames)
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t),
		BackoffMin: time.Hour, Timeout: 5 * time.Second, Logger: testLogger()})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: cam.url(), Name: "cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "the source to go live", func() bool { return sourceState(sources, testSession).State == StateLive })
	waitFor(f.ctx, t, "two keep-alives", func() bool { return cam.count(base.GetParameter) >= 2 })
	if st := sourceState(sources, testSession); st.State != StateLive || st.LastError != "" {
		t.Fatalf("source %+v", st)
	}
	if n := publicationPackets(f.sess, "site-cam")["audio"]; n == 0 {
		t.Fatal("no audio reached the session")
	}
	// Removing the source says goodbye: cameras have few session slots.
	if err := sources.Remove(testSession, sourceState(sources, testSession).ID); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "a TEARDOWN at the camera", func() bool { return cam.count(base.Teardown) == 1 })
}

// TestPullSourceUDPOnlyToTheCamera: a camera's SETUP answer naming another address
// in its Transport (source=) does not make the server send UDP there: the first
// packets (the firewall openers sent before PLAY) go to the camera's own address
// (issue 9's destination checks, for the UDP sockets gortsplib opens).
func TestPullSourceUDPOnlyToTheCamera(t *testing.T) {
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer reg.CloseAll()
	// The same two ports on the camera's address and on another loopback address.
	var camRTP, camRTCP, elseRTP, elseRTCP *net.UDPConn
	for attempt := 0; ; attempt++ {
		var err error
		if camRTP, camRTCP, elseRTP, elseRTCP, err = udpPortsOnTwoAddresses(); err == nil {
			break
		}
		if attempt == 20 {
			t.Fatal(err)
		}
	}
	for _, c := range []*net.UDPConn{camRTP, camRTCP, elseRTP, elseRTCP} {
		defer c.Close()
	}
	portOf := func(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
	cam := newScriptedCamera(t, func(req *base.Request) *base.Response {
		var th headers.Transport
		if th.Unmarshal(req.Header["Transport"]) != nil || th.ClientPorts == nil {
			return &base.Response{StatusCode: base.StatusUnsupportedTransport, Header: base.Header{}}
		}
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
			"Transport": base.HeaderValue{fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d;source=127.0.0.2",
				th.ClientPorts[0], th.ClientPorts[1], portOf(camRTP), portOf(camRTCP))},
			"Session": base.HeaderValue{"51d2"},
		}}
	}, nil)
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(reg, testSession), Allow: loopbackAllowed(t),
		BackoffMin: time.Hour, Timeout: 5 * time.Second, Logger: testLogger()})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: cam.url(), Name: "cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	// The RTP opener is sent before the RTCP one, both before PLAY: once the RTCP
	// one arrived, anything sent elsewhere would be queued there already.
	buf := make([]byte, 1500)
	for _, c := range []*net.UDPConn{camRTP, camRTCP} {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			t.Fatalf("no packet at the camera's own address: %v", err)
		}
	}
	for _, c := range []*net.UDPConn{elseRTP, elseRTCP} {
		_ = c.SetReadDeadline(time.Now())
		n, from, err := c.ReadFromUDP(buf)
		if err == nil {
			t.Fatalf("%d bytes from %v reached the address the camera named", n, from)
		}
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatal(err)
		}
	}
}

// udpPortsOnTwoAddresses binds two ports on 127.0.0.1 and the same two on 127.0.0.2.
func udpPortsOnTwoAddresses() (camRTP, camRTCP, elseRTP, elseRTCP *net.UDPConn, err error) {
	var opened []*net.UDPConn
	fail := func(e error) (a, b, c, d *net.UDPConn, err error) {
		for _, o := range opened {
			_ = o.Close()
		}
		return nil, nil, nil, nil, e
	}
	listen := func(addr string) (*net.UDPConn, error) {
		ua, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return nil, err
		}
		c, err := net.ListenUDP("udp4", ua)
		if err == nil {
			opened = append(opened, c)
		}
		return c, err
	}
	if camRTP, err = listen("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	if camRTCP, err = listen("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	if elseRTP, err = listen(strings.Replace(camRTP.LocalAddr().String(), "127.0.0.1", "127.0.0.2", 1)); err != nil {
		return fail(err)
	}
	if elseRTCP, err = listen(strings.Replace(camRTCP.LocalAddr().String(), "127.0.0.1", "127.0.0.2", 1)); err != nil {
		return fail(err)
	}
	return camRTP, camRTCP, elseRTP, elseRTCP, nil
}

// newTCPOrUDPCamera is a scripted camera that accepts a SETUP over TCP
// (interleaved 0-1), and plays Opus frames then, and answers one over UDP with
// udpAnswer (and sends nothing); setups lists the transport of each SETUP so far
// ("UDP,TCP").
func newTCPOrUDPCamera(t *testing.T, udpAnswer func(headers.Transport) *base.Response) (cam *scriptedCamera, setups func() string) {
	var mu sync.Mutex
	var seen []string
	cam = newScriptedCamera(t, func(req *base.Request) *base.Response {
		var th headers.Transport
		if th.Unmarshal(req.Header["Transport"]) != nil {
			return &base.Response{StatusCode: base.StatusBadRequest, Header: base.Header{}}
		}
		mu.Lock()
		defer mu.Unlock()
		if th.Protocol == headers.TransportProtocolTCP {
			seen = append(seen, "TCP")
			return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
				"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}, "Session": base.HeaderValue{"a1"}}}
		}
		seen = append(seen, "UDP")
		return udpAnswer(th)
	}, func(ctx context.Context, writeFrame func(ch int, payload []byte) error) {
		mu.Lock()
		tcp := len(seen) > 0 && seen[len(seen)-1] == "TCP"
		mu.Unlock()
		if tcp {
			opusFrames(ctx, writeFrame)
		}
	})
	return cam, func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, ",")
	}
}

// TestPullSourceUDPSilentFallsBackToTCP: a camera that accepts RTP over UDP but
// whose packets never arrive (a firewall in between) is played over TCP instead,
// and the source goes on without an error.
func TestPullSourceUDPSilentFallsBackToTCP(t *testing.T) {
	f := newFixture(t, nil)
	// Where the camera says it sends from: nothing is ever sent.
	var silent []*net.UDPConn
	for range 2 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	cam, setups := newTCPOrUDPCamera(t, func(th headers.Transport) *base.Response {
		if th.ClientPorts == nil {
			return &base.Response{StatusCode: base.StatusBadRequest, Header: base.Header{}}
		}
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
			"Transport": base.HeaderValue{fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d;server_port=%d-%d",
				th.ClientPorts[0], th.ClientPorts[1], silent[0].LocalAddr().(*net.UDPAddr).Port, silent[1].LocalAddr().(*net.UDPAddr).Port)},
			"Session": base.HeaderValue{"u1"}}}
	})
	if st := pullFallsBackToTCP(t, f, cam, setups, 10*time.Second); st.LastError != "" {
		t.Fatalf("source %+v", st)
	}
}

// pullFallsBackToTCP pulls cam into the fixture's session and checks that its
// audio comes, over TCP after one SETUP over UDP, and that the source is live; it
// returns the source's state.
func pullFallsBackToTCP(t *testing.T, f *fixture, cam *scriptedCamera, setups func() string, timeout time.Duration) SourceInfo {
	t.Helper()
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(f.reg, testSession), Allow: loopbackAllowed(t),
		BackoffMin: time.Hour, Timeout: timeout, Logger: testLogger()})
	defer sources.Close()
	if _, err := sources.Add(testSession, SourceSpec{URL: cam.url(), Name: "cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "audio over TCP in the session", func() bool { return publicationPackets(f.sess, "site-cam")["audio"] > 20 })
	if got := setups(); got != "UDP,TCP" {
		t.Fatalf("SETUPs %s, want UDP then TCP", got)
	}
	st := sourceState(sources, testSession)
	if st.State != StateLive {
		t.Fatalf("source %+v", st)
	}
	return st
}

// TestPullSourceBadUDPAnswerFallsBackToTCP: a camera whose answer to a SETUP over
// UDP is unusable (no server ports, or an error status) is played over TCP from the
// next attempt on, at once, rather than retried over UDP for ever (the pull client
// before gortsplib spoke only TCP, and such cameras worked).
func TestPullSourceBadUDPAnswerFallsBackToTCP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer *base.Response
	}{
		{"no-server-ports", &base.Response{StatusCode: base.StatusOK, Header: base.Header{
			"Transport": base.HeaderValue{"RTP/AVP;unicast"}, "Session": base.HeaderValue{"u1"}}}},
		{"status-500", &base.Response{StatusCode: base.StatusInternalServerError, Header: base.Header{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			cam, setups := newTCPOrUDPCamera(t, func(headers.Transport) *base.Response {
				res := *tc.answer
				res.Header = base.Header{}
				for k, v := range tc.answer.Header {
					res.Header[k] = v
				}
				return &res
			})
			pullFallsBackToTCP(t, f, cam, setups, 5*time.Second)
		})
	}
}

// TestPullSourceRTSPSUntrusted: an RTSPS camera whose certificate the server does
// not trust is refused with that reason (gortsplib's client is handed a copy of
// SourcesConfig.TLSConfig, here nil: the system roots).
func TestPullSourceRTSPSUntrusted(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	f := newFixture(t, func(c *Config) { c.ServerCert, c.ServerKey = certFile, keyFile })
	other := sfu.NewRegistry(sfu.RegistryConfig{Logger: testLogger()})
	defer other.CloseAll()
	sources := NewSources(SourcesConfig{Sessions: sessionsOf(other, "copy"), Allow: loopbackAllowed(t), Logger: testLogger(),
		BackoffMin: time.Hour, Timeout: 2 * time.Second})
	defer sources.Close()
	if _, err := sources.Add("copy", SourceSpec{URL: "rtsps://x:" + testAdmin + "@" + f.srv.Addr() + "/" + testSession, Name: "tls-cam", As: "site"}); err != nil {
		t.Fatal(err)
	}
	waitFor(f.ctx, t, "a last error", func() bool { return sourceState(sources, "copy").LastError != "" })
	if got := sourceState(sources, "copy").LastError; got != "TLS: the camera's certificate is not trusted" {
		t.Fatalf("last error %q", got)
	}
}
