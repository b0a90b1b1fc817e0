package udprelay

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink is a UDP socket that counts what it receives.
type sink struct {
	conn    *net.UDPConn
	packets atomic.Int64
	bytes   atomic.Int64
	last    atomic.Int64 // UnixNano of the last packet
	from    atomic.Pointer[netip.AddrPort]
	wg      sync.WaitGroup
}

func newSink(t *testing.T) *sink {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	s := &sink{conn: c}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 4096)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.from.Store(&from)
			s.packets.Add(1)
			s.bytes.Add(int64(n))
			s.last.Store(time.Now().UnixNano())
		}
	}()
	t.Cleanup(func() { _ = c.Close(); s.wg.Wait() })
	return s
}

func (s *sink) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// blast sends size-byte datagrams from conn to dst at about bps for d.
func blast(t *testing.T, conn *net.UDPConn, dst netip.AddrPort, size int, bps int64, d time.Duration) (sent int64) {
	t.Helper()
	buf := make([]byte, size)
	start := time.Now()
	for time.Since(start) < d {
		due := time.Duration(sent * 8 * int64(time.Second) / bps)
		if ahead := due - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
		if _, err := conn.WriteToUDPAddrPort(buf, dst); err != nil {
			t.Fatal(err)
		}
		sent += int64(size)
	}
	return sent
}

func newClient(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newRelay(t *testing.T, cfg Config) *Relay {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// The bytes a rate-limited direction delivers never exceed rate x time + bucket,
// the excess is dropped at the queue (counted), and the link is actually used.
func TestRateCapUp(t *testing.T) {
	srv := newSink(t)
	const rate = 800_000
	r := newRelay(t, Config{Upstream: srv.addr(), Up: Shape{RateBps: rate}})
	cl := newClient(t)
	start := time.Now()
	sent := blast(t, cl, r.Addr(), 1000, 4*rate, 2*time.Second)
	waitQuiet(t, srv)
	got := srv.bytes.Load()
	elapsed := time.Unix(0, srv.last.Load()).Sub(start)
	sh := r.Up.Shape()
	limit := int64(sh.Bucket) + int64(float64(rate)/8*elapsed.Seconds()) + 1000
	t.Logf("sent %d B, delivered %d B in %v (cap %d B), queue drops %+v", sent, got, elapsed, limit, r.Up.Stats())
	if got > limit {
		t.Errorf("delivered %d bytes in %v, more than rate x time + bucket = %d", got, elapsed, limit)
	}
	if min := int64(float64(rate) / 8 * 2 * 0.5); got < min {
		t.Errorf("delivered only %d bytes in 2 s at %d bit/s (want at least %d)", got, rate, min)
	}
	st := r.Up.Stats()
	if st.QueueDropped == 0 || st.Bytes != got {
		t.Errorf("stats %+v: want queue drops and forwarded bytes = %d", st, got)
	}
}

// waitQuiet waits until s has received nothing for 300 ms.
func waitQuiet(t *testing.T, s *sink) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if l := s.last.Load(); l != 0 && time.Since(time.Unix(0, l)) > 300*time.Millisecond {
			return
		}
	}
	t.Fatal("the relay kept sending for 10 s")
}

// Random loss drops about the configured fraction, and the down direction reaches
// the client's address (learnt from its first packet) from the relay's address.
func TestLossDown(t *testing.T) {
	server := newClient(t) // the "server" socket sends down
	r := newRelay(t, Config{Upstream: server.LocalAddr().(*net.UDPAddr).AddrPort(), Down: Shape{Loss: 0.2}, Seed: 7})
	cl := newSink(t)
	// The client speaks first (as ICE does), so the relay knows where to send.
	if _, err := cl.conn.WriteToUDPAddrPort([]byte("hello"), r.Addr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := server.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" || from != r.UpstreamAddr() {
		t.Fatalf("server got %q from %v (%v), want hello from %v", buf[:n], from, err, r.UpstreamAddr())
	}
	const total = 4000
	for i := 0; i < total; i++ {
		if _, err := server.WriteToUDPAddrPort(make([]byte, 200), from); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(2 * time.Millisecond) // keep socket buffers from overflowing
		}
	}
	st := waitStats(t, r.Down, total)
	waitQuiet(t, cl)
	lossStats := float64(st.LostPackets) / total
	lossSeen := 1 - float64(cl.packets.Load())/total
	t.Logf("stats %+v, client got %d of %d", st, cl.packets.Load(), total)
	if lossStats < 0.17 || lossStats > 0.23 || lossSeen < 0.17 || lossSeen > 0.23 {
		t.Errorf("loss %.3f (counted) / %.3f (seen by the client), want 0.2 +- 0.03", lossStats, lossSeen)
	}
	if got := *cl.from.Load(); got != r.Addr() {
		t.Errorf("client got packets from %v, want the relay's address %v", got, r.Addr())
	}
}

