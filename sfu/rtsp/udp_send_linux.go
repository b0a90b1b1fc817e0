//go:build linux && (amd64 || arm64)

package rtsp

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"lectern/internal/udpgso"
)

// udpSender sends the direct UDP readers' RTP from the server's RTP socket.
type udpSender struct {
	*udpgso.Sender
	rtp    *net.UDPConn
	trains atomic.Uint64 // trains built (tests)
}

func newUDPSender(c *net.UDPConn) *udpSender {
	s, err := udpgso.NewSender(c)
	if err != nil {
		return nil // no direct UDP readers: gortsplib sends to them
	}
	return &udpSender{Sender: s, rtp: c}
}

// udpDests are a reader's RTP addresses per stream media in the kernel's form,
// converted once when it starts playing (zero: not set up).
type udpDests []udpgso.Sockaddr

func newUDPDests(addrs []*net.UDPAddr) udpDests {
	d := make(udpDests, len(addrs))
	for i, a := range addrs {
		if a != nil {
			d[i].Set(a)
		}
	}
	return d
}

// udpOut is a feed's scratch for sending its batch (feed goroutine only): one
// iovec per packet, shared by every reader's messages; the trains the packets
// form (ends[k] is the end of train k), the same for every reader; a UDP_SEGMENT
// control message per train; the messages.
type udpOut struct {
	iovs []syscall.Iovec
	ends []int
	segs []udpgso.Segment
	hdrs []udpgso.Mmsghdr
	gso  bool // trains were on after the send (see refused)
}

// refused reports whether the kernel refused message i of the sent batch:
// sendmmsg writes the bytes sent into each message it sent (Set zeroed them), and
// udpgso.Sender skips one it refuses. A train sent after the kernel refused GSO
// went datagram by datagram through other messages, which leaves its own at 0:
// it counts as sent.
func (o *udpOut) refused(i int) bool {
	h := &o.hdrs[i]
	return h.Len == 0 && (h.Hdr.Controllen == 0 || o.gso)
}

// flushUDP sends the batched packets to the UDP readers in one sendmmsg (as many
// as the kernel takes), reader by reader: a reader's packets arrive together, so
// its process wakes up once for them rather than once per packet. Where the kernel
// segments UDP (GSO), a reader's run of equal-sized packets (an access unit's FU-A
// fragments: the H.264 bridge cuts NALs evenly) is one message, a "train", which
// the kernel routes once and splits at the end: per reader and batch the send
// costs about what one packet costs. A reader waiting for a keyframe gets no
// batch until one starts with it (udpSkips); one whose messages the kernel
// refused waits for a keyframe from then on (udpLost). Feed goroutine only.
func (f *trackFeed) flushUDP() {
	if len(f.udpPkts) == 0 {
		return
	}
	o := &f.udpOut
	s := f.ps.s.udpBatch
	if lp := f.ps.direct.Load(); lp != nil && s != nil {
		for _, p := range f.udpPkts {
			o.iovs = append(o.iovs, syscall.Iovec{Base: &p[0], Len: uint64(len(p))})
		}
		gso := s.GSO()
		for i := 0; i < len(o.iovs); {
			j := i + 1
			if gso {
				j = i + udpgso.Train(o.iovs[i:])
			}
			o.ends = append(o.ends, j)
			i = j
		}
		if cap(o.segs) < len(o.ends) {
			o.segs = make([]udpgso.Segment, len(o.ends))
		}
		o.segs = o.segs[:len(o.ends)]
		start, trains := 0, 0
		for k, e := range o.ends {
			if e-start > 1 {
				o.segs[k].Set(int(o.iovs[start].Len))
				trains++
			}
			start = e
		}
		f.udpWaiting = false
		for _, d := range *lp {
			if d.udp == nil || d.udp[f.idx] == nil || f.udpSkips(d) {
				continue
			}
			to := &d.udpTo[f.idx]
			start := 0
			for k, e := range o.ends {
				var seg *udpgso.Segment
				if e-start > 1 {
					seg = &o.segs[k]
				}
				o.hdrs = append(o.hdrs, udpgso.Mmsghdr{})
				o.hdrs[len(o.hdrs)-1].Set(to, o.iovs[start:e], seg)
				start = e
			}
		}
		if len(o.hdrs) > 0 {
			sent := s.send(o.hdrs)
			if trains > 0 {
				s.trains.Add(uint64(trains))
			}
			if sent {
				o.gso = s.GSO()
				for i := range o.hdrs {
					if o.refused(i) {
						f.udpRefusals(*lp, len(o.ends))
						break
					}
				}
			}
		}
	}
	clear(o.hdrs) // drop the addresses and packets: readers come and go
	o.hdrs = o.hdrs[:0]
	clear(o.iovs)
	o.iovs = o.iovs[:0]
	o.ends = o.ends[:0]
	clear(f.udpPkts)
	f.udpPkts = f.udpPkts[:0]
	f.udpArena = f.udpArena[:0]
}

// send sends the messages. A message the kernel refuses (its reader's address
// unreachable) is skipped: that reader loses the packets (udpLost). It does not
// wait for a slow UDP reader: the kernel drops what its socket cannot take. False
// when the socket could not be written (the server is closing).
func (s *udpSender) send(hdrs []udpgso.Mmsghdr) bool {
	cleared := false
	for len(hdrs) > 0 {
		n, err := s.Send(hdrs)
		if err == nil || cleared || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err == nil // sent, or the socket is closed: the server is closing
		}
		// gortsplib's writes on this socket leave a deadline on it, which may
		// have passed since: clear it once and send the rest.
		cleared = true
		_ = s.rtp.SetWriteDeadline(time.Time{})
		hdrs = hdrs[n:]
	}
	return true
}
