package peer

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// egressProbe is an EgressSender's owner as a test sees it: each turn's packets.
type egressProbe struct {
	q *sfu.Queue
	s *EgressSender

	mu    sync.Mutex
	turns [][]uint16 // sequence numbers taken per turn (turns that took none left out)
	got   chan struct{}
}

func newEgressProbe(t *testing.T, kind sfu.Kind) *egressProbe {
	t.Helper()
	f := newFixture(t, Config{}, time.Second)
	pr := &egressProbe{got: make(chan struct{}, 64)}
	pr.q = sfu.NewQueue(sfu.QueueOptions{Size: 64, Kind: kind, Notify: func(item sfu.QueueItem, n int) { pr.s.Queued(item, n) }})
	pr.s = f.edge.NewEgressSender(kind, pr.q, pr.turn, nil)
	t.Cleanup(pr.q.Drain)
	return pr
}

func (pr *egressProbe) turn(max int) bool {
	var seqs []uint16
	more := true
	for range max {
		item, ok := pr.q.TryNext()
		if !ok {
			more = false
			break
		}
		seqs = append(seqs, item.Packet.Header.SequenceNumber)
		item.Packet.Release()
	}
	if len(seqs) > 0 {
		pr.mu.Lock()
		pr.turns = append(pr.turns, seqs)
		pr.mu.Unlock()
		pr.got <- struct{}{}
	}
	return more
}

// wait returns the turns once n packets were taken in all.
func (pr *egressProbe) wait(t *testing.T, n int) [][]uint16 {
	t.Helper()
	for {
		pr.mu.Lock()
		total := 0
		for _, s := range pr.turns {
			total += len(s)
		}
		turns := append([][]uint16(nil), pr.turns...)
		pr.mu.Unlock()
		if total >= n {
			return turns
		}
		select {
		case <-pr.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("the egress worker took %d of %d packets (turns %v)", total, n, turns)
		}
	}
}

func (pr *egressProbe) write(seq uint16, marker bool, arrival int64) {
	p := &sfu.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Marker: marker}, Payload: []byte{1, 2, 3}, ArrivalNanos: arrival}
	_ = pr.q.WriteRTP(p)
}

// TestEgressSenderServesOutsideSenders: a sender of another package (the origin's
// relay) is served by the edge's egress workers: nothing before Start, what was
// queued before once started, a video frame's packets gathered into one turn, a
// retransmission at once.
func TestEgressSenderServesOutsideSenders(t *testing.T) {
	pr := newEgressProbe(t, sfu.KindVideo)
	now := sfu.Nanotime()
	pr.write(1, true, now)
	pr.write(2, true, now)
	if n := pr.q.Len(); n != 2 {
		t.Fatalf("%d packets queued before Start, want 2 (nothing taken before Start)", n)
	}
	pr.s.Start()
	if turns := pr.wait(t, 2); len(turns) != 1 || len(turns[0]) != 2 {
		t.Fatalf("turns %v, want the two packets queued before Start in one turn", turns)
	}

	// A frame of four packets: the first three wait for the marker.
	for i := range uint16(3) {
		pr.write(10+i, false, now)
	}
	if n := pr.q.Len(); n != 3 {
		t.Fatalf("%d packets queued while a frame gathers, want 3", n)
	}
	pr.write(13, true, now)
	turns := pr.wait(t, 6)
	if len(turns) != 2 || len(turns[1]) != 4 || turns[1][0] != 10 || turns[1][3] != 13 {
		t.Fatalf("turns %v, want the frame 10..13 in one turn", turns)
	}

	// Packets held longer than holdMax go without their marker.
	pr.write(20, false, now)
	pr.write(21, false, now+int64(holdMax))
	if turns := pr.wait(t, 8); len(turns[2]) != 2 {
		t.Fatalf("turns %v, want 20 and 21 sent once held holdMax", turns)
	}

	// A retransmission does not wait for a frame.
	pr.write(30, false, now) // starts a frame: held
	p := &sfu.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 5}, Payload: []byte{1}}
	p.Retain() // the reference Track.Retransmit hands over
	if !pr.q.Retransmit(p, 0) {
		t.Fatal("retransmission refused by an empty queue")
	}
	if turns := pr.wait(t, 10); len(turns[3]) != 2 || turns[3][1] != 5 {
		t.Fatalf("turns %v, want the held packet and the retransmission at once", turns)
	}
}

// TestEgressSenderBursts: a sender with more than burstMax packets queued is
// served in turns of burstMax, every packet once and in order.
func TestEgressSenderBursts(t *testing.T) {
	pr := newEgressProbe(t, sfu.KindAudio)
	const n = 3*burstMax + 5
	for i := range uint16(n) {
		pr.write(i, false, 0)
	}
	pr.s.Start()
	turns := pr.wait(t, n)
	var all []uint16
	for _, s := range turns {
		if len(s) > burstMax {
			t.Fatalf("a turn of %d packets, want at most %d", len(s), burstMax)
		}
		all = append(all, s...)
	}
	for i, seq := range all {
		if seq != uint16(i) {
			t.Fatalf("packets taken %v, want 0..%d in order", all, n-1)
		}
	}
	if len(all) != n {
		t.Fatalf("%d packets taken, want %d", len(all), n)
	}
}
