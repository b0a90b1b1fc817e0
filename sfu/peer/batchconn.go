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

	noGSO  bool   // the kernel refused UDP_SEGMENT; under sendMu
	trains uint64 // GSO trains built; under sendMu (tests)
}

// mmsghdr is struct mmsghdr of linux/amd64 and linux/arm64 (<sys/socket.h>).
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// sendBatch is a batch of datagrams with their own buffers and addresses.
type sendBatch struct {
	hdrs  [batchMax]mmsghdr // built by send: one per datagram or per GSO train
	iovs  [batchMax]syscall.Iovec
	addrs [batchMax]syscall.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	alen  [batchMax]uint32                   // the address's length
	cmsgs [batchMax][gsoCmsgSpace]byte       // UDP_SEGMENT control messages
	bufs  [batchMax][1500]byte
	n     int
}

// gsoCmsgSpace is CMSG_SPACE(sizeof(uint16)) on 64-bit Linux.
const gsoCmsgSpace = 24

// gsoMaxSegments is the kernel's UDP_MAX_SEGMENTS; gsoMaxBytes keeps a train
// within one IP datagram's size limit.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
)

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
	if ip4 := addr.IP.To4(); ip4 != nil {
		// An IPv4 sockaddr works on IPv4 and on dual-stack IPv6 sockets alike.
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], uint16(addr.Port))
		copy(sa4.Addr[:], ip4)
		b.alen[i] = syscall.SizeofSockaddrInet4
		return
	}
	*sa = syscall.RawSockaddrInet6{Family: syscall.AF_INET6}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(addr.Port))
	copy(sa.Addr[:], addr.IP.To16())
	b.alen[i] = syscall.SizeofSockaddrInet6
}

// sameDest reports whether datagrams i and j go to the same address.
func (b *sendBatch) sameDest(i, j int) bool {
	if b.alen[i] != b.alen[j] {
		return false
	}
	x := (*[syscall.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.addrs[i]))
	y := (*[syscall.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.addrs[j]))
	if b.alen[i] == syscall.SizeofSockaddrInet4 {
		return *(*[syscall.SizeofSockaddrInet4]byte)(x[:]) == *(*[syscall.SizeofSockaddrInet4]byte)(y[:])
	}
	return *x == *y
}

// build fills b.hdrs and returns their number and how many are GSO trains.
// Consecutive datagrams to one address whose sizes are equal (the last may be
// shorter) become one message with a UDP_SEGMENT control message: the kernel walks routing, netfilter and the
// device once for the train and splits it at the end (or the NIC does). A video
// frame's packets, written one after the other by its downtrack, are such a train.
func (b *sendBatch) build(gso bool) (msgs, trains int) {
	k := 0
	for i := 0; i < b.n; {
		j := i + 1
		if size := b.iovs[i].Len; gso && size > 0 {
			for j < b.n && j-i < gsoMaxSegments && uint64(j-i+1)*size <= gsoMaxBytes &&
				b.iovs[j].Len <= size && b.sameDest(i, j) {
				j++
				if b.iovs[j-1].Len < size {
					break // a shorter datagram ends a train
				}
			}
		}
		h := &b.hdrs[k].hdr
		*h = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(&b.addrs[i])), Namelen: b.alen[i], Iov: &b.iovs[i], Iovlen: uint64(j - i)}
		if j-i > 1 {
			trains++
			c := &b.cmsgs[k]
			cm := (*syscall.Cmsghdr)(unsafe.Pointer(&c[0]))
			cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			cm.SetLen(syscall.CmsgLen(2))
			binary.NativeEndian.PutUint16(c[syscall.CmsgLen(0):], uint16(b.iovs[i].Len))
			h.Control, h.Controllen = &c[0], uint64(syscall.CmsgSpace(2))
		}
		b.hdrs[k].len = 0
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
// socket buffer is full. sendMu is held.
func (c *batchConn) send(b *sendBatch) {
	n, trains := b.build(!c.noGSO)
	c.trains += uint64(trains)
	sent := 0
	_ = c.raw.Write(func(fd uintptr) bool {
		for sent < n {
			r, _, errno := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[sent])), uintptr(n-sent), 0, 0, 0)
			switch {
			case errno == syscall.EAGAIN:
				return false // wait until writable
			case errno == syscall.EINTR:
			case errno != 0 && b.hdrs[sent].hdr.Controllen != 0 && !c.noGSO:
				// No UDP GSO here (an old kernel, a device without checksum
				// offload): send this batch and the next ones datagram by datagram.
				c.noGSO = true
				b.unbuild(sent)
				n, _ = b.build(false)
				sent = 0
			case errno != 0:
				// UDP has no delivery promise: a datagram the kernel refuses (an
				// unreachable address) is lost like one lost on the way, and the
				// rest of the batch still goes.
				sent++
			default:
				sent += int(r)
			}
		}
		return true
	}) // an error means the socket is closed: the edge is shutting down
}

// unbuild drops the datagrams of the messages before k (they were sent), so that
// build can start over with the rest. The iovecs keep pointing at their buffers,
// which stay put until the batch is reused.
func (b *sendBatch) unbuild(k int) {
	first := 0
	for i := range k {
		first += int(b.hdrs[i].hdr.Iovlen)
	}
	if first == 0 {
		return
	}
	copy(b.iovs[:], b.iovs[first:b.n])
	copy(b.addrs[:], b.addrs[first:b.n])
	copy(b.alen[:], b.alen[first:b.n])
	b.n -= first
}
