//go:build linux

package rtsp

import (
	"bufio"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/netns"
)

// TestUDPReaderRefusedWaitsForKeyframe: when the kernel refuses a UDP reader's
// video (here a policy rule on the host prohibits UDP to its RTP port: sendmmsg
// fails with EACCES for its messages alone, as it would for an unreachable
// address), that reader is asked a keyframe for and gets no more video until
// one: after the refusal ends, its first packet is the next keyframe, not the
// P-frames written before it, while a reader the kernel never refused gets every
// packet throughout. (A reader whose receive buffer overflows, or a link that
// drops in its queue, is no such case: UDP tells the sender nothing of those.)
//
// The reader sits in a network namespace (internal/netns) so that its address
// is not the host's own: the host's local addresses are routed before any rule.
func TestUDPReaderRefusedWaitsForKeyframe(t *testing.T) {
	ns := netns.New(t, netns.Options{})
	host := ns.HostIP.String()
	f := newFixture(t, func(c *Config) {
		c.Address, c.UDPRTPAddress, c.UDPRTCPAddress = host+":0", host+":0", host+":0"
	})
	var requests atomic.Int32
	video := f.trainerVideo(t, func() { requests.Add(1) })
	// Each packet is a whole access unit: an IDR slice (a keyframe) or a P slice,
	// tagged with its number.
	n := uint32(0)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}, Payload: make([]byte, 600)}
	write := func(key bool) uint32 {
		t.Helper()
		n++
		pkt.SequenceNumber, pkt.Timestamp = uint16(n), n*3000
		pkt.Payload[0] = 0x41
		if key {
			pkt.Payload[0] = 0x65
		}
		pkt.Payload[1], pkt.Payload[2] = byte(n>>8), byte(n)
		if err := video.WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tag := func(p rtp.Packet) uint32 { return uint32(p.Payload[1])<<8 | uint32(p.Payload[2]) }
	write(true) // the keyframe cache, for DESCRIBE

	url := f.url(testSession, testAdmin)
	// A reader on the host (its RTP socket where its RTSP connection comes from).
	hostRTP, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ns.HostIP.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	healthy := playUDPWith(t, f, url, dialRaw(t, f.srv.Addr()), hostRTP)
	// The other reader's RTSP connection and RTP socket are in the namespace.
	nc, err := ns.DialTCP(f.ctx, f.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	rtpConn, err := ns.ListenUDP("udp4", &net.UDPAddr{IP: ns.NSIP.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	refused := playUDPWith(t, f, url, &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}, rtpConn)
	waitFor(f.ctx, t, "both readers playing", func() bool { return f.sess.Subscribers() == 2 })
	readers := []*udpReader{healthy, refused}
	// next reads r's next packet, which must come.
	next := func(r *udpReader, what string) rtp.Packet {
		t.Helper()
		p, ok := r.next(t, f, 5*time.Second)
		if !ok {
			t.Fatalf("%s never came", what)
		}
		return p
	}
	// Both get what is written (after what the PLAYs brought: the cached keyframe).
	last := write(false)
	for _, r := range readers {
		for tag(next(r, "a packet before the refusal")) != last {
		}
	}

	// From now on the kernel refuses the namespace reader's RTP port.
	port := rtpConn.LocalAddr().(*net.UDPAddr).Port
	rule := []string{"rule", "add", "pref", "1000", "to", ns.NSIP.String(), "ipproto", "udp", "dport", strconv.Itoa(port), "prohibit"}
	runIP(t, rule...)
	ruleOn := true
	unrule := func() {
		if ruleOn {
			rule[1] = "del"
			runIP(t, rule...)
			ruleOn = false
		}
	}
	t.Cleanup(unrule)
	checkRefused(t, ns.NSIP, port)

	// Write until the refusal brought a keyframe request. A keyframe now and then
	// lets the reader be tried again (it waits for one), for a request that the
	// track coalesced with the PLAYs' or that came within the reader's second.
	before := requests.Load()
	for i := 0; requests.Load() == before; i++ {
		if i == 2000 { // 10 s and more: a request comes within about a second
			t.Fatalf("%d packets refused to the reader and no keyframe request", i)
		}
		w := write(i%10 == 9)
		if p := next(healthy, "a packet to the healthy reader"); tag(p) != w {
			t.Fatalf("healthy reader: packet %d, want %d", tag(p), w)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A packet the feed has sent, after the one that brought the request: the
	// reader waits for a keyframe. Then the refusal ends.
	w := write(false)
	if p := next(healthy, "the packet after the request"); tag(p) != w {
		t.Fatalf("healthy reader: packet %d, want %d", tag(p), w)
	}
	if p, ok := refused.next(t, f, 100*time.Millisecond); ok {
		t.Fatalf("the refused reader got packet %d", tag(p))
	}
	unrule()

	// P-frames: the reader waits for a keyframe, so it gets none of them; then a
	// keyframe and what follows it.
	for range 5 {
		w := write(false)
		if p := next(healthy, "a P-frame after the refusal"); tag(p) != w {
			t.Fatalf("healthy reader: packet %d, want %d", tag(p), w)
		}
	}
	key := write(true)
	after := write(false)
	for j, r := range readers {
		for _, want := range []uint32{key, after} {
			if p := next(r, "the keyframe and the packet after it"); tag(p) != want {
				t.Fatalf("reader %d: packet %d (NAL type %d), want %d", j, tag(p), p.Payload[0]&0x1f, want)
			}
		}
	}
	if p, ok := refused.next(t, f, 100*time.Millisecond); ok {
		t.Fatalf("the refused reader got packet %d more", tag(p))
	}
}

// runIP runs ip(8) with args, failing the test on an error.
func runIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// checkRefused makes sure the kernel refuses UDP to addr:port (the rule applies
// to this kernel's output route lookups), so the test tests what it means to.
func checkRefused(t *testing.T, addr netip.Addr, port int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addr, uint16(port))); err == nil {
		t.Fatalf("UDP to %v:%d is not refused by the rule", addr, port)
	}
}
