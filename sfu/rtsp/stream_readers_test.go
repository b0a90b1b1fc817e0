package rtsp

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
)

// TestStreamReaderAfterIdle: a reader whose SETUP URL Lectern cannot map to a
// media (here a query after the control) is served by gortsplib's own stream,
// which the feeds write only while it has readers. A second such reader, after
// packets went by with none, is still told in RTP-Info where its stream starts
// (not where it stood when the first left), and gets the packets.
func TestStreamReaderAfterIdle(t *testing.T) {
	f := newFixture(t, nil)
	w := newH264Writer(t, f.trainerVideo(t, nil), 500)
	w.next()
	url := f.url(testSession, testAdmin)
	play := func() (*rawClient, string, uint16) {
		t.Helper()
		c := dialRaw(t, f.srv.Addr())
		c.describe(url)
		// The connection proved the token with DESCRIBE: the SETUP URL needs none.
		id := c.setup(f.url(testSession, "")+"/trackID=0?x=1", "RTP/AVP/TCP;unicast;interleaved=0-1", "")
		res := c.do("PLAY", url, [][2]string{{"Session", id}}, "")
		if res.status != 200 {
			t.Fatalf("PLAY: %d %s", res.status, res.reason)
		}
		var ri headers.RTPInfo
		if err := ri.Unmarshal(base.HeaderValue{res.header.get("RTP-Info")}); err != nil || len(ri) != 1 || ri[0].SequenceNumber == nil {
			t.Fatalf("RTP-Info %q: %v", res.header.get("RTP-Info"), err)
		}
		return c, id, *ri[0].SequenceNumber
	}
	streamReaders := func() int32 {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		for _, ps := range f.srv.streams {
			return ps.streamReaders.Load()
		}
		return -1
	}

	c1, id1, _ := play()
	if n := streamReaders(); n != 1 {
		t.Fatalf("%d readers on gortsplib's stream, want 1 (the SETUP URL is not one Lectern maps)", n)
	}
	w.next()
	readRTP(t, c1, 0)
	// A second reader keeps the stream (and its feeds) alive while the first
	// leaves and packets go by that gortsplib's stream does not see.
	keep := dialRaw(t, f.srv.Addr())
	keep.play(url)
	if res := c1.do("TEARDOWN", url, [][2]string{{"Session", id1}}, ""); res.status != 200 {
		t.Fatalf("TEARDOWN: %d %s", res.status, res.reason)
	}
	waitFor(f.ctx, t, "the first reader gone", func() bool { return streamReaders() == 0 })
	var last rtp.Packet
	for range 10 {
		w.next()
		last = readRTP(t, keep, 0)
	}

	c2, _, seq := play()
	if d := seq - last.SequenceNumber; d != 1 {
		t.Fatalf("RTP-Info seq %d after the last packet sent %d: stale", seq, last.SequenceNumber)
	}
	w.next()
	if p := readRTP(t, c2, 0); p.SequenceNumber != seq {
		t.Fatalf("first packet seq %d, RTP-Info said %d", p.SequenceNumber, seq)
	}
}
