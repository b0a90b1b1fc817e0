//go:build linux && (amd64 || arm64)

package udpgso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTrain checks the train rule: equal sizes, one shorter datagram ends a
// train, a longer one cannot join, at most MaxSegments and MaxBytes.
func TestTrain(t *testing.T) {
	iovs := func(sizes ...int) []syscall.Iovec {
		l := make([]syscall.Iovec, len(sizes))
		for i, s := range sizes {
			l[i].Len = uint64(s)
		}
		return l
	}
	many := func(n, size int) []int {
		l := make([]int, n)
		for i := range l {
			l[i] = size
		}
		return l
	}
	for _, c := range []struct {
		sizes []int
		want  int
	}{
		{[]int{1200}, 1},
		{[]int{1200, 1200, 1200}, 3},
		{[]int{1200, 1200, 300, 1200}, 3},
		{[]int{1200, 1400, 1200}, 1},
		{[]int{1200, 1200, 1400}, 2},
		{[]int{0, 0}, 1},
		{many(100, 100), MaxSegments},
		{many(60, 1200), MaxBytes / 1200},
	} {
		if got := Train(iovs(c.sizes...)); got != c.want {
			t.Errorf("Train(%v): %d, want %d", c.sizes, got, c.want)
		}
	}
}

// TestSenderDelivers sends batches of trains and single datagrams to several
// receivers, interleaved, over IPv4, IPv6 and a dual-stack socket, with GSO on and
// off, and checks that each receiver gets exactly its datagrams, whole and in
// order, with no allocation per batch.
func TestSenderDelivers(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", "udp"} {
		for _, gso := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/gso=%v", network, gso), func(t *testing.T) { testSender(t, network, gso) })
		}
	}
}

type fixture struct {
	s     *Sender
	conns []*net.UDPConn
	dests []Sockaddr
}

