package rtsp

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"
)

// rawRTCP is an RTCP "packet" that marshals to the bytes it is: what a broken
// client might send, sent through a real client's RTCP path.
type rawRTCP []byte

func (p rawRTCP) DestinationSSRC() []uint32 { return nil }
func (p rawRTCP) Marshal() ([]byte, error)  { return p, nil }
func (p rawRTCP) Unmarshal(b []byte) error  { return nil }
func (p rawRTCP) MarshalSize() int          { return len(p) }

// receiverReport is a receiver report with one block, about ssrc.
func receiverReport(ssrc, lost, ext uint32) *rtcp.ReceiverReport {
	return &rtcp.ReceiverReport{SSRC: 0x5eed, Reports: []rtcp.ReceptionReport{{SSRC: ssrc, TotalLost: lost, LastSequenceNumber: ext}}}
}

// TestReaderReportedLossAsksKeyframe: a gortsplib reader (over UDP, and over
// TCP) plays the trainer's video; the receiver reports it sends on its RTCP
// channel for the video's SSRC with more packets lost are counted, by transport,
// in lectern_rtsp_reader_lost_packets_total and ask the publisher for a keyframe;
// a report about a foreign SSRC and a malformed RTCP packet change nothing, and
// the reader's later reports still count.
func TestReaderReportedLossAsksKeyframe(t *testing.T) {
	for _, tr := range []gortsplib.Transport{gortsplib.TransportUDP, gortsplib.TransportTCP} {
		t.Run(tr.String(), func(t *testing.T) { testReaderReportedLoss(t, tr) })
	}
}

func testReaderReportedLoss(t *testing.T, transport gortsplib.Transport) {
	f := newFixture(t, nil)
	var requests atomic.Int32
	f.trainerVideo(t, func() { requests.Add(1) })
	// No RTP is written: the client then sends no receiver report of its own
	// (gortsplib's reports start with its first packet), only the test's.
	// The reader gets no RTP: its timeouts must outlast the test.
	c := &gortsplib.Client{Transport: &transport, ReadTimeout: time.Minute, InitialUDPReadTimeout: time.Minute}
	desc := startReader(t, f, c)
	atPlay := requests.Load() // OnPlay asks for one before it answers
	f.srv.mu.Lock()
	ps := f.srv.streams[streamKey{testSession, ""}]
	f.srv.mu.Unlock()
	if ps == nil {
		t.Fatal("no stream for the reader")
	}
	ssrc := ps.feeds[0].directSSRC.Load()
	if ssrc == 0 {
		t.Fatal("the reader's SETUP gave no SSRC")
	}
	lost := func() uint64 {
		udp, tcp := f.srv.ReaderLostPackets()
		if transport == gortsplib.TransportTCP {
			if udp != 0 {
				t.Fatalf("a TCP reader's loss counted as UDP: %d", udp)
			}
			return tcp
		}
		if tcp != 0 {
			t.Fatalf("a UDP reader's loss counted as TCP: %d", tcp)
		}
		return udp
	}
	send := func(p rtcp.Packet) {
		t.Helper()
		if err := c.WritePacketRTCP(desc.Medias[0], p); err != nil {
			t.Fatal(err)
		}
	}

	// Reports with 10 more packets lost each (and 1000 more expected), until one
	// gets through the keyframe requests' coalescing (500 ms after PLAY's). Each
	// is counted before the next is sent.
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	var k uint32
	for requests.Load() <= atPlay {
		if ctx.Err() != nil {
			t.Fatalf("no keyframe request after %d reports of loss (%d requests, %d at PLAY)", k, requests.Load(), atPlay)
		}
		k++
		send(receiverReport(ssrc, 10*k, 1000*k))
		waitFor(f.ctx, t, "the loss counted", func() bool { return lost() >= uint64(10*k) })
		if n := lost(); n != uint64(10*k) {
			t.Fatalf("after %d reports of 10 more lost: counted %d, want %d", k, n, 10*k)
		}
		if requests.Load() <= atPlay {
			time.Sleep(100 * time.Millisecond) // not a measure: the coalescing's window passes
		}
	}

	// A foreign SSRC's report and malformed RTCP (a receiver report longer than
	// its packet; a truncated header) count nothing; the reader's next report,
	// read after them on the same channel, counts its own increase only.
	send(receiverReport(ssrc+1, 10*k+500, 1000*k+1000))
	send(rawRTCP{0x81, 201, 0x00, 0x10, 0, 0, 0x5e, 0xed, 0, 0, 0, 1})
	send(rawRTCP{0x81, 201})
	send(receiverReport(ssrc, 10*k+1, 1000*k+10))
	waitFor(f.ctx, t, "the last report counted", func() bool { return lost() > uint64(10*k) })
	if n := lost(); n != uint64(10*k+1) {
		t.Fatalf("after a foreign SSRC's report, malformed RTCP and 1 more lost: counted %d, want %d", n, 10*k+1)
	}

	// The metric, by transport.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.srv.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "lectern_rtsp_reader_lost_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"udp": float64(10*k + 1), "tcp": 0}
	if transport == gortsplib.TransportTCP {
		want = map[string]float64{"udp": 0, "tcp": float64(10*k + 1)}
	}
	if got["udp"] != want["udp"] || got["tcp"] != want["tcp"] || len(got) != 2 {
		t.Fatalf("lectern_rtsp_reader_lost_packets_total %v, want %v", got, want)
	}
}

