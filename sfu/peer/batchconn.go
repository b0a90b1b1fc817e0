//go:build linux && (amd64 || arm64)

package peer

import (
	"net"
	"sync"
	"syscall"

	"lectern/internal/udpgso"
)

// batchMax is the most datagrams one sendmmsg call carries. At 100 subscribers a
// sender round moves 100-odd packets; 64 amortises the system call's fixed cost
// and keeps the pending bytes (64 × 1500) small.
const batchMax = 64

// batchConn is the ICE UDP socket with batched sends. While a sender round is open
// (begin … end, see egress), datagrams written to it are copied into a batch and
// go out together with one sendmmsg(2) when the round ends or the batch is full;
// outside rounds, writes go straight to the socket. Everything else (reads, ICE
// checks from other goroutines, DTLS) passes through: a write from another
// goroutine during a round waits at most for that round to end.
//
// Sends are serialised (sendMu) in batch order, so datagrams to one address leave
// in the order they were written. The sendmmsg calls, GSO trains and their
// fallback are internal/udpgso's, shared with the RTSP server's UDP readers.
type batchConn struct {
	*net.UDPConn
	sender *udpgso.Sender

	sendMu sync.Mutex // held while a batch is sent

	mu     sync.Mutex // guards rounds, cur, spare
	rounds int        // open sender rounds
	cur    *sendBatch
	spare  []*sendBatch

	trains uint64 // GSO trains built; under sendMu (tests)
}

// sendBatch is a batch of datagrams with their own buffers and addresses.
type sendBatch struct {
	hdrs  [batchMax]udpgso.Mmsghdr // built by send: one per datagram or per GSO train
	iovs  [batchMax]syscall.Iovec
	addrs [batchMax]udpgso.Sockaddr
	cmsgs [batchMax]udpgso.Segment // UDP_SEGMENT control messages
	bufs  [batchMax][1500]byte
	n     int
}

func newBatchConn(c *net.UDPConn) (*batchConn, error) {
	s, err := udpgso.NewSender(c)
	if err != nil {
		return nil, err
	}
	return &batchConn{UDPConn: c, sender: s, cur: new(sendBatch)}, nil
}

// WriteTo implements net.PacketConn.
func (c *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	for ok {
		c.mu.Lock()
		if c.rounds == 0 || len(p) > len(c.cur.bufs[0]) || ua.Zone != "" {
			c.mu.Unlock()
			break
		}
		b := c.cur
		if i := b.n; i < batchMax {
			b.add(i, p, ua)
			b.n++
			full := b.n == batchMax
			c.mu.Unlock()
			if full {
				c.flush()
			}
			return len(p), nil
		}
		c.mu.Unlock()
		c.flush() // full, and its writer has not flushed it yet
	}
	return c.UDPConn.WriteTo(p, addr)
}

// add fills message i with a copy of p for addr.
func (b *sendBatch) add(i int, p []byte, addr *net.UDPAddr) {
	n := copy(b.bufs[i][:], p)
	b.iovs[i] = syscall.Iovec{Base: &b.bufs[i][0], Len: uint64(n)}
	b.addrs[i].Set(addr)
}

// build fills b.hdrs and returns their number and how many are GSO trains.
// Consecutive datagrams to one address whose sizes are equal (the last may be
// shorter) become one message with a UDP_SEGMENT control message (see udpgso). A
// video frame's packets, written one after the other by its downtrack, are such a
// train.
func (b *sendBatch) build(gso bool) (msgs, trains int) {
	k := 0
	for i := 0; i < b.n; {
		j := i + 1
		if gso {
			e := i + 1
			for e < b.n && b.addrs[e].Equal(&b.addrs[i]) {
				e++
			}
			j = i + udpgso.Train(b.iovs[i:e])
		}
		var seg *udpgso.Segment
		if j-i > 1 {
			trains++
			seg = &b.cmsgs[k]
			seg.Set(int(b.iovs[i].Len))
		}
		b.hdrs[k].Set(&b.addrs[i], b.iovs[i:j], seg)
		k++
		i = j
	}
	return k, trains
}

// begin opens a sender round: writes are batched until end.
func (c *batchConn) begin() {
	c.mu.Lock()
	c.rounds++
	c.mu.Unlock()
}

// end closes a sender round and sends what is pending.
func (c *batchConn) end() {
	c.mu.Lock()
	c.rounds--
	c.mu.Unlock()
	c.flush()
}

// flush sends the pending batch.
func (c *batchConn) flush() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	b := c.cur
	if b.n == 0 {
		c.mu.Unlock()
		return
	}
	if k := len(c.spare); k > 0 {
		c.cur, c.spare = c.spare[k-1], c.spare[:k-1]
	} else {
		c.cur = new(sendBatch)
	}
	c.mu.Unlock()

	c.send(b)
	b.n = 0
	c.mu.Lock()
	c.spare = append(c.spare, b)
	c.mu.Unlock()
}

// send writes every datagram of b with sendmmsg, waiting in the poller when the
// socket buffer is full; where the kernel refuses a GSO train, the sender sends it
// and the later ones datagram by datagram. sendMu is held.
func (c *batchConn) send(b *sendBatch) {
	n, trains := b.build(c.sender.GSO())
	c.trains += uint64(trains)
	_, _ = c.sender.Send(b.hdrs[:n]) // an error means the socket is closed: the edge is shutting down
}
