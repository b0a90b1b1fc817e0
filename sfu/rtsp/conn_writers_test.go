package rtsp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
)

// TestStalledTCPReaderStreamIntact: a TCP reader that stops reading fills its
// socket, so the shared writer's non-blocking send comes back short and the rest
// goes to the connection's own blocking sender; when the reader reads again it gets
// every packet once, in order, with no interleaved frame cut, and later packets
// reach it through the shared writer again.
func TestStalledTCPReaderStreamIntact(t *testing.T) {
	f := newFixture(t, nil)
	w := newH264Writer(t, f.trainerVideo(t, nil), 1100) // every packet a point a reader may start at
	write := func(n int) {
		t.Helper()
		for range n {
			w.next()
		}
	}
	write(1) // the keyframe cache, for DESCRIBE

	url := f.url(testSession, testAdmin)
	// A small receive buffer set before connecting (after, the window was already
	// offered), so the server's socket fills soon.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.DialContext(f.ctx, "tcp", f.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.play(url)
	var sc *lecternConn
	f.srv.mu.Lock()
	for _, st := range f.srv.conns {
		sc = st.nc
	}
	f.srv.mu.Unlock()
	if sc == nil || sc.raw == nil {
		t.Fatal("the reader's connection is not sent by the shared writers")
	}
	// And a small send buffer on the server's side: over loopback the kernel would
	// otherwise size it to megabytes (loopback's MSS is 64 KB).
	if err := sc.Conn.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	blocking := func() bool {
		sc.wmu.Lock()
		defer sc.wmu.Unlock()
		return sc.blocking
	}

	// Write while the reader reads nothing, until its connection waits on the socket.
	const batch = 20
	for !blocking() {
		if f.ctx.Err() != nil || w.n > 800 { // well within the queues: nothing may drop
			t.Fatalf("after %d packets the reader's connection never waited for its socket", w.n)
		}
		write(batch)
		time.Sleep(time.Millisecond) // let the feed and the writers run
	}
	stalledAt := w.n
	write(batch)

	// Read it all: every packet once, in order, frames whole.
	want := w.n
	seen := uint32(0)
	first := true
	readUntil := func(last uint32) {
		t.Helper()
		for first || seen < last {
			p := readRTP(t, c, seen)
			if len(p.Payload) != len(w.pkt.Payload) {
				t.Fatalf("RTP payload of %d bytes, want %d", len(p.Payload), len(w.pkt.Payload))
			}
			i := packetTag(p)
			switch {
			case first: // the cached keyframe or the first packet written after PLAY
				first = false
			case i != seen+1:
				t.Fatalf("packet %d after packet %d", i, seen)
			}
			seen = i
		}
	}
	readUntil(want - 1)
	if stalledAt < batch || seen != want-1 {
		t.Fatalf("read up to packet %d, want %d (stalled after %d)", seen, want-1, stalledAt)
	}

	// Caught up: the connection is the shared writers' again.
	waitFor(f.ctx, t, "the blocking sender to finish", func() bool { return !blocking() })
	write(batch)
	readUntil(w.n - 1)
	if d := f.reg.Stats().QueueDrops.Load(); d != 0 {
		t.Fatalf("%d packets dropped", d)
	}
}

// readRTP reads interleaved frames until an RTP packet on channel 0 (skipping
// RTCP on channel 1); after names the packet read before, for the failures.
func readRTP(t *testing.T, c *rawClient, after uint32) rtp.Packet {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			t.Fatalf("reading frame header after packet %d: %v", after, err)
		}
		if hdr[0] != '$' {
			t.Fatalf("after packet %d: not an interleaved frame: % x", after, hdr)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[2:4]))
		if _, err := io.ReadFull(c.br, body); err != nil {
			t.Fatalf("reading frame after packet %d: %v", after, err)
		}
		if hdr[1] == 1 { // RTCP: a sender report
			continue
		}
		if hdr[1] != 0 {
			t.Fatalf("frame on channel %d", hdr[1])
		}
		var p rtp.Packet
		if err := p.Unmarshal(body); err != nil {
			t.Fatalf("RTP packet after %d: %v", after, err)
		}
		return p
	}
}

// TestTCPReaderOutlivesWriteTimeout: a TCP reader that keeps up plays on well
// past WriteTimeout after its PLAY (the deadline of the responses before it must
// not end the shared writers' sends, as it ended GStreamer readers after 10 s).
func TestTCPReaderOutlivesWriteTimeout(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	f := newFixture(t, func(c *Config) { c.WriteTimeout = writeTimeout })
	w := newH264Writer(t, f.trainerVideo(t, nil), 500)
	w.write(0) // the keyframe cache, for DESCRIBE

	url := f.url(testSession, testAdmin)
	c := dialRaw(t, f.srv.Addr())
	c.play(url)
	played := time.Now()
	for i := uint32(1); time.Since(played) < 5*writeTimeout; i++ {
		time.Sleep(writeTimeout / 10)
		w.write(i)
		for { // the cached keyframe may come first
			if p := readRTP(t, c, i-1); packetTag(p) == i {
				break
			}
		}
	}
}

