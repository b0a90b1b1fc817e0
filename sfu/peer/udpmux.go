package peer

import (
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
)

// listenAddrsTTL is how long the UDP mux's local addresses are reused before the
// interfaces are listed again: an address added to the host later is offered to
// connections from then on, and a join no longer lists every interface.
const listenAddrsTTL = 10 * time.Second

// hostAddrMux is the ICE UDP mux with the local addresses each connection gathers
// host candidates for listed once per listenAddrsTTL and pared down to those a
// candidate is ever offered for. Bound to the unspecified address, pion lists every
// interface (a netlink dump) on each gather and makes a candidate for each address,
// IPv6 link-local ones included: those are never signalled (RFC 8445 §5.1.1.1, the
// location-tracking rule) yet each holds a read goroutine, an 8 KB buffer and its
// connectivity checks for the connection's life. Loopback addresses are dropped
// here because pion skips them only for its own mux type, which this wraps.
type hostAddrMux struct {
	ice.UDPMux
	loopback bool // the socket is bound to a loopback address: keep those

	mu    sync.Mutex
	addrs []net.Addr // never modified once set: callers may keep it
	at    time.Time
}

func newHostAddrMux(m ice.UDPMux, loopback bool) *hostAddrMux {
	return &hostAddrMux{UDPMux: m, loopback: loopback}
}

// GetListenAddresses returns the addresses to gather host candidates on.
func (m *hostAddrMux) GetListenAddresses() []net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.addrs != nil && time.Since(m.at) < listenAddrsTTL {
		return m.addrs
	}
	m.addrs, m.at = offeredAddrs(m.UDPMux.GetListenAddresses(), m.loopback), time.Now()
	return m.addrs
}

// offeredAddrs drops the addresses no candidate is offered for: IPv6 link-local
// ones, and loopback unless loopback is set. If that would leave none (a socket
// bound to such an address), all are kept.
func offeredAddrs(all []net.Addr, loopback bool) []net.Addr {
	out := make([]net.Addr, 0, len(all))
	for _, a := range all {
		u, ok := a.(*net.UDPAddr)
		if ok && (u.IP.To4() == nil && (u.IP.IsLinkLocalUnicast() || u.IP.IsLinkLocalMulticast()) ||
			!loopback && u.IP.IsLoopback()) {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return all
	}
	return out
}
