package peer

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

const sec = int64(time.Second)

// TestLossEstimateRules: the estimate starts optimistic; a report of heavy loss
// drops it to 85 % of what arrived; moderate loss holds it; without loss it grows,
// faster after 3 s, but stays below what the link carried for the hold-off.
func TestLossEstimateRules(t *testing.T) {
	var e lossEstimate
	now := 10 * sec
	if got := e.update(now, 0, 0); !near(got, initialEstimate*(1+growSlow)) {
		t.Fatalf("first loss-free report: %v, want the initial %v grown by %v", got, float64(initialEstimate), growSlow)
	}
	// 2.6 Mbit/s sent, 25 % lost: 1.95 Mbit/s arrived.
	now += sec
	if got, want := e.update(now, 2.6e6*0.75, 0.25), 0.85*2.6e6*0.75; !near(got, want) {
		t.Fatalf("after 25 %% loss: %v, want %v", got, want)
	}
	dropped := e.bps
	// The same episode reported again with the lower rate already sent: it falls
	// only to what arrived then.
	now += sec
	if got := e.update(now, 3e6*0.7, 0.30); !near(got, dropped) {
		t.Fatalf("loss at a higher rate than the estimate: %v, want it held at %v", got, dropped)
	}
	for _, loss := range []float64{0.05, 0.09, 0.02} {
		now += sec / 2
		if got := e.update(now, 1.5e6, loss); got != dropped {
			t.Fatalf("%.0f %% loss: %v, want it held at %v", loss*100, got, dropped)
		}
	}
	// Loss-free: 12 %/s at first, capped by the probe ceiling (what the link
	// carried, 1.95 Mbit/s) until the hold-off (5 s from the drop) ends.
	now += sec
	if got, want := e.update(now, 1.5e6, 0), dropped*(1+growSlow); !near(got, want) {
		t.Fatalf("first loss-free second: %v, want %v", got, want)
	}
	now += sec / 2 // still within the hold-off: 12 % more would pass 1.95 Mbit/s
	if e.update(now, 1.5e6, 0); now >= e.probeUntil || e.bps > 1.95e6+1 {
		t.Fatalf("grew to %v within the hold-off, above what the link carried (1.95e6)", e.bps)
	}
	// After the hold-off, loss-free for over 3 s: 35 %/s.
	now = e.probeUntil + 2*sec // 3 s since the last report: counted as 2 s
	before := e.bps
	if got, want := e.update(now, 1.5e6, 0), before*(1+2*growFast); !near(got, want) {
		t.Fatalf("loss-free after the hold-off: %v, want %v", got, want)
	}
	// The controller's ceiling bounds the growth.
	e.ceiling = 3e6
	for range 10 {
		now += sec
		e.update(now, 1.5e6, 0)
	}
	if e.bps != 3e6 {
		t.Fatalf("grew to %v, want the ceiling 3e6", e.bps)
	}
	// Total loss never collapses it to nothing.
	now += sec
	if got := e.update(now, 0, 1); got != minEstimate {
		t.Fatalf("after total loss: %v, want %v", got, float64(minEstimate))
	}
}

// TestLossEstimateHoldOffBacksOff: each probe that fails soon after the previous
// drop doubles the hold-off (5 s each, no more); a quiet 30 s resets it.
func TestLossEstimateHoldOffBacksOff(t *testing.T) {
	var e lossEstimate
	now := 100 * sec
	e.update(now, 0, 0)
	for i, want := range []time.Duration{5, 5, 5} {
		now = max(now, e.probeUntil) + sec // probing again after the hold-off
		e.bps = 2e6                        // it grew meanwhile
		e.update(now, 0.8e6, 0.2)
		if got := time.Duration(e.probeUntil - now); got != want*time.Second {
			t.Fatalf("drop %d: hold-off %v, want %v", i+1, got, want*time.Second)
		}
		// Reports of the same episode within the hold-off do not extend it.
		e.bps = 2e6
		e.update(now+sec/2, 0.8e6, 0.2)
		if got := time.Duration(e.probeUntil - now); got != want*time.Second {
			t.Fatalf("drop %d reported again: hold-off %v, want %v", i+1, got, want*time.Second)
		}
	}
	now = e.probeUntil + int64(holdOffReset) + 2*int64(holdOffMax)
	e.bps = 2e6
	e.update(now, 0.8e6, 0.2)
	if got := time.Duration(e.probeUntil - now); got != holdOffMin {
		t.Fatalf("after a quiet time: hold-off %v, want %v", got, holdOffMin)
	}
}

