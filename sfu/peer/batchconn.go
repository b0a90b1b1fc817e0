//go:build linux && (amd64 || arm64)

package peer

import (
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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
// in the order they were written.
//
// sendmmsg is issued as a raw system call on the non-blocking socket (EAGAIN waits
// in the poller): a batch takes a hundred microseconds or more in the kernel, and
// through syscall.Syscall the runtime's monitor would hand the goroutine's P to
// another thread during each one — a context switch per batch, and a monitor that
// never backs off, which cost more CPU than the batching saved.
type batchConn struct {
	*net.UDPConn
	raw syscall.RawConn

	sendMu sync.Mutex // held while a batch is sent

	mu     sync.Mutex // guards rounds, cur, spare
	rounds int        // open sender rounds
	cur    *sendBatch
	spare  []*sendBatch
}

// mmsghdr is struct mmsghdr of linux/amd64 and linux/arm64 (<sys/socket.h>).
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// sendBatch is a batch of datagrams with their own buffers and addresses.
type sendBatch struct {
	hdrs  [batchMax]mmsghdr
	iovs  [batchMax]syscall.Iovec
	addrs [batchMax]syscall.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	bufs  [batchMax][1500]byte
	n     int
}

func newBatchConn(c *net.UDPConn) (*batchConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &batchConn{UDPConn: c, raw: raw, cur: new(sendBatch)}, nil
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
	sa := &b.addrs[i]
	h := &b.hdrs[i].hdr
	*h = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(sa)), Iov: &b.iovs[i], Iovlen: 1}
	if ip4 := addr.IP.To4(); ip4 != nil {
		// An IPv4 sockaddr works on IPv4 and on dual-stack IPv6 sockets alike.
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], uint16(addr.Port))
		copy(sa4.Addr[:], ip4)
		h.Namelen = syscall.SizeofSockaddrInet4
		return
	}
	*sa = syscall.RawSockaddrInet6{Family: syscall.AF_INET6}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(addr.Port))
	copy(sa.Addr[:], addr.IP.To16())
	h.Namelen = syscall.SizeofSockaddrInet6
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

// send writes every message of b with sendmmsg, waiting in the poller when the
// socket buffer is full.
func (c *batchConn) send(b *sendBatch) {
	sent := 0
	err := c.raw.Write(func(fd uintptr) bool {
		for sent < b.n {
			n, _, errno := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[sent])), uintptr(b.n-sent), 0, 0, 0)
			switch {
			case errno == syscall.EAGAIN:
				return false // wait until writable
			case errno == syscall.EINTR:
				continue
			case errno != 0:
				// UDP has no delivery promise: a datagram the kernel refuses (an
				// unreachable address) is lost like one lost on the way, and the
				// rest of the batch still goes.
				sent++
			default:
				sent += int(n)
			}
		}
		return true
	})
	_ = err // the socket is closed: the edge is shutting down
}
