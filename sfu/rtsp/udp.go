package rtsp

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// udpListener owns the server's two UDP sockets. Readers' packets are sent from them;
// what arrives on the RTP socket is routed, by the sender's address, to the
// publisher stream that announced that client port in its SETUP. RTCP that arrives
// (receiver reports, NAT keep-alives) is read and dropped.
type udpListener struct {
	rtp, rtcp *net.UDPConn

	mu    sync.RWMutex
	media map[netip.AddrPort]udpMedia

	unrouted atomic.Uint64 // packets from addresses no publisher announced
}

// udpMedia receives a publisher's RTP packets from the UDP read goroutine.
type udpMedia interface {
	writeUDP(payload []byte)
}

func newUDPListener(rtp, rtcp *net.UDPConn) *udpListener {
	_ = rtp.SetReadBuffer(4 << 20)
	return &udpListener{rtp: rtp, rtcp: rtcp, media: map[netip.AddrPort]udpMedia{}}
}

func (u *udpListener) ports() (rtp, rtcp int) {
	return u.rtp.LocalAddr().(*net.UDPAddr).Port, u.rtcp.LocalAddr().(*net.UDPAddr).Port
}

// register routes packets from addr to m until the returned function is called.
func (u *udpListener) register(addr netip.AddrPort, m udpMedia) (unregister func()) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	u.mu.Lock()
	u.media[addr] = m
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		if u.media[addr] == m {
			delete(u.media, addr)
		}
		u.mu.Unlock()
	}
}

// readRTP routes incoming RTP until the socket is closed.
func (u *udpListener) readRTP(log *slog.Logger) {
	buf := make([]byte, 2048)
	for {
		n, from, err := u.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !isClosedErr(err) {
				log.Warn("rtsp udp read", "err", err)
			}
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		u.mu.RLock()
		m := u.media[from]
		u.mu.RUnlock()
		if m == nil {
			u.unrouted.Add(1)
			continue
		}
		m.writeUDP(buf[:n])
	}
}

// readRTCP drains the RTCP socket until it is closed.
func (u *udpListener) readRTCP() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := u.rtcp.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}

func (u *udpListener) close() {
	_ = u.rtp.Close()
	_ = u.rtcp.Close()
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
