//go:build linux && (amd64 || arm64)

package peer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestBatchConnDelivers sends, within sender rounds, datagram trains of equal and
// unequal sizes to several receivers, interleaved, plus writes outside rounds,
// with and without GSO, and checks that each receiver gets exactly its datagrams,
// whole and in order.
func TestBatchConnDelivers(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", "udp"} {
		for _, gso := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/gso=%v", network, gso), func(t *testing.T) {
				testBatchConn(t, network, gso)
			})
		}
	}
}

func testBatchConn(t *testing.T, network string, gso bool) {
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
	c, err := newBatchConn(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.sender.SetGSO(gso)

	const receivers = 5
	var conns []*net.UDPConn
	var dests []*net.UDPAddr
	for range receivers {
		rl := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
		if network == "udp6" {
			rl = &net.UDPAddr{IP: net.IPv6loopback}
		}
		r, err := net.ListenUDP(network, rl)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_ = r.SetReadBuffer(1 << 20)
		conns = append(conns, r)
		dests = append(dests, r.LocalAddr().(*net.UDPAddr))
	}
	// Datagram k to receiver r: [r, k (2 bytes), filler]; sizes vary so that some
	// runs are GSO trains (equal sizes, a shorter last one) and some are not.
	size := func(k int) int {
		switch {
		case k%7 == 6:
			return 300 // a shorter datagram ends a train
		case k%11 == 10:
			return 1400 // a longer one cannot join the train before it
		}
		return 1200
	}
	datagram := func(r, k int) []byte {
		p := make([]byte, size(k))
		p[0] = byte(r)
		binary.BigEndian.PutUint16(p[1:], uint16(k))
		for i := 3; i < len(p); i++ {
			p[i] = byte(r + k + i)
		}
		return p
	}
	const perReceiver = 120
	next := make([]int, receivers)
	for round := 0; round < 6; round++ {
		if round%3 != 2 {
			c.begin()
		}
		// Bursts of a few datagrams per receiver in turn, as egress writes them.
		for turn := 0; turn < 4; turn++ {
			for r := range receivers {
				for range 5 {
					if next[r] == perReceiver {
						break
					}
					if _, err := c.WriteTo(datagram(r, next[r]), dests[r]); err != nil {
						t.Fatal(err)
					}
					next[r]++
				}
			}
		}
		if round%3 != 2 {
			c.end()
		}
	}
	for r, conn := range conns {
		buf := make([]byte, 2048)
		for k := range next[r] {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("receiver %d, datagram %d of %d: %v", r, k, next[r], err)
			}
			if want := datagram(r, k); !bytes.Equal(buf[:n], want) {
				t.Fatalf("receiver %d, datagram %d: got %d bytes (receiver %d, number %d), want %d bytes",
					r, k, n, buf[0], binary.BigEndian.Uint16(buf[1:]), len(want))
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := conn.ReadFromUDP(buf); err == nil {
			t.Fatalf("receiver %d: an extra datagram of %d bytes", r, n)
		}
	}
	switch {
	case gso && !c.sender.GSO():
		t.Log("the kernel refused UDP GSO; the batch was sent datagram by datagram")
	case gso && c.trains == 0:
		t.Fatal("no GSO train was formed")
	case !gso && c.trains != 0:
		t.Fatalf("%d GSO trains with GSO off", c.trains)
	}
}