// TestReaderLossReports: what a report adds to the count, from its cumulative
// loss (RFC 3550's signed 24 bits, as gortsplib passes them) and its extended
// highest sequence number.
func TestReaderLossReports(t *testing.T) {
	type rep struct {
		lost uint32 // the field's 24 bits
		ext  uint32
		want uint64
	}
	for _, tc := range []struct {
		name string
		reps []rep
	}{
		{"first report counts since the start", []rep{{5, 100, 5}, {5, 200, 0}, {12, 300, 7}}},
		{"no more than expected meanwhile", []rep{{0, 100, 0}, {50, 110, 10}, {60, 200, 10}}},
		{"negative cumulative loss (duplicates)", []rep{{0xffffff, 100, 0}, {2, 200, 3}}},
		{"loss going down is a new baseline", []rep{{40, 100, 40}, {3, 200, 0}, {8, 300, 5}}},
		{"a late report is ignored", []rep{{10, 1000, 10}, {30, 2000, 20}, {20, 1500, 0}, {31, 2100, 1}}},
		{"a client that started over", []rep{{10, 100000, 10}, {4, 50, 0}, {9, 80, 5}}},
		{"sequence cycles", []rep{{0, 0xfff0, 0}, {20, 0x1_0010, 20}}},
		{"a report's loss is bounded", []rep{{0x7fffff, 0xffffffff, maxReportedLoss}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st lossState
			for i, r := range tc.reps {
				if got := st.update(cumulativeLost(r.lost), r.ext); got != r.want {
					t.Fatalf("report %d (lost %#x, ext %d): counted %d, want %d", i, r.lost, r.ext, got, r.want)
				}
			}
		})
	}
}

// TestReaderRealLossReported: a gortsplib reader over UDP with a tiny receive
// buffer really loses packets of a fast stream; its own receiver report (every
// 5 s) tells the server, which counts the loss it reported: some, and no more
// than the reader saw lost.
func TestReaderRealLossReported(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the reader's first receiver report (5 s)")
	}
	f := newFixture(t, nil)
	w := newH264Writer(t, f.trainerVideo(t, nil), 1100)
	udp := gortsplib.TransportUDP
	var seenLost atomic.Uint64
	startReader(t, f, &gortsplib.Client{Transport: &udp, ReadTimeout: time.Minute, InitialUDPReadTimeout: time.Minute,
		UDPReadBufferSize: 4096, OnPacketsLost: func(n uint64) { seenLost.Add(n) }})

	// Every packet a keyframe (no reader waits for one), in bursts far larger
	// than the reader's buffer, until the server learns of a loss.
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	counted := func() uint64 { n, _ := f.srv.ReaderLostPackets(); return n }
	for counted() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no loss reported (the reader saw %d lost)", seenLost.Load())
		}
		if w.next()%50 == 49 {
			time.Sleep(20 * time.Millisecond) // one burst sent at a time; not a measure
		}
	}
	n, seen := counted(), seenLost.Load()
	if n > seen {
		t.Fatalf("counted %d lost, more than the reader saw lost (%d)", n, seen)
	}
	if _, tcp := f.srv.ReaderLostPackets(); tcp != 0 {
		t.Fatalf("a UDP reader's loss counted as TCP: %d", tcp)
	}
	t.Logf("the reader reported %d lost (it saw %d lost by then)", n, seen)
}