func newFixture(t *testing.T, network string, receivers int) *fixture {
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if network == "udp6" {
		local = &net.UDPAddr{IP: net.IPv6loopback}
	} else if network == "udp" {
		local = &net.UDPAddr{} // dual-stack socket sending to IPv4 addresses
	}
	sock, err := net.ListenUDP(network, local)
	if err != nil {
		t.Fatalf("listen %s: %v", network, err)
	}
	t.Cleanup(func() { _ = sock.Close() })
	f := &fixture{}
	if f.s, err = NewSender(sock); err != nil {
		t.Fatal(err)
	}
	for range receivers {
		rl := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
		if network == "udp6" {
			rl = &net.UDPAddr{IP: net.IPv6loopback}
		}
		r, err := net.ListenUDP(network, rl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		_ = r.SetReadBuffer(4 << 20)
		var sa Sockaddr
		sa.Set(r.LocalAddr().(*net.UDPAddr))
		f.conns = append(f.conns, r)
		f.dests = append(f.dests, sa)
	}
	return f
}

// datagram k to receiver r: [r, k (2 bytes), filler] of size bytes.
func datagram(r, k, size int) []byte {
	p := make([]byte, size)
	p[0] = byte(r)
	binary.BigEndian.PutUint16(p[1:], uint16(k))
	for i := 3; i < len(p); i++ {
		p[i] = byte(r + k + i)
	}
	return p
}

// expect reads receiver r's datagrams and compares them with want.
func (f *fixture) expect(t *testing.T, r int, want [][]byte) {
	t.Helper()
	buf := make([]byte, 2048)
	conn := f.conns[r]
	for k, w := range want {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("receiver %d, datagram %d of %d: %v", r, k, len(want), err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("receiver %d, datagram %d: got %d bytes (receiver %d, number %d), want %d bytes",
				r, k, n, buf[0], binary.BigEndian.Uint16(buf[1:]), len(w))
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("receiver %d: an extra datagram of %d bytes", r, n)
	}
}

func testSender(t *testing.T, network string, gso bool) {
	const receivers = 4
	f := newFixture(t, network, receivers)
	f.s.SetGSO(gso)
	// One batch's datagrams, the same for every receiver except its tag: sizes
	// vary so that some runs are trains and some are not.
	sizes := []int{1200, 1200, 1200, 300, 1200, 1400, 1400, 1400, 1400, 900, 100}
	var sent [receivers][][]byte
	var iovs []syscall.Iovec
	var segs []Segment
	var hdrs []Mmsghdr
	var trains int
	batch := func() {
		iovs, segs, hdrs = iovs[:0], segs[:0], hdrs[:0]
		// Every receiver's datagrams, each receiver's run in turn.
		for r := range receivers {
			for _, size := range sizes {
				p := datagram(r, len(sent[r]), size)
				sent[r] = append(sent[r], p)
				iovs = append(iovs, syscall.Iovec{Base: &p[0], Len: uint64(len(p))})
			}
		}
		segs = make([]Segment, len(iovs)) // addresses must stay put
		for r := range receivers {
			run := iovs[r*len(sizes) : (r+1)*len(sizes)]
			for i := 0; i < len(run); {
				j := i + 1
				if f.s.GSO() {
					j = i + Train(run[i:])
				}
				var seg *Segment
				if j-i > 1 {
					seg = &segs[r*len(sizes)+i]
					seg.Set(int(run[i].Len))
					trains++
				}
				hdrs = append(hdrs, Mmsghdr{})
				hdrs[len(hdrs)-1].Set(&f.dests[r], run[i:j], seg)
				i = j
			}
		}
		if n, err := f.s.Send(hdrs); err != nil || n != len(hdrs) {
			t.Fatalf("Send: %d of %d messages: %v", n, len(hdrs), err)
		}
	}
	for range 5 {
		batch()
	}
	for r := range receivers {
		f.expect(t, r, sent[r])
	}
	switch {
	case gso && !f.s.GSO():
		t.Fatal("the kernel refused UDP GSO on loopback")
	case gso && trains == 0:
		t.Fatal("no train was formed")
	case !gso && trains != 0:
		t.Fatalf("%d trains with GSO off", trains)
	}
	// Sending allocates nothing.
	if a := testing.AllocsPerRun(20, func() {
		if _, err := f.s.Send(hdrs); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%v allocations per Send", a)
	}
}

// TestSenderRefusedTrain: a train the kernel refuses (more segments than its
// UDP_MAX_SEGMENTS, 64 or 128: EINVAL, as a route without segmentation answers EIO) turns
// trains off for good and goes datagram by datagram, as do later ones; a message
// to an unreachable address is skipped and the rest still go.
func TestSenderRefusedTrain(t *testing.T) {
	f := newFixture(t, "udp4", 2)
	const n = 200
	var want [][]byte
	iovs := make([]syscall.Iovec, n)
	for k := range n {
		p := datagram(0, k, 100)
		want = append(want, p)
		iovs[k] = syscall.Iovec{Base: &p[0], Len: 100}
	}
	var seg Segment
	seg.Set(100)
	var unreachable Sockaddr
	unreachable.Set(&net.UDPAddr{IP: net.IPv6loopback, Port: 9}) // IPv6 on an IPv4 socket
	var want1 [][]byte
	iovs1 := make([]syscall.Iovec, 3)
	for k := range 3 {
		p := datagram(1, k, 500)
		want1 = append(want1, p)
		iovs1[k] = syscall.Iovec{Base: &p[0], Len: 500}
	}
	hdrs := make([]Mmsghdr, 3)
	hdrs[0].Set(&f.dests[0], iovs, &seg)
	hdrs[1].Set(&unreachable, iovs1[:1], nil)
	var seg1 Segment
	seg1.Set(500)
	hdrs[2].Set(&f.dests[1], iovs1, &seg1)
	if k, err := f.s.Send(hdrs); err != nil || k != len(hdrs) {
		t.Fatalf("Send: %d of %d messages: %v", k, len(hdrs), err)
	}
	if f.s.GSO() {
		t.Fatal("trains still on after the kernel refused one")
	}
	f.expect(t, 0, want)
	f.expect(t, 1, want1)
}
