// Package udprelay is a userspace UDP relay that shapes a link between one client
// (e.g. a pion peer) and a server on the same machine: a token-bucket rate limit
// with a bounded queue (as the kernel's tbf qdisc: what does not fit is dropped),
// random loss and a one-way delay, each per direction and changeable at runtime.
// It exists because this kernel has tbf but no netem, and because the load tool
// shapes many subscribers in one process.
//
// The client talks to the relay's listening address (Addr); the relay forwards what
// it gets to Upstream from a socket of its own and sends the replies back to the
// client's latest address. For WebRTC, RewriteCandidates (or WrapSignal) points the
// answer's ICE candidates at Addr, and the server, which sees the client's checks
// arrive from the relay's upstream socket, learns that as a peer-reflexive
// candidate: all media then flows through the relay.
package udprelay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Shape describes one direction of the link. The zero Shape forwards everything
// at once.
type Shape struct {
	// RateBps is the link rate in bit/s (UDP payload bytes x 8); 0 = unlimited.
	RateBps int64
	// Bucket is the token bucket depth in bytes: what may pass at once after the
	// link was idle. 0 = 20 ms of RateBps, at least 4000 bytes.
	Bucket int
	// Limit is the queue in bytes waiting for tokens; a packet that would exceed it
	// is dropped. 0 = QueueDelay of RateBps, at least 6000 bytes.
	Limit int
	// QueueDelay sizes the queue when Limit is 0, as tbf's "latency": the longest
	// a packet waits for tokens. 0 = 100 ms.
	QueueDelay time.Duration
	// Loss is the fraction (0..1) of packets dropped at random, before the queue.
	Loss float64
	// Delay is added to every packet (one way), after the queue.
	Delay time.Duration
}

// Config configures a relay.
type Config struct {
	// Listen is where the client sends; zero = 127.0.0.1 with a free port.
	Listen netip.AddrPort
	// Upstream is the server's UDP address. It may be left zero and set later
	// with SetUpstream (WrapSignal does it from the answer).
	Upstream netip.AddrPort
	// Up shapes client -> server, Down server -> client.
	Up, Down Shape
	// Seed makes the random loss reproducible; 0 = 1.
	Seed uint64
}

// Stats are one direction's counters.
type Stats struct {
	Packets, Bytes           int64 // forwarded
	LostPackets, LostBytes   int64 // dropped by random loss
	QueueDropped, QueueBytes int64 // dropped because the queue was full
}

// Relay is a running relay. Close stops it.
type Relay struct {
	// Up is the client -> server direction, Down the server -> client one.
	Up, Down *Link

	client   *net.UDPConn // the address the client talks to
	upstream *net.UDPConn // the relay's own socket towards the server
	server   atomic.Pointer[netip.AddrPort]
	peer     atomic.Pointer[netip.AddrPort] // the client's latest address
	done     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Once
}

// socketBuffer is each relay socket's kernel buffer size.
const socketBuffer = 1 << 20

// bufSize is larger than any datagram a WebRTC peer sends (pion's MTU is 1200,
// browsers' about 1200-1500).
const bufSize = 2048

// New starts a relay.
func New(cfg Config) (*Relay, error) {
	listen := cfg.Listen
	if !listen.IsValid() {
		listen = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return nil, fmt.Errorf("udprelay: listen %s: %w", listen, err)
	}
	upLocal := netip.AddrPortFrom(listen.Addr(), 0)
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(upLocal))
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("udprelay: upstream socket on %s: %w", upLocal.Addr(), err)
	}
	// A relay descheduled for a moment on a busy machine must not turn into loss
	// that is not the link's: give both sockets room (capped by net.core.rmem_max).
	for _, conn := range []*net.UDPConn{c, u} {
		_ = conn.SetReadBuffer(socketBuffer)
		_ = conn.SetWriteBuffer(socketBuffer)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = 1
	}
	r := &Relay{client: c, upstream: u, done: make(chan struct{})}
	if cfg.Upstream.IsValid() {
		r.SetUpstream(cfg.Upstream)
	}
	r.Up = newLink(cfg.Up, rand.New(rand.NewPCG(seed, 0x75)))
	r.Down = newLink(cfg.Down, rand.New(rand.NewPCG(seed, 0x64)))
	r.wg.Add(4)
	go r.read(c, r.Up, func(from netip.AddrPort) { r.peer.Store(&from) })
	go r.read(u, r.Down, nil)
	go r.send(r.Up, u, &r.server)
	go r.send(r.Down, c, &r.peer)
	return r, nil
}

// Addr is the address the client must send to.
func (r *Relay) Addr() netip.AddrPort {
	return r.client.LocalAddr().(*net.UDPAddr).AddrPort()
}

