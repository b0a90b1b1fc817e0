//go:build linux && (amd64 || arm64)

package udpgso

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxSegments is the kernel's UDP_MAX_SEGMENTS; MaxBytes keeps a train within
// one IP datagram's size limit.
const (
	MaxSegments = 64
	MaxBytes    = 65000
)

// Mmsghdr is struct mmsghdr of linux/amd64 and linux/arm64 (<sys/socket.h>).
type Mmsghdr struct {
	Hdr syscall.Msghdr
	Len uint32
	_   [4]byte
}

// Set makes h the message of iovs (one datagram, or a train when seg is not nil)
// to addr. addr, iovs and seg must stay put until the message is sent.
func (h *Mmsghdr) Set(addr *Sockaddr, iovs []syscall.Iovec, seg *Segment) {
	h.Hdr = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(&addr.raw)), Namelen: addr.n, Iov: &iovs[0], Iovlen: uint64(len(iovs))}
	if seg != nil {
		h.Hdr.Control, h.Hdr.Controllen = &seg[0], uint64(syscall.CmsgSpace(2))
	}
	h.Len = 0
}

// Segment is a UDP_SEGMENT control message: the size of a train's datagrams (the
// last may be shorter). CMSG_SPACE(sizeof(uint16)) on 64-bit Linux.
type Segment [24]byte

// Set writes the control message for datagrams of size bytes.
func (c *Segment) Set(size int) {
	cm := (*syscall.Cmsghdr)(unsafe.Pointer(&c[0]))
	cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	cm.SetLen(syscall.CmsgLen(2))
	binary.NativeEndian.PutUint16(c[syscall.CmsgLen(0):], uint16(size))
}

// Sockaddr is a destination in the kernel's form, converted once.
type Sockaddr struct {
	raw syscall.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	n   uint32                   // its length
}

// Set converts addr. An IPv4 address becomes an IPv4 sockaddr, which works on
// IPv4 and on dual-stack IPv6 sockets alike.
func (a *Sockaddr) Set(addr *net.UDPAddr) {
	if ip4 := addr.IP.To4(); ip4 != nil {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&a.raw))
		*sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], uint16(addr.Port))
		copy(sa4.Addr[:], ip4)
		a.n = syscall.SizeofSockaddrInet4
		return
	}
	a.raw = syscall.RawSockaddrInet6{Family: syscall.AF_INET6}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.raw.Port))[:], uint16(addr.Port))
	copy(a.raw.Addr[:], addr.IP.To16())
	a.n = syscall.SizeofSockaddrInet6
}

// Equal reports whether a and b are the same destination.
func (a *Sockaddr) Equal(b *Sockaddr) bool {
	if a.n != b.n {
		return false
	}
	x := (*[syscall.SizeofSockaddrInet6]byte)(unsafe.Pointer(&a.raw))
	y := (*[syscall.SizeofSockaddrInet6]byte)(unsafe.Pointer(&b.raw))
	return string(x[:a.n]) == string(y[:a.n]) // compared in place, not allocated
}

// Train returns how many of iovs, consecutive datagrams to one address, form a
// train from the first: sizes equal to the first's (one shorter one ends it), at
// most MaxSegments and MaxBytes. 1 is a datagram on its own.
func Train(iovs []syscall.Iovec) int {
	size := iovs[0].Len
	if size == 0 {
		return 1
	}
	j := 1
	for j < len(iovs) && j < MaxSegments && uint64(j+1)*size <= MaxBytes && iovs[j].Len <= size {
		j++
		if iovs[j-1].Len < size {
			break
		}
	}
	return j
}

// Sender sends batches of messages on a UDP socket. Its methods may be called
// from several goroutines; batches are sent one at a time (the socket's write
// lock serialises them anyway), in the order their callers got there.
//
// sendmmsg is issued as a raw system call on the non-blocking socket (EAGAIN waits
// in the poller): a batch takes a hundred microseconds or more in the kernel, and
// through syscall.Syscall the runtime's monitor would hand the goroutine's P to
// another thread during each one — a context switch per batch, and a monitor that
// never backs off, which cost more CPU than the batching saved.
type Sender struct {
	raw   syscall.RawConn
	noGSO atomic.Bool // the kernel refused UDP_SEGMENT (or turned off)

	// The batch being sent, under mu: the function given to raw.Write is made
	// once, so that a Send allocates no closure.
	mu    sync.Mutex
	hdrs  []Mmsghdr
	sent  int // messages of hdrs handled
	split int // datagrams of hdrs[sent] sent one by one
	write func(fd uintptr) bool
}

