package rtsp

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
)

// udpReader is a raw RTSP reader over UDP: its RTSP connection and its RTP socket.
type udpReader struct {
	c       *rawClient
	rtpConn *net.UDPConn
	id      string // RTSP session
	ssrc    uint32 // from the SETUP answer
	seq     uint16 // RTP-Info's
	ts      uint32 // RTP-Info's
}

// playUDP sets up and plays the first track of url over UDP with a raw client.
func playUDP(t *testing.T, f *fixture, url string) *udpReader {
	t.Helper()
	rtpConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return playUDPWith(t, f, url, dialRaw(t, f.srv.Addr()), rtpConn)
}

// playUDPWith is playUDP with the reader's RTSP connection and RTP socket given
// (closed when the test ends).
func playUDPWith(t *testing.T, f *fixture, url string, c *rawClient, rtpConn *net.UDPConn) *udpReader {
	t.Helper()
	r := &udpReader{c: c, rtpConn: rtpConn}
	t.Cleanup(func() { _ = r.rtpConn.Close() })
	port := r.rtpConn.LocalAddr().(*net.UDPAddr).Port
	r.c.describe(url)
	// The RTCP port (port+1) is not listened on: RTCP is not what this checks.
	res := r.c.do("SETUP", url+"/trackID=0", [][2]string{{"Transport",
		"RTP/AVP;unicast;client_port=" + strconv.Itoa(port) + "-" + strconv.Itoa(port+1)}}, "")
	if res.status != 200 {
		t.Fatalf("SETUP: %d %s", res.status, res.reason)
	}
	r.id, _, _ = strings.Cut(res.header.get("Session"), ";")
	var th headers.Transport
	if err := th.Unmarshal(base.HeaderValue{res.header.get("Transport")}); err != nil || th.SSRC == nil || th.ServerPorts == nil {
		t.Fatalf("SETUP Transport %q: %v", res.header.get("Transport"), err)
	}
	if rp, _ := f.srv.UDPPorts(); th.ServerPorts[0] != rp {
		t.Fatalf("server_port %d, want the server's RTP port %d", th.ServerPorts[0], rp)
	}
	r.ssrc = *th.SSRC
	res = r.c.do("PLAY", url, [][2]string{{"Session", r.id}}, "")
	if res.status != 200 {
		t.Fatalf("PLAY: %d %s", res.status, res.reason)
	}
	var ri headers.RTPInfo
	if err := ri.Unmarshal(base.HeaderValue{res.header.get("RTP-Info")}); err != nil || len(ri) != 1 ||
		ri[0].SequenceNumber == nil || ri[0].Timestamp == nil {
		t.Fatalf("RTP-Info %q without seq or rtptime: %v", res.header.get("RTP-Info"), err)
	}
	r.seq, r.ts = *ri[0].SequenceNumber, *ri[0].Timestamp
	return r
}

// next reads the next RTP packet, which must come from the server's RTP port.
func (r *udpReader) next(t *testing.T, f *fixture, wait time.Duration) (rtp.Packet, bool) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = r.rtpConn.SetReadDeadline(time.Now().Add(wait))
	n, from, err := r.rtpConn.ReadFromUDP(buf)
	if err != nil {
		return rtp.Packet{}, false
	}
	if rp, _ := f.srv.UDPPorts(); from.Port != rp {
		t.Fatalf("RTP from port %d, want the server's RTP port %d", from.Port, rp)
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil {
		t.Fatalf("RTP: %v", err)
	}
	return p, true
}

// TestUDPReadersDirect: the feeds send UDP readers' RTP themselves (one sendmmsg
// to all of them): each reader gets every packet, whole, in order, from the port
// and with the SSRC its SETUP was answered with, starting where its PLAY's RTP-Info
// said; a reader that leaves gets no more while the other goes on, even past a
// write deadline left on the socket.
func TestUDPReadersDirect(t *testing.T) {
	f := newFixture(t, nil)
	w := newH264Writer(t, f.trainerVideo(t, nil), 1000)
	copy(w.pkt.Payload[5:], bytes.Repeat([]byte{0xab}, 995))
	w.next() // a keyframe in the cache, for DESCRIBE
	url := f.url(testSession, testAdmin)
	readers := []*udpReader{playUDP(t, f, url), playUDP(t, f, url)}
	waitFor(f.ctx, t, "both readers playing", func() bool { return f.sess.Subscribers() == 2 })
	// Drain what the PLAYs brought (the cached keyframe, replayed to the feed).
	for _, r := range readers {
		for {
			if _, ok := r.next(t, f, 200*time.Millisecond); !ok {
				break
			}
		}
	}

	// Packet i is w's packet i+1, a non-IDR slice.
	w.pkt.Payload[0] = 0x41
	write := func(i int) { w.write(uint32(i + 1)) }
	const n = 20
	var last [2]rtp.Packet
	for i := range n {
		write(i)
		for j, r := range readers {
			p, ok := r.next(t, f, 5*time.Second)
			if !ok {
				t.Fatalf("reader %d: packet %d never came", j, i)
			}
			if p.SSRC != r.ssrc || p.PayloadType != 96 || len(p.Payload) != 1000 || packetTag(p) != uint32(i+1) {
				t.Fatalf("reader %d packet %d: ssrc %x pt %d len %d tag %d; want ssrc %x pt 96 len 1000 tag %d",
					j, i, p.SSRC, p.PayloadType, len(p.Payload), packetTag(p), r.ssrc, i+1)
			}
			if i > 0 && (p.SequenceNumber != last[j].SequenceNumber+1 || p.Timestamp-last[j].Timestamp != 3000) {
				t.Fatalf("reader %d packet %d: seq %d ts %d after seq %d ts %d", j, i, p.SequenceNumber, p.Timestamp,
					last[j].SequenceNumber, last[j].Timestamp)
			}
			if d := p.SequenceNumber - r.seq; i == 0 && d > 1 {
				t.Fatalf("reader %d: first packet seq %d, RTP-Info seq %d", j, p.SequenceNumber, r.seq)
			}
			last[j] = p
		}
	}

	// The first reader leaves; the second goes on alone.
	if res := readers[0].c.do("TEARDOWN", url, [][2]string{{"Session", readers[0].id}}, ""); res.status != 200 {
		t.Fatalf("TEARDOWN: %d %s", res.status, res.reason)
	}
	waitFor(f.ctx, t, "one reader left", func() bool { return f.sess.Subscribers() == 1 })
	// gortsplib's own writes on the RTP socket (to a publisher over UDP) leave a
	// write deadline on it, long passed when it writes no more: it must not stop
	// the readers' packets.
	_ = f.srv.udp.rtp.SetWriteDeadline(time.Unix(1, 0))
	for i := n; i < n+5; i++ {
		write(i)
		if p, ok := readers[1].next(t, f, 5*time.Second); !ok || packetTag(p) != uint32(i+1) {
			t.Fatalf("remaining reader: packet %d missing or wrong (%v)", i, ok)
		}
	}
	if p, ok := readers[0].next(t, f, 300*time.Millisecond); ok {
		t.Fatalf("the reader that left still got packet seq %d", p.SequenceNumber)
	}
}
