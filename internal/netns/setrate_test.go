package netns

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSetRateWithQueuedTrains: lowering the rate while the link's queue holds UDP
// GSO trains (the WebRTC edge sends its packets to a subscriber as such trains)
// longer than the new, smaller bucket leaves a link that still carries packets. A
// tbf keeps its queue across `tc qdisc replace`, and a queued packet longer than
// its bucket never gets the tokens to leave: every packet behind it, ARP replies
// included, waited for ever (seen as a classroom that got nothing after its
// link's rate dropped from 3 Mbit/s to 600 kbit/s).
func TestSetRateWithQueuedTrains(t *testing.T) {
	n := New(t, Options{DownBps: 3_000_000}) // bucket 7500 B
	recv, err := n.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.NSIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	dst := recv.LocalAddr().(*net.UDPAddr)
	send, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.HostIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	raw, err := send.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 1200)
	}); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
	}
	// 6000-byte trains (five datagrams) at about 12 Mbit/s: the queue stays full of
	// them.
	train := make([]byte, 6000)
	for start := time.Now(); time.Since(start) < time.Second; time.Sleep(4 * time.Millisecond) {
		_, _ = send.WriteToUDP(train, dst)
	}
	if err := n.SetRate(600_000); err != nil { // bucket 4000 B
		t.Fatal(err)
	}
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 0)
	}); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT off: %v %v", err, serr)
	}
	// Drain what arrived; then small datagrams must get through.
	buf := make([]byte, 65536)
	marker := []byte("after the rate change")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := send.WriteToUDP(marker, dst); err != nil {
			t.Fatal(err)
		}
		_ = recv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			k, err := recv.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:k]) == string(marker) {
				return
			}
		}
	}
	t.Fatal("no datagram crossed the link in 10 s after SetRate lowered its rate under queued GSO trains: the tbf's queue is stuck")
}