// TestTCPReaderRTPInfo: a TCP reader's PLAY answer says where each stream starts
// (RTP-Info seq and rtptime), which the packets that follow continue, so clients
// line audio and video up from the first packet.
func TestTCPReaderRTPInfo(t *testing.T) {
	f := newFixture(t, nil)
	w := newH264Writer(t, f.trainerVideo(t, nil), 500)
	w.write(7)
	url := f.url(testSession, testAdmin)
	c := dialRaw(t, f.srv.Addr())
	c.describe(url)
	id := c.setup(url+"/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1", "")
	waitFor(f.ctx, t, "the feed to send the cached keyframe", func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		for _, ps := range f.srv.streams {
			return ps.feeds[0].sr.Stats() != nil
		}
		return false
	})
	res := c.do("PLAY", url, [][2]string{{"Session", id}}, "")
	if res.status != 200 {
		t.Fatalf("PLAY: %d %s", res.status, res.reason)
	}
	var ri headers.RTPInfo
	if err := ri.Unmarshal(base.HeaderValue{res.header.get("RTP-Info")}); err != nil || len(ri) != 1 {
		t.Fatalf("RTP-Info %q: %v", res.header.get("RTP-Info"), err)
	}
	if ri[0].SequenceNumber == nil || ri[0].Timestamp == nil {
		t.Fatalf("RTP-Info %q has no seq or rtptime", res.header.get("RTP-Info"))
	}
	w.write(8)
	p := readRTP(t, c, 0)
	if d := p.SequenceNumber - *ri[0].SequenceNumber; d > 1 {
		t.Fatalf("first packet seq %d, RTP-Info seq %d", p.SequenceNumber, *ri[0].SequenceNumber)
	}
}

// TestBlockingSendKeepsBuffers: the blocking sender, given the buffer a worker
// could send only part of, sends the rest, then what gathered meanwhile, and
// keeps both buffers whole for the next batches: a reader catching up after a
// stall reallocates nothing (a slice past the part sent, kept instead, lost that
// much capacity each time, and the pending buffer was soon reallocated). A buffer
// larger than maxKeptBuffer is kept while the batches fill a quarter of it (a
// backlog lasts), and let go once they do not (it has passed).
func TestBlockingSendKeepsBuffers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	s := &Server{cfg: Config{WriteTimeout: 10 * time.Second}, log: testLogger()}
	c := newConnState(s, server).nc

	fill := func(b []byte, from int) {
		for i := range b {
			b[i] = byte(from + i)
		}
	}
	for _, tc := range []struct {
		name          string
		held, heldCap int // the held buffer's bytes and capacity,
		sent, more    int // of which sent were sent; then pending
		keptHeld      bool
	}{
		{"after a partial send", 40 << 10, 40 << 10, 9000, 20 << 10, true},
		{"during a backlog", 2 * maxKeptBuffer, 2 * maxKeptBuffer, 9000, 20 << 10, true},
		{"after a backlog", 100 << 10, 4 * maxKeptBuffer, 100, 5000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := make([]byte, tc.held, tc.heldCap)
			fill(held, 0)
			pending := make([]byte, tc.more, 32<<10)
			fill(pending, tc.held)
			want := append(append([]byte(nil), held[tc.sent:]...), pending...)
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(want))
				_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, _ := io.ReadFull(client, b)
				got <- b[:n]
			}()
			c.wmu.Lock()
			c.pending, c.spare, c.blocking = pending, nil, true
			c.wmu.Unlock()
			c.sendBlocking(held, tc.sent)
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("the reader got %d bytes, not the %d of the held buffer's rest and the pending bytes", len(b), len(want))
			}
			c.wmu.Lock()
			defer c.wmu.Unlock()
			if c.blocking || c.werr != nil || len(c.pending) != 0 {
				t.Fatalf("after the blocking send: blocking %v, error %v, %d bytes pending", c.blocking, c.werr, len(c.pending))
			}
			// Whole buffers: the same arrays from their first byte, with their capacity.
			same := func(b, of []byte) bool {
				return b != nil && cap(b) == cap(of) && unsafe.SliceData(b[:1]) == unsafe.SliceData(of)
			}
			keptPending := same(c.pending, pending) || same(c.spare, pending)
			keptHeld := same(c.pending, held) || same(c.spare, held)
			if !keptPending || keptHeld != tc.keptHeld {
				t.Fatalf("kept the pending buffer: %v (want true), the held one: %v (want %v); pending cap %d, spare cap %d",
					keptPending, keptHeld, tc.keptHeld, cap(c.pending), cap(c.spare))
			}
		})
	}
}
