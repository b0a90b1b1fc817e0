package peer

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// BenchmarkForward measures Lectern's whole per-packet path for one subscriber: a
// packet written to a session track (sfu.Track.WriteRTP: copy, keyframe detection,
// rewrite, caches, fan-out to the subscribers' queues) is taken by each real
// downtrack's egress worker, rewritten again, passed through pion's interceptors,
// SRTP-encrypted and written on the edge's shared UDP socket to a real pion
// subscriber connected over loopback (ICE + DTLS). The subscribers' sockets discard
// media as they read it (as the floor's receiver does) so that what is measured is
// the server's side.
//
// One op is one 1200-byte packet written to the track; it is sent N times.
// Reported: ns/packet/sub (wall time ÷ N), cpu-ns/packet/sub (process CPU time ÷
// packets sent; the honest figure on 2 cores, where writers run in parallel) and
// floor-x, cpu-ns/packet/sub as a multiple of the floor's cpu-ns/op (EncryptRTP +
// UDPConn.Write of the same packet, measured in the same run). allocs/op counts the
// whole process (pion included) per packet written, not per packet sent.
//
// Packets are written in bursts of one access unit (8 packets) as a publisher's read
// goroutine delivers them, with at most 128 packets per subscriber in flight (the
// queues hold 512), so no queue drops and the writers are never starved.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchForward(b, n) })
	}
}

const (
	auPackets   = 8   // packets per access unit (a 2.5 Mbit/s 30 fps stream averages ~9)
	gopAUs      = 60  // access units per keyframe interval (2 s at 30 fps)
	window      = 128 // packets in flight per subscriber, at most
	burstWait   = 10 * time.Second
	joinTimeout = 20 * time.Second
)

func benchForward(b *testing.B, n int) {
	fw := newForwardBench(b, n)
	floor := floorCPU(b)

	src := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: 0xbeef}, Payload: make([]byte, floorPayload)}
	var written uint64
	write := func() {
		i := written
		written++
		au := i / auPackets
		src.SequenceNumber++
		src.Timestamp = uint32(au * 3000)
		src.Marker = i%auPackets == auPackets-1
		src.Payload[0] = 0x7c // FU-A (RFC 6184 §5.8), NRI 3
		src.Payload[1] = 0x01 // non-IDR slice
		if au%gopAUs == 0 {
			src.Payload[1] = 0x05 // IDR
		}
		if i%auPackets == 0 {
			src.Payload[1] |= 0x80 // start bit
		}
		if err := fw.track.WriteRTP(src); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up, paced so that no queue overflows: every subscriber starts (from the
	// cached keyframe), pools and buffers fill; then let the queues drain.
	deadline := time.Now().Add(joinTimeout)
	pace := max(time.Millisecond, time.Duration(n*auPackets)*40*time.Microsecond)
	for written < 2*gopAUs*auPackets || !fw.allReceived() {
		if time.Now().After(deadline) {
			b.Fatal("a subscriber received no media")
		}
		for range auPackets {
			write()
		}
		time.Sleep(pace)
	}
	fw.quiesce()
	drops := fw.stats.QueueDrops.Load()

	b.ReportAllocs()
	b.SetBytes(floorPayload)
	start := written
	cpu := startCPU()
	for b.Loop() {
		if (written-start)%auPackets == 0 && written-start >= window {
			// Keep at most window packets in flight per subscriber (queues hold 512).
			fw.waitReceived(b, written-start-window)
		}
		write()
	}
	b.StartTimer()
	fw.waitReceived(b, written-start)
	b.StopTimer()
	ops := written - start
	cpuNs := float64(processCPU()-cpu.at) / float64(ops*uint64(n))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*uint64(n)), "ns/packet/sub")
	b.ReportMetric(cpuNs, "cpu-ns/packet/sub")
	if floor > 0 {
		b.ReportMetric(cpuNs/floor, "floor-x")
	}
	if d := fw.stats.QueueDrops.Load() - drops; d != 0 {
		b.Fatalf("%d packets dropped by queues", d)
	}
}

// forwardBench is one edge, one publication's video track fed directly through a
// lease, and n connected subscribers.
type forwardBench struct {
	edge  *Edge
	reg   *sfu.Registry
	stats *sfu.Stats
	track *sfu.Track
	subs  []*discardSubscriber
}