// NewSender sends on c.
func NewSender(c *net.UDPConn) (*Sender, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &Sender{raw: raw}
	s.write = s.sendSome
	return s, nil
}

// GSO reports whether trains may be built: false once the kernel refused one.
func (s *Sender) GSO() bool { return !s.noGSO.Load() }

// SetGSO turns trains on or off (tests; off for good is what a refusal does).
func (s *Sender) SetGSO(on bool) { s.noGSO.Store(!on) }

// Send sends every message of hdrs, waiting in the poller while the socket buffer
// is full. UDP has no delivery promise: a message the kernel refuses (an
// unreachable address) is lost like one lost on the way, and the rest still go.
// When the kernel refuses a train because it cannot segment it (EIO: no checksum
// offload on the route's device; EINVAL, EOPNOTSUPP), trains are off for good and
// that train and the later ones go datagram by datagram.
//
// It returns how many messages were handled, and an error only if the socket
// could not be written (closed, or its write deadline passed: the caller may clear
// it and send hdrs[n:]).
func (s *Sender) Send(hdrs []Mmsghdr) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hdrs, s.sent, s.split = hdrs, 0, 0
	err := s.raw.Write(s.write)
	n := s.sent
	s.hdrs = nil
	return n, err
}

// sendSome sends s.hdrs[s.sent:]; false when the socket is full. Under s.mu.
func (s *Sender) sendSome(fd uintptr) bool {
	hdrs := s.hdrs
	for s.sent < len(hdrs) {
		h := &hdrs[s.sent]
		if s.noGSO.Load() && h.Hdr.Controllen != 0 {
			if !s.splitSend(fd, h) {
				return false
			}
			s.sent++
			continue
		}
		r, _, errno := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(h)), uintptr(len(hdrs)-s.sent), 0, 0, 0)
		switch {
		case errno == syscall.EAGAIN:
			return false // wait until writable
		case errno == syscall.EINTR:
		case errno != 0 && h.Hdr.Controllen != 0 && gsoRefused(errno):
			s.noGSO.Store(true)
		case errno != 0:
			s.sent++
		default:
			s.sent += int(r)
		}
	}
	return true
}

// gsoRefused reports whether errno, for a train, says the kernel cannot segment
// it, rather than that its address is unreachable.
func gsoRefused(errno syscall.Errno) bool {
	return errno == syscall.EIO || errno == syscall.EINVAL || errno == syscall.EOPNOTSUPP || errno == syscall.ENOPROTOOPT
}

// splitSend sends a train's datagrams one by one (GSO refused), up to
// MaxSegments per sendmmsg, from the s.split-th on; false on EAGAIN, with s.split
// the datagrams sent so far, the rest going once the socket is writable.
func (s *Sender) splitSend(fd uintptr, h *Mmsghdr) bool {
	var one [MaxSegments]Mmsghdr
	iovs := unsafe.Slice(h.Hdr.Iov, h.Hdr.Iovlen)
	for s.split < len(iovs) {
		rest := iovs[s.split:min(len(iovs), s.split+MaxSegments)]
		for i := range rest {
			one[i].Hdr = syscall.Msghdr{Name: h.Hdr.Name, Namelen: h.Hdr.Namelen, Iov: &rest[i], Iovlen: 1}
		}
		for done := 0; done < len(rest); {
			r, _, errno := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&one[done])), uintptr(len(rest)-done), 0, 0, 0)
			switch {
			case errno == syscall.EAGAIN:
				s.split += done
				return false
			case errno == syscall.EINTR:
			case errno != 0:
				done++
			default:
				done += int(r)
			}
		}
		s.split += len(rest)
	}
	s.split = 0
	return true
}
