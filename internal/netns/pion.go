package netns

import (
	"context"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// Net returns a pion transport.Net whose sockets are made inside the namespace
// and whose interfaces are the namespace's, for webrtc.SettingEngine.SetNet: a
// pion peer using it lives behind the shaped link.
func (n *NS) Net() (transport.Net, error) {
	if p := n.pion.Load(); p != nil {
		return p, nil
	}
	var std *stdnet.Net
	// The interface list is read over netlink, from inside the namespace.
	if err := n.Do(func() (err error) { std, err = stdnet.NewNet(); return }); err != nil {
		return nil, err
	}
	p := &pionNet{Net: std, ns: n}
	n.pion.CompareAndSwap(nil, p)
	return n.pion.Load(), nil
}

// pionNet is stdnet with every socket made on the namespace's thread.
type pionNet struct {
	*stdnet.Net
	ns *NS
}

var _ transport.Net = (*pionNet)(nil)

func (p *pionNet) ListenPacket(network, address string) (c net.PacketConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.Net.ListenPacket(network, address); return })
	return c, err
}

func (p *pionNet) ListenUDP(network string, laddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.Net.ListenUDP(network, laddr); return })
	return c, err
}

func (p *pionNet) ListenTCP(network string, laddr *net.TCPAddr) (l transport.TCPListener, err error) {
	err = p.ns.Do(func() (err error) { l, err = p.Net.ListenTCP(network, laddr); return })
	return l, err
}

func (p *pionNet) Dial(network, address string) (c net.Conn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.Net.Dial(network, address); return })
	return c, err
}

func (p *pionNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.Net.DialUDP(network, laddr, raddr); return })
	return c, err
}

func (p *pionNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (c transport.TCPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.Net.DialTCP(network, laddr, raddr); return })
	return c, err
}

func (p *pionNet) CreateDialer(d *net.Dialer) transport.Dialer { return nsDialer{d: d, ns: p.ns} }

func (p *pionNet) CreateListenConfig(lc *net.ListenConfig) transport.ListenConfig {
	return nsListenConfig{lc: lc, ns: p.ns}
}

type nsDialer struct {
	d  *net.Dialer
	ns *NS
}

func (d nsDialer) Dial(network, address string) (c net.Conn, err error) {
	err = d.ns.Do(func() (err error) { c, err = d.d.Dial(network, address); return })
	return c, err
}

type nsListenConfig struct {
	lc *net.ListenConfig
	ns *NS
}

func (l nsListenConfig) Listen(ctx context.Context, network, address string) (ln net.Listener, err error) {
	err = l.ns.Do(func() (err error) { ln, err = l.lc.Listen(ctx, network, address); return })
	return ln, err
}

func (l nsListenConfig) ListenPacket(ctx context.Context, network, address string) (c net.PacketConn, err error) {
	err = l.ns.Do(func() (err error) { c, err = l.lc.ListenPacket(ctx, network, address); return })
	return c, err
}
