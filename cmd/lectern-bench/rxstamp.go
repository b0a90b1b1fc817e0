package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// stampConn is a subscriber's UDP socket with kernel receive timestamps
// (SO_TIMESTAMPNS, socket(7)), as pion's ICE UDP mux reads it. Before handing a
// video packet on, it notes when the kernel queued the first packet of each access
// unit: the forwarding latency without the tool's own receive path (pion's SRTP
// decryption and goroutine hand-offs on a busy machine). SRTP leaves the RTP header
// in clear (RFC 3711 §3.1), so the timestamp is read before decryption.
//
// It implements ice.AddrPortReaderWriter. ReadFromAddrPort runs on the mux's one
// reading goroutine and does not allocate.
type stampConn struct {
	*net.UDPConn
	videoPT uint8
	sh      *shared
	// nodeLatency, if set, also takes the samples (the node's own histogram).
	nodeLatency *histogram
	// offset is what the server added to the publisher's timestamps for this
	// subscriber (its subscriber finds it at the first keyframe); shifted says
	// it is known and not 0.
	offset  atomic.Uint32
	shifted atomic.Bool
	cursor  sendCursor
	lastTS  uint32
	started bool
	oob     [64]byte
}

func newStampConn(udp *net.UDPConn, videoPT uint8, sh *shared) (*stampConn, error) {
	raw, err := udp.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return &stampConn{UDPConn: udp, videoPT: videoPT, sh: sh}, nil
}

func (c *stampConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, oobn, _, addr, err := c.ReadMsgUDPAddrPort(p, c.oob[:])
	if err == nil {
		c.note(p[:n], c.oob[:oobn])
	}
	return n, addr, err
}

func (c *stampConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(p, addr)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *stampConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// note records the latency of a video access unit's first packet.
func (c *stampConn) note(b, oob []byte) {
	// RTP (not RTCP: RFC 5761 §4) with the video payload type.
	if len(b) < 12 || b[0]>>6 != 2 || b[1]&0x7f != c.videoPT || !c.sh.measuring.Load() {
		return
	}
	ts := binary.BigEndian.Uint32(b[4:8])
	if c.started && ts == c.lastTS {
		return
	}
	c.started, c.lastTS = true, ts
	if c.shifted.Load() {
		ts -= c.offset.Load()
	}
	at, key, ok := c.sh.sent.lookup(&c.cursor, ts)
	rx, stamped := kernelStamp(oob)
	if !ok || !stamped {
		return
	}
	d := time.Duration(rx - at)
	c.sh.netLatency.add(d)
	if c.nodeLatency != nil {
		c.nodeLatency.add(d)
	}
	if key {
		c.sh.netKeyLatency.add(d)
	}
}

// setOffset maps the subscriber's timestamps to the publisher's from now on.
func (c *stampConn) setOffset(off uint32) {
	c.offset.Store(off)
	c.shifted.Store(off != 0)
}

// kernelStamp finds SCM_TIMESTAMPNS in a control message buffer (cmsg(3): a
// struct cmsghdr, then a struct timespec), without allocating. The layout is that
// of 64-bit Linux.
func kernelStamp(oob []byte) (int64, bool) {
	const hdr = 16 // len uint64, level int32, type int32
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < hdr || l > len(oob) {
			return 0, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= hdr+16 {
			sec := int64(binary.NativeEndian.Uint64(oob[hdr:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[hdr+8:]))
			return sec*int64(time.Second) + nsec, true
		}
		next := (l + 7) &^ 7
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return 0, false
}
