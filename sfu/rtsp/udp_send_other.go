//go:build !(linux && (amd64 || arm64))

package rtsp

import (
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/net/ipv4"
)

// udpSender sends the direct UDP readers' RTP from the server's RTP socket
// (sendmmsg where there is one; UDP segmentation offload only on Linux, see
// udp_send_linux.go).
type udpSender struct {
	*ipv4.PacketConn
	rtp *net.UDPConn
}

func newUDPSender(c *net.UDPConn) *udpSender {
	return &udpSender{PacketConn: ipv4.NewPacketConn(c), rtp: c}
}

// udpDests: the kernel-form addresses are Linux's; here d.udp is used as is.
type udpDests struct{}

func newUDPDests([]*net.UDPAddr) udpDests { return udpDests{} }

// udpOut is a feed's messages for its batch (feed goroutine only).
type udpOut struct{ msgs []ipv4.Message }

// refused reports whether the kernel refused message i of the sent batch: the
// bytes sent stay 0 (send skips a message the kernel refuses).
func (o *udpOut) refused(i int) bool { return o.msgs[i].N == 0 }

// flushUDP sends the batched packets to the UDP readers in one sendmmsg (as many
// as the kernel takes), reader by reader; readers waiting for a keyframe and
// those the kernel refused as on Linux (udp_send_linux.go). Feed goroutine only.
func (f *trackFeed) flushUDP() {
	if len(f.udpPkts) == 0 {
		return
	}
	o := &f.udpOut
	s := f.ps.s.udpBatch
	if lp := f.ps.direct.Load(); lp != nil && s != nil {
		f.udpWaiting = false
		for _, d := range *lp {
			if d.udp == nil || d.udp[f.idx] == nil || f.udpSkips(d) {
				continue
			}
			for i := range f.udpPkts {
				o.msgs = append(o.msgs, ipv4.Message{Buffers: f.udpPkts[i : i+1], Addr: d.udp[f.idx]})
			}
		}
		if len(o.msgs) > 0 && s.send(o.msgs) {
			for i := range o.msgs {
				if o.refused(i) {
					f.udpRefusals(*lp, len(f.udpPkts))
					break
				}
			}
		}
	}
	clear(o.msgs) // drop the addresses and packets: readers come and go
	o.msgs = o.msgs[:0]
	clear(f.udpPkts)
	f.udpPkts = f.udpPkts[:0]
	f.udpArena = f.udpArena[:0]
}

// send sends ms, in as few sendmmsg calls as the kernel takes. A message the
// kernel refuses (its reader's address unreachable) is skipped. False when the
// socket is closed (the server is closing).
func (s *udpSender) send(ms []ipv4.Message) bool {
	cleared := false
	for len(ms) > 0 {
		n, err := s.WriteBatch(ms, 0)
		if err != nil {
			// gortsplib's writes on this socket leave a deadline on it, which may
			// have passed since: clear it once and try again.
			if !cleared && errors.Is(err, os.ErrDeadlineExceeded) {
				cleared = true
				_ = s.rtp.SetWriteDeadline(time.Time{})
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return false
			}
			n = max(n, 0) + 1 // ms[n] refused: its N stays 0
		}
		ms = ms[min(n, len(ms)):]
	}
	return true
}
