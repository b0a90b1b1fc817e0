//go:build linux && (amd64 || arm64)

package rtsp

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// TestUDPReadersTrains writes access units of FU-A fragments (equal sizes, a
// shorter last one) back to back, so that the feed batches them and sends each
// reader's run as UDP GSO trains, and checks that every reader gets every packet,
// whole and in order; the same with trains off (the kernel's refusal), where the
// packets go one by one.
func TestUDPReadersTrains(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) { testUDPTrains(t, gso) })
	}
}

func testUDPTrains(t *testing.T, gso bool) {
	f := newFixture(t, nil)
	video := f.trainerVideo(t, nil)
	newH264Writer(t, video, 1000).write(3) // a keyframe in the cache, for DESCRIBE (timestamp 9000, before the access units below)
	f.srv.udpBatch.SetGSO(gso)
	url := f.url(testSession, testAdmin)
	readers := []*udpReader{playUDP(t, f, url), playUDP(t, f, url), playUDP(t, f, url)}
	waitFor(f.ctx, t, "the readers playing", func() bool { return f.sess.Subscribers() == len(readers) })
	for _, r := range readers {
		_ = r.rtpConn.SetReadBuffer(4 << 20)
		for { // what the PLAYs brought
			if _, ok := r.next(t, f, 200*time.Millisecond); !ok {
				break
			}
		}
	}

	const aus, perAU = 30, 8
	size := func(k int) int { // payload bytes of packet k of an access unit
		if k == perAU-1 {
			return 400
		}
		return 1200
	}
	payload := make([]byte, 1200)
	seq := uint16(100)
	for au := range aus {
		for k := range perAU {
			seq++
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: k == perAU-1,
				SequenceNumber: seq, Timestamp: uint32(12000 + au*3000)}, Payload: payload[:size(k)]}
			p.Payload[0], p.Payload[1] = 0x7c, 0x01 // FU-A, non-IDR slice
			if k == 0 {
				p.Payload[1] |= 0x80
			}
			p.Payload[2], p.Payload[3] = byte(au), byte(k)
			if err := video.WriteRTP(&p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for j, r := range readers {
		var last rtp.Packet
		for i := range aus * perAU {
			p, ok := r.next(t, f, 5*time.Second)
			if !ok {
				t.Fatalf("reader %d: packet %d of %d never came", j, i, aus*perAU)
			}
			au, k := i/perAU, i%perAU
			if p.SSRC != r.ssrc || len(p.Payload) != size(k) || p.Payload[2] != byte(au) || p.Payload[3] != byte(k) ||
				p.Marker != (k == perAU-1) {
				t.Fatalf("reader %d packet %d: ssrc %x len %d tag %d/%d marker %v; want ssrc %x len %d tag %d/%d",
					j, i, p.SSRC, len(p.Payload), p.Payload[2], p.Payload[3], p.Marker, r.ssrc, size(k), au, k)
			}
			if i > 0 && p.SequenceNumber != last.SequenceNumber+1 {
				t.Fatalf("reader %d packet %d: seq %d after %d", j, i, p.SequenceNumber, last.SequenceNumber)
			}
			last = p
		}
		if p, ok := r.next(t, f, 100*time.Millisecond); ok {
			t.Fatalf("reader %d: an extra packet, seq %d", j, p.SequenceNumber)
		}
	}
	// Whether the feed found packets batched depends on scheduling: the count is
	// shown, not required.
	t.Logf("%d trains (sent to each reader)", f.srv.udpBatch.trains.Load())
	if !gso && (f.srv.udpBatch.GSO() || f.srv.udpBatch.trains.Load() != 0) {
		t.Fatalf("trains with GSO off (%d), or turned back on", f.srv.udpBatch.trains.Load())
	}
}