// TestRetransmissionBudget: the bucket fills at the estimate minus the media rate
// (at least 5 % of the estimate) and holds 250 ms of it; ordinary packets leave
// 30 % of it to audio and the current keyframe.
func TestRetransmissionBudget(t *testing.T) {
	var b rtxBudget
	b.setRate(1e6, 600e3) // 400 kbit/s = 50 kB/s for retransmissions; 12.5 kB bucket
	now := sec
	sent := 0
	for b.take(now, 1000, false) {
		sent += 1000
	}
	if sent != 8000 { // 12.5 kB less the 3.75 kB reserve, by 1000
		t.Fatalf("ordinary retransmissions from a full bucket: %d bytes, want 8000", sent)
	}
	prio := 0
	for b.take(now, 1000, true) {
		prio += 1000
	}
	if prio != 4000 {
		t.Fatalf("priority retransmissions from the reserve: %d bytes, want 4000", prio)
	}
	// 100 ms later, 5 kB more.
	now += sec / 10
	got := 0
	for b.take(now, 1000, true) {
		got += 1000
	}
	if got != 5000 {
		t.Fatalf("after 100 ms: %d bytes, want 5000", got)
	}
	// Media filling the estimate leaves 5 % of it (6.25 kB/s); the bucket never
	// holds less than a few packets.
	b.setRate(1e6, 1.2e6)
	if b.rate != 0.05*1e6/8 || b.capacity() != rtxMinBurst {
		t.Fatalf("rate %v B/s, capacity %v B; want %v, %v", b.rate, b.capacity(), 0.05*1e6/8, float64(rtxMinBurst))
	}
}

// TestRetransmissionRules: a packet is resent at most three times, not again
// within a round trip; a ring slot taken by a newer sequence number starts over;
// the age limit follows the round trip within 300 ms .. 1 s.
func TestRetransmissionRules(t *testing.T) {
	ring := make(rtxRing, rtxRingSize(0))
	rtt := 80 * time.Millisecond
	now := sec
	e := ring.entry(7)
	resent := 0
	for i := range 20 {
		now += int64(30 * time.Millisecond)
		if e.due(now, rtt) {
			if e.sent != 0 && now-e.sent < int64(rtt) {
				t.Fatalf("NACK %d: resent %v after the previous one, within a round trip", i, time.Duration(now-e.sent))
			}
			e.count++
			e.sent = now
			resent++
		}
	}
	if resent != rtxMaxTries {
		t.Fatalf("resent %d times, want %d", resent, rtxMaxTries)
	}
	if e := ring.entry(7 + uint16(len(ring))); e.count != 0 || e.sent != 0 || e.nacked {
		t.Fatalf("slot reused by another sequence number kept %+v", *e)
	}
	for _, tc := range []struct{ rtt, want time.Duration }{
		{0, time.Second}, {20 * time.Millisecond, 300 * time.Millisecond},
		{200 * time.Millisecond, 500 * time.Millisecond}, {600 * time.Millisecond, time.Second},
	} {
		if got := rtxMaxAgeFor(tc.rtt); got != tc.want {
			t.Errorf("max age at RTT %v: %v, want %v", tc.rtt, got, tc.want)
		}
	}
}

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }

// TestNACKRange: a NACK naming three of every four packets of the last 100 sent
// (a link carrying a quarter of a 2.7 Mbit/s layer) reads as 75 % loss and a
// quarter of the rate carried, whatever the packets before it; packets sent
// longer ago than the age limit (NACKed again and again by receivers) and ranges
// too short to tell are left out.
func TestNACKRange(t *testing.T) {
	const n, gap, size = 400, 3_555_556, 1200.0 // 1200 B every 3.56 ms: 2.7 Mbit/s
	base := uint16(65500)                       // the range wraps
	sentAt := func(seq uint16) (int64, bool) {
		i := int(seq - base)
		if i < 0 || i >= n {
			return 0, false
		}
		return int64(i) * gap, true
	}
	now := int64(n) * gap
	var seqs []uint16
	for i := n - 100; i < n; i++ {
		if i%4 != 0 {
			seqs = append(seqs, base+uint16(i))
		}
	}
	loss, carried, ok := nackRangeOf(sentAt, size, now, time.Second, rtcp.NackPairsFromSequenceNumbers(seqs))
	if !ok || math.Abs(loss-0.75) > 0.02 || math.Abs(carried-0.25*2.7e6) > 0.05*2.7e6 {
		t.Fatalf("range: loss %.3f, carried %.0f bit/s, ok %v; want 0.75 and about 675000", loss, carried, ok)
	}
	// The same packets NACKed again 2 s later: too old to count.
	if _, _, ok := nackRangeOf(sentAt, size, now+2*sec, time.Second, rtcp.NackPairsFromSequenceNumbers(seqs)); ok {
		t.Fatal("packets older than the age limit counted")
	}
	// A few packets: no rate.
	if _, _, ok := nackRangeOf(sentAt, size, now, time.Second, rtcp.NackPairsFromSequenceNumbers(seqs[:5])); ok {
		t.Fatal("a range of 5 packets counted")
	}
}