// UpstreamAddr is the relay's own address as the server sees it.
func (r *Relay) UpstreamAddr() netip.AddrPort {
	return r.upstream.LocalAddr().(*net.UDPAddr).AddrPort()
}

// SetUpstream sets (or changes) the server's address.
func (r *Relay) SetUpstream(a netip.AddrPort) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	r.server.Store(&a)
}

// Close stops the relay and waits for its goroutines. Queued packets are dropped.
func (r *Relay) Close() error {
	r.closeMu.Do(func() {
		close(r.done)
		_ = r.client.Close()
		_ = r.upstream.Close()
		r.Up.wake()
		r.Down.wake()
		r.wg.Wait()
	})
	return nil
}

// read moves datagrams from conn into l's queue until conn is closed.
func (r *Relay) read(conn *net.UDPConn, l *Link, from func(netip.AddrPort)) {
	defer r.wg.Done()
	buf := make([]byte, 64*1024)
	for {
		n, addr, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-r.done:
				return
			default:
				continue // e.g. ICMP port unreachable reported on a later read
			}
		}
		if from != nil {
			from(addr)
		}
		l.enqueue(buf[:n], time.Now())
	}
}

// send writes l's packets, when due, from conn to the address in to.
func (r *Relay) send(l *Link, conn *net.UDPConn, to *atomic.Pointer[netip.AddrPort]) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p, wait, ok := l.next(time.Now())
		if p != nil {
			if dst := to.Load(); dst != nil {
				_, _ = conn.WriteToUDPAddrPort(p.data, *dst)
			}
			l.free(p)
			continue
		}
		if !ok {
			wait = time.Hour // empty: sleep until enqueue wakes us
		}
		timer.Reset(wait)
		select {
		case <-r.done:
			return
		case <-l.wakeCh:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// packet is a queued datagram.
type packet struct {
	data    []byte
	dep     time.Time // when it leaves the token bucket
	release time.Time // dep + delay: when it is sent
}

// Link is one shaped direction.
type Link struct {
	mu     sync.Mutex
	spec   Shape // as given: SetRate keeps an explicit Bucket, Limit or QueueDelay
	shape  Shape // spec with the defaults filled in
	rng    *rand.Rand
	queue  []*packet // FIFO from head, departure times non-decreasing
	head   int
	tokens float64   // bytes available at lastDep
	last   time.Time // time the token count refers to
	pool   []*packet
	stats  Stats
	wakeCh chan struct{}
}

func newLink(s Shape, rng *rand.Rand) *Link {
	l := &Link{rng: rng, wakeCh: make(chan struct{}, 1), spec: s}
	l.shape = normalize(s)
	l.tokens = float64(l.shape.Bucket)
	return l
}

// normalize fills in Shape's defaults.
func normalize(s Shape) Shape {
	if s.RateBps > 0 {
		if s.Bucket <= 0 {
			s.Bucket = max(4000, int(s.RateBps/8/50))
		}
		if s.QueueDelay <= 0 {
			s.QueueDelay = 100 * time.Millisecond
		}
		if s.Limit <= 0 {
			s.Limit = max(6000, int(float64(s.RateBps)/8*s.QueueDelay.Seconds()))
		}
	}
	s.Loss = min(max(s.Loss, 0), 1)
	s.Delay = max(s.Delay, 0)
	return s
}

func (l *Link) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

// Shape returns the direction's current shape (with the defaults filled in).
func (l *Link) Shape() Shape {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shape
}

// SetShape replaces the whole shape; packets still waiting for tokens are
// rescheduled at the new rate.
func (l *Link) SetShape(s Shape) {
	l.mu.Lock()
	l.reshape(s)
	l.mu.Unlock()
	l.wake()
}

// reshape makes s the link's shape, rescheduling the packets still waiting for
// tokens; l.mu is held, and the caller wakes the sender after unlocking.
func (l *Link) reshape(s Shape) {
	l.spec, l.shape = s, normalize(s)
	l.tokens = min(l.tokens, float64(l.shape.Bucket))
	l.reschedule(time.Now())
}

// SetRate changes the rate (bit/s, 0 = unlimited), as `tc qdisc change ... rate`:
// a Bucket or Limit given explicitly stays, defaults follow the new rate (a
// QueueDelay keeps the queue that long). Packets still waiting for tokens are
// rescheduled at the new rate.
func (l *Link) SetRate(bps int64) {
	l.mu.Lock()
	s := l.spec
	s.RateBps = bps
	l.reshape(s)
	l.mu.Unlock()
	l.wake()
}

// SetLoss changes the random loss fraction.
func (l *Link) SetLoss(fraction float64) {
	l.mu.Lock()
	l.spec.Loss = fraction
	l.shape.Loss = min(max(fraction, 0), 1)
	l.mu.Unlock()
}

// SetDelay changes the one-way delay of packets arriving from now on.
func (l *Link) SetDelay(d time.Duration) {
	l.mu.Lock()
	l.spec.Delay = d
	l.shape.Delay = max(d, 0)
	l.mu.Unlock()
}

// Stats returns the direction's counters.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// enqueue drops or schedules one datagram (copied).
func (l *Link) enqueue(b []byte, now time.Time) {
	l.mu.Lock()
	if l.shape.Loss > 0 && l.rng.Float64() < l.shape.Loss {
		l.stats.LostPackets++
		l.stats.LostBytes += int64(len(b))
		l.mu.Unlock()
		return
	}
	n := len(b)
	if l.shape.RateBps > 0 && l.backlog(now)+n > l.shape.Limit {
		l.stats.QueueDropped++
		l.stats.QueueBytes += int64(n)
		l.mu.Unlock()
		return
	}
	p := l.alloc(n)
	copy(p.data, b)
	p.dep = l.schedule(now, n)
	p.release = p.dep.Add(l.shape.Delay)
	wasEmpty := l.head == len(l.queue)
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	if wasEmpty {
		l.wake()
	}
}

// schedule returns when a packet of n bytes arriving at now leaves the bucket,
// after every packet already queued, and takes its tokens.
func (l *Link) schedule(now time.Time, n int) time.Time {
	if l.shape.RateBps <= 0 {
		return now
	}
	t := now
	if l.last.After(t) {
		t = l.last // the link is busy until the previous packet left
	}
	rate := float64(l.shape.RateBps) / 8 // bytes per second
	tokens := min(float64(l.shape.Bucket), l.tokens+rate*t.Sub(l.last).Seconds())
	if l.last.IsZero() {
		tokens = float64(l.shape.Bucket)
	}
	if tokens < float64(n) {
		t = t.Add(time.Duration((float64(n) - tokens) / rate * float64(time.Second)))
		tokens = float64(n)
	}
	l.tokens, l.last = tokens-float64(n), t
	return t
}

// backlog is the bytes still waiting for tokens at now (a suffix of the queue).
func (l *Link) backlog(now time.Time) int {
	b := 0
	for i := len(l.queue) - 1; i >= l.head && l.queue[i].dep.After(now); i-- {
		b += len(l.queue[i].data)
	}
	return b
}

// reschedule recomputes the departure of packets still waiting for tokens after
// a shape change.
func (l *Link) reschedule(now time.Time) {
	i := len(l.queue)
	for i > l.head && l.queue[i-1].dep.After(now) {
		i--
	}
	if i == len(l.queue) {
		return
	}
	// The bucket as it was at now: the tokens consumed by the rescheduled packets
	// are not given back (they were not there yet), the link is idle from now.
	if l.last.After(now) {
		l.tokens, l.last = 0, now
	}
	for _, p := range l.queue[i:] {
		p.dep = l.schedule(now, len(p.data))
		p.release = p.dep.Add(l.shape.Delay)
	}
	// Delay may have shrunk: keep release times non-decreasing (FIFO).
	for j := i; j < len(l.queue); j++ {
		if j > l.head && l.queue[j].release.Before(l.queue[j-1].release) {
			l.queue[j].release = l.queue[j-1].release
		}
	}
}

// next pops the head packet if it is due; otherwise it returns how long to wait
// (ok) or that the queue is empty (!ok).
func (l *Link) next(now time.Time) (p *packet, wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == len(l.queue) {
		return nil, 0, false
	}
	h := l.queue[l.head]
	if h.release.After(now) {
		return nil, h.release.Sub(now), true
	}
	l.queue[l.head] = nil
	l.head++
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0 // reuse the array from its start
	} else if l.head >= 4096 && l.head*2 >= len(l.queue) {
		n := copy(l.queue, l.queue[l.head:]) // a queue that never drains: compact
		clear(l.queue[n:])
		l.queue, l.head = l.queue[:n], 0
	}
	l.stats.Packets++
	l.stats.Bytes += int64(len(h.data))
	return h, 0, true
}

func (l *Link) alloc(n int) *packet {
	var p *packet
	if k := len(l.pool); k > 0 {
		p, l.pool = l.pool[k-1], l.pool[:k-1]
	} else {
		p = &packet{data: make([]byte, 0, bufSize)}
	}
	if cap(p.data) < n {
		p.data = make([]byte, n)
	}
	p.data = p.data[:n]
	return p
}

func (l *Link) free(p *packet) {
	l.mu.Lock()
	if len(l.pool) < 1024 && cap(p.data) <= bufSize {
		l.pool = append(l.pool, p)
	}
	l.mu.Unlock()
}
