package peer

import (
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// listenAddrsTTL is how long the host's interfaces and addresses, as ICE sees them,
// are reused before they are listed again: an address added to the host later is
// offered to connections from then on.
const listenAddrsTTL = 10 * time.Second

// hostNet is the network every ICE agent and the UDP mux use: pion's standard one,
// with the interface list shared and refreshed once per listenAddrsTTL. Without it
// pion makes a standard network per connection, which lists every interface and
// its addresses (netlink dumps on each join) and keeps that list, about 12 KB, for
// the connection's life; and the UDP mux keeps the list it made at start forever.
type hostNet struct {
	transport.Net // dials and listens; none of that depends on the interface list

	mu  sync.Mutex
	cur *stdnet.Net // replaced whole, never updated in place: agents may hold its interfaces
	at  time.Time
}

func newHostNet() (*hostNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &hostNet{Net: n, cur: n, at: time.Now()}, nil
}

// current returns the interface list, listed again if older than listenAddrsTTL
// (kept if listing fails).
func (n *hostNet) current() *stdnet.Net {
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.at) >= listenAddrsTTL {
		if fresh, err := stdnet.NewNet(); err == nil {
			n.cur = fresh
		}
		n.at = time.Now()
	}
	return n.cur
}

func (n *hostNet) Interfaces() ([]*transport.Interface, error) { return n.current().Interfaces() }

func (n *hostNet) InterfaceByIndex(i int) (*transport.Interface, error) {
	return n.current().InterfaceByIndex(i)
}

func (n *hostNet) InterfaceByName(name string) (*transport.Interface, error) {
	return n.current().InterfaceByName(name)
}

// hostAddrMux is the ICE UDP mux with the local addresses each connection gathers
// host candidates for pared down to those a candidate is ever offered for (the
// result kept for listenAddrsTTL). Bound to the unspecified address, pion makes a
// candidate for each address of each interface, IPv6 link-local ones included: those are never signalled (RFC 8445 §5.1.1.1, the
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
