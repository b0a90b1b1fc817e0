package turnserver

import (
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

// portFilter wraps the relay address generator so that relays reach only the
// media ports: pion's PermissionHandler sees the peer's IP alone.
type portFilter struct {
	inner   turn.RelayAddressGenerator
	ports   []int
	refused *atomic.Int64
	// bytesPerSec caps each UDP relay in each direction (0 = no cap): one
	// allocation cannot turn this server into a bandwidth amplifier.
	bytesPerSec int
	dropped     *atomic.Int64
}

func (p *portFilter) Validate() error { return p.inner.Validate() }

func (p *portFilter) allowed(port int) bool {
	return len(p.ports) == 0 || slices.Contains(p.ports, port)
}

func (p *portFilter) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := p.inner.AllocatePacketConn(c)
	if err != nil {
		return nil, nil, err
	}
	fc := &filteredConn{PacketConn: conn, f: p}
	if p.bytesPerSec > 0 {
		// One second of traffic as the burst: a keyframe passes whole.
		fc.out = rate.NewLimiter(rate.Limit(p.bytesPerSec), p.bytesPerSec)
		fc.in = rate.NewLimiter(rate.Limit(p.bytesPerSec), p.bytesPerSec)
	}
	return fc, addr, nil
}

func (p *portFilter) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return p.inner.AllocateListener(c)
}

func (p *portFilter) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	if a, ok := c.RemoteAddr.(*net.TCPAddr); ok && !p.allowed(a.Port) {
		p.refused.Add(1)
		return nil, fmt.Errorf("turn: relay to %s refused: not a media port of this server", c.RemoteAddr)
	}
	return p.inner.AllocateConn(c)
}

// filteredConn drops datagrams to ports other than the media ports. It runs per
// relayed packet: a slice scan, no allocation, no log.
type filteredConn struct {
	net.PacketConn
	f       *portFilter
	out, in *rate.Limiter // nil without a cap
}

func (c *filteredConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if a, ok := addr.(*net.UDPAddr); ok && !c.f.allowed(a.Port) {
		c.f.refused.Add(1)
		return len(b), nil // dropped, as a firewall would: the client learns nothing
	}
	if c.out != nil && !c.out.AllowN(time.Now(), len(b)) {
		c.f.dropped.Add(1)
		return len(b), nil // over the relay's budget: dropped like a policer
	}
	return c.PacketConn.WriteTo(b, addr)
}

// ReadFrom drops what the peer sends beyond the relay's budget before pion
// forwards it to the client.
func (c *filteredConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.in == nil || c.in.AllowN(time.Now(), n) {
			return n, addr, err
		}
		c.f.dropped.Add(1)
	}
}