func newForwardBench(b *testing.B, n int) *forwardBench {
	b.Helper()
	quiet := slog.New(slog.DiscardHandler)
	e, err := New(Config{UDPAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: quiet})
	fw := &forwardBench{edge: e, reg: reg, stats: reg.Stats()}
	b.Cleanup(fw.close)
	sess := reg.Session("bench")
	lease, err := sess.Claim(sfu.TrainerPublication, func() {})
	if err != nil {
		b.Fatal(err)
	}
	fw.track, err = lease.Track(LocalVideo, sfu.KindVideo, sfu.Codec{
		MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f",
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	layout := Layout{Video: []string{sfu.TrainerPublication + "/" + LocalVideo}}
	signal := func(offer string) (string, error) {
		_, ans, err := e.Subscribe(sess, layout, offer)
		return ans, err
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := newDiscardSubscriber(ctx, signal)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			fw.subs = append(fw.subs, s)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d of %d subscribers failed to connect, first: %v", len(errs), n, errs[0])
	}
	return fw
}

// waitReceived waits until every subscriber has received want packets since
// quiesce.
func (fw *forwardBench) waitReceived(b *testing.B, want uint64) {
	for _, s := range fw.subs {
		deadline := time.Now().Add(burstWait)
		for s.conn.rtp.Load() < s.base+want {
			if time.Now().After(deadline) {
				b.Fatalf("a subscriber received %d packets, want %d (queue drops %d, UDP receive buffer drops in /proc/net/snmp)",
					s.conn.rtp.Load()-s.base, want, fw.stats.QueueDrops.Load())
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// quiesce waits until the subscribers stop receiving and notes their counts.
func (fw *forwardBench) quiesce() {
	total := func() (n uint64) {
		for _, s := range fw.subs {
			n += s.conn.rtp.Load()
		}
		return n
	}
	last := total()
	for {
		time.Sleep(50 * time.Millisecond)
		if got := total(); got != last {
			last = got
			continue
		}
		for _, s := range fw.subs {
			s.base = s.conn.rtp.Load()
		}
		return
	}
}

func (fw *forwardBench) allReceived() bool {
	for _, s := range fw.subs {
		if s.conn.rtp.Load() == 0 {
			return false
		}
	}
	return true
}

func (fw *forwardBench) close() {
	for _, s := range fw.subs {
		s.close()
	}
	_ = fw.edge.Close()
	fw.reg.CloseAll()
}

var (
	floorOnce  sync.Once
	floorValue float64
)

// floorCPU measures the floor once per run: the process CPU time per packet of
// EncryptRTP (AEAD_AES_256_GCM) + UDPConn.Write, as BenchmarkFloor does.
// testing.Benchmark cannot run inside a benchmark, hence the plain loop.
func floorCPU(b *testing.B) float64 {
	floorOnce.Do(func() {
		const packets = 50000
		ctx := newFloorContext(b, floorProfiles[0].p)
		conn := dialDiscard(b)
		hdr, plain := floorPacket()
		out := make([]byte, 0, 1500)
		cpu := startCPU()
		for range packets {
			if err := sendFloor(ctx, conn, out, plain, hdr); err != nil {
				b.Fatal(err)
			}
		}
		floorValue = float64(processCPU()-cpu.at) / packets
	})
	return floorValue
}

// discardSubscriber is a real pion subscriber (ICE, DTLS, one recvonly H.264
// section) whose UDP socket discards RTP and RTCP as it reads them, counting them;
// STUN and DTLS go to pion as usual, so the connection stays up.
type discardSubscriber struct {
	pc   *webrtc.PeerConnection
	mux  ice.UDPMux
	conn *discardConn
	base uint64 // conn.rtp when the measurement started
}

func newDiscardSubscriber(ctx context.Context, signal func(string) (string, error)) (*discardSubscriber, error) {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = udp.SetReadBuffer(4 << 20)
	conn := &discardConn{UDPConn: udp}
	s := &discardSubscriber{conn: conn, mux: webrtc.NewICEUDPMux(nil, conn)}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		s.close()
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(s.mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// An empty registry: no interceptors (pion adds its defaults when given none).
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	if s.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		s.close()
		return nil, err
	}
	if err := s.connect(ctx, signal); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *discardSubscriber) connect(ctx context.Context, signal func(string) (string, error)) error {
	if _, err := s.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return err
	}
	connected := make(chan struct{})
	var once sync.Once
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	answer, err := signal(s.pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return err
	}
	select {
	case <-connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscriber did not connect: %w", ctx.Err())
	}
}

func (s *discardSubscriber) close() {
	if s.pc != nil {
		_ = s.pc.Close()
	}
	_ = s.mux.Close()
}

// discardConn is the subscriber's UDP socket as pion's ICE UDP mux reads it: RTP and
// RTCP (first byte 128-191, RFC 7983) are dropped, RTP counted (RTCP's second byte,
// its packet type, is 192-223, RFC 5761 §4); the rest is returned. It implements
// ice.AddrPortReaderWriter so the mux reads without allocating.
type discardConn struct {
	*net.UDPConn
	rtp atomic.Uint64
}

func (c *discardConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(p)
		if err == nil && n > 1 && p[0] >= 128 && p[0] <= 191 {
			if p[1] < 192 || p[1] > 223 {
				c.rtp.Add(1)
			}
			continue
		}
		return n, addr, err
	}
}

func (c *discardConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(p, addr)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *discardConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}