// waitStats waits until l has handled n packets (forwarded or dropped).
func waitStats(t *testing.T, l *Link, n int64) Stats {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st := l.Stats()
		if st.Packets+st.LostPackets+st.QueueDropped >= n {
			return st
		}
	}
	st := l.Stats()
	t.Fatalf("relay handled %+v, want %d packets", st, n)
	return st
}

// SetRate takes effect on a running link: four times the rate delivers clearly
// more, and lowering it again caps the delivery again.
func TestSetRate(t *testing.T) {
	srv := newSink(t)
	r := newRelay(t, Config{Upstream: srv.addr(), Up: Shape{RateBps: 300_000}})
	cl := newClient(t)
	phase := func(d time.Duration) int64 {
		before := srv.bytes.Load()
		blast(t, cl, r.Addr(), 1000, 2_000_000, d)
		return srv.bytes.Load() - before
	}
	slow := phase(time.Second)
	r.Up.SetRate(1_200_000)
	fast := phase(time.Second)
	r.Up.SetRate(300_000)
	blast(t, cl, r.Addr(), 1000, 2_000_000, 300*time.Millisecond) // drain the fast queue
	slowAgain := phase(time.Second)
	t.Logf("delivered per second: %d B at 300k, %d B at 1.2M, %d B at 300k again", slow, fast, slowAgain)
	if fast < 2*slow {
		t.Errorf("after SetRate(1.2M) delivered %d B/s, not clearly more than %d at 300k", fast, slow)
	}
	if capped := int64(300_000/8) + int64(r.Up.Shape().Bucket) + 2*1000 + 4000; slowAgain > capped {
		t.Errorf("after SetRate(300k) again delivered %d B in 1 s, over %d", slowAgain, capped)
	}
}

// The delay is added one way.
func TestDelay(t *testing.T) {
	srv := newSink(t)
	r := newRelay(t, Config{Upstream: srv.addr(), Up: Shape{Delay: 150 * time.Millisecond}})
	cl := newClient(t)
	start := time.Now()
	if _, err := cl.WriteToUDPAddrPort([]byte("x"), r.Addr()); err != nil {
		t.Fatal(err)
	}
	for srv.packets.Load() == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("nothing arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Unix(0, srv.last.Load()).Sub(start); d < 150*time.Millisecond {
		t.Errorf("arrived after %v, before the 150 ms delay", d)
	}
}

func TestRewriteCandidates(t *testing.T) {
	answer := "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
		"a=candidate:1 1 tcp 1 127.0.0.1 8189 typ host tcptype passive\r\n" +
		"a=candidate:2 1 udp 2130706431 10.0.0.5 8189 typ host\r\n" +
		"a=candidate:3 1 udp 2130706430 127.0.0.1 8189 typ host\r\n" +
		"a=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
		"a=candidate:2 1 udp 2130706431 10.0.0.5 8189 typ host\r\n"
	to := netip.MustParseAddrPort("127.0.0.1:4000")
	want := "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
		"a=candidate:2 1 udp 2130706431 127.0.0.1 4000 typ host\r\n" +
		"a=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
		"a=candidate:2 1 udp 2130706431 127.0.0.1 4000 typ host\r\n"
	if got := RewriteCandidates(answer, to); got != want {
		t.Errorf("RewriteCandidates:\n%q\nwant\n%q", got, want)
	}
	up, err := UpstreamFromSDP(answer)
	if err != nil || up != netip.MustParseAddrPort("127.0.0.1:8189") {
		t.Errorf("UpstreamFromSDP = %v, %v; want the loopback UDP candidate", up, err)
	}
	if got := StripCandidates(answer); got != "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" {
		t.Errorf("StripCandidates = %q", got)
	}
	if _, err := UpstreamFromSDP("v=0\r\n"); err == nil {
		t.Error("UpstreamFromSDP without candidates: no error")
	}
}

// SetRate keeps what was given explicitly (as tc's "change" does) and lets the
// defaults follow the new rate.
func TestSetRateKeepsGivenShape(t *testing.T) {
	r := newRelay(t, Config{Down: Shape{RateBps: 3_000_000, QueueDelay: 300 * time.Millisecond, Bucket: 20_000}, Up: Shape{RateBps: 1_000_000}})
	r.Down.SetRate(800_000)
	if s := r.Down.Shape(); s.Bucket != 20_000 || s.Limit != 30_000 || s.QueueDelay != 300*time.Millisecond {
		t.Errorf("after SetRate(800k): %+v, want the given bucket and a 300 ms queue (30000 B)", s)
	}
	r.Up.SetRate(4_000_000)
	if s := r.Up.Shape(); s.Bucket != 10_000 || s.Limit != 50_000 {
		t.Errorf("defaults after SetRate(4M): %+v, want a 20 ms bucket (10000 B) and a 100 ms queue (50000 B)", s)
	}
}
