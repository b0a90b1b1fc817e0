package peer

import (
	"time"
)

// The estimate of what a subscriber's link carries is loss-based: it comes from the
// subscriber's RTCP receiver reports (fraction lost, highest sequence number, LSR and
// DLSR for the round-trip time) and, as an early signal, from its NACKs. Every
// receiver sends those (browsers, pion, decoders' gateways), and they cost nothing per
// packet: a send-side estimate from TWCC feedback would need a header extension on
// every packet and pion's pacer goroutine per connection, which at a hundred
// classrooms is more than the whole forwarding path costs.

// Rules of thumb of the estimate.
const (
	// initialEstimate is optimistic (the controller clamps it to what the best layers
	// need): a weak link shows loss in its first receiver report and drops at once.
	initialEstimate = 10e6
	// minEstimate keeps the estimate from collapsing to nothing on a link that lost
	// everything for a moment: it grows back multiplicatively.
	minEstimate = 30e3
	// Above lossHigh the estimate drops to lossBackoff times the rate that arrived;
	// between lossLow and lossHigh it holds; below lossLow it grows.
	lossHigh    = 0.10
	lossLow     = 0.02
	lossBackoff = 0.85
	// growSlow is the growth per second right after loss; growFast after
	// growFastAfter without any, growFaster after growFasterAfter: a link that
	// has carried everything for that long is probed quickly (a failed probe is
	// bounded by the hold-off, not by slow growth), so a classroom whose link
	// recovers gets the best layer back within seconds.
	growSlow        = 0.12
	growFast        = 0.35
	growFastAfter   = 3 * time.Second
	growFaster      = 0.6
	growFasterAfter = 6 * time.Second
	// After a loss-driven drop the estimate may not exceed what the link carried
	// (the probe ceiling) for a hold-off, so a link just below a layer's rate does
	// not flap between two layers every second or two. It does not grow with
	// failed probes (holdOffMax = holdOffMin): a link that recovered must be
	// found again within one hold-off plus the climb (issue 10: back on the top
	// layer within 12 s of a lift), and a failed probe is cheap: NACKs name the
	// overflow within a round trip of the queue, and the estimate does not grow on
	// while a step up is judged (stepConfirm), so a probe never runs on to the top
	// layer. holdOffReset without a drop forgets the last one.
	holdOffMin   = 5 * time.Second
	holdOffMax   = 5 * time.Second
	holdOffReset = 30 * time.Second
)

// lossEstimate is a bandwidth estimate driven by loss reports. Not safe for
// concurrent use (the adapter's lock guards it).
type lossEstimate struct {
	bps float64 // current estimate, bits/s; 0 before the first update
	// ceiling, set by the controller, is as far as growing makes sense: a little
	// above what the best layers need. 0 for none.
	ceiling float64

	last          int64 // time of the previous update (sfu.Nanotime)
	lossFreeSince int64 // when loss went below lossLow; 0 while there is loss

	probeCeil  float64 // the rate the link carried at the last loss-driven drop
	probeUntil int64   // growth stays below probeCeil until then
	holdOff    time.Duration
	lastDrop   int64
}

// update applies one report interval ending at now: carried is the rate the
// subscriber received (media and retransmissions), loss the fraction it lost. It
// returns the new estimate.
func (e *lossEstimate) update(now int64, carried, loss float64) float64 {
	if e.bps == 0 {
		e.bps = initialEstimate
	}
	dt := 1.0
	if e.last != 0 {
		dt = min(max(float64(now-e.last)/float64(time.Second), 0), 2)
	}
	e.last = now
	switch {
	case loss > lossHigh:
		e.lossFreeSince = 0
		target := max(lossBackoff*carried, minEstimate)
		if target >= e.bps {
			break
		}
		if now >= e.probeUntil {
			// A new congestion episode (not the same one reported again while the
			// lower layer takes over): the link refused a probe.
			if e.lastDrop != 0 && now-e.lastDrop < int64(holdOffReset)+int64(e.holdOff) {
				e.holdOff = min(2*e.holdOff, holdOffMax)
			} else {
				e.holdOff = holdOffMin
			}
			e.probeUntil = now + int64(e.holdOff)
		}
		e.lastDrop = now
		e.bps = target
		e.probeCeil = max(carried, target)
	case loss >= lossLow:
		e.lossFreeSince = 0 // hold
	default:
		if e.lossFreeSince == 0 {
			e.lossFreeSince = now
		}
		rate := growSlow
		switch quiet := now - e.lossFreeSince; {
		case quiet >= int64(growFasterAfter):
			rate = growFaster
		case quiet >= int64(growFastAfter):
			rate = growFast
		}
		next := e.bps * (1 + rate*dt)
		if now < e.probeUntil {
			next = min(next, max(e.probeCeil, e.bps))
		}
		e.bps = next
	}
	if e.ceiling > 0 && e.bps > e.ceiling {
		e.bps = e.ceiling
	}
	return e.bps
}

// rtxEntry remembers the retransmissions of one output sequence number.
type rtxEntry struct {
	sent   int64 // when it was last resent (sfu.Nanotime)
	seq    uint16
	count  uint8
	nacked bool // NACKed before (counted once for the estimate's early signal)
}

// rtxRing remembers recent retransmissions of one downtrack, keyed by output
// sequence number modulo its size: a packet is resent at most rtxMaxTries times and
// not again within one round trip. Used by the downtrack's handleRTCP only;
// allocated on the first NACK, so a subscriber that loses nothing pays nothing.
type rtxRing []rtxEntry

// rtxMaxTries is how often one packet is resent at most: a packet lost three times
// on the way is a link that needs a lower layer, not more retransmissions.
const rtxMaxTries = 3

// Retransmission rules (with adaptation on): a packet is resent at most
// rtxMaxTries times, not twice within a round trip (rtxDefaultRTT while unknown),
// and not when older than 2 RTT + 100 ms kept within [rtxMinAge, rtxMaxAge]: the
// receiver has given up on it by then.
const (
	rtxDefaultRTT = 100 * time.Millisecond
	rtxMinAge     = 300 * time.Millisecond
	rtxMaxAge     = time.Second
)

// due reports whether the packet may be resent now.
func (e *rtxEntry) due(now int64, rtt time.Duration) bool {
	return e.count < rtxMaxTries && (e.sent == 0 || now-e.sent >= int64(rtt))
}

// rtxMaxAgeFor is the age beyond which a packet is not resent, given the round
// trip (0 unknown).
func rtxMaxAgeFor(rtt time.Duration) time.Duration {
	if rtt <= 0 {
		return rtxMaxAge
	}
	return min(max(2*rtt+100*time.Millisecond, rtxMinAge), rtxMaxAge)
}

// entry returns seq's slot, reset when it held another sequence number.
func (r rtxRing) entry(seq uint16) *rtxEntry {
	e := &r[int(seq)%len(r)]
	if e.seq != seq {
		*e = rtxEntry{seq: seq}
	}
	return e
}

// rtxBudget is a token bucket of retransmitted bytes: it fills at what the estimate
// leaves beyond the media being sent (at least rtxMinShare of the estimate, so a
// subscriber whose layer fills its estimate still gets its audio and keyframe
// packets back) and holds rtxBurst of it. Priority packets (audio, the current
// keyframe) may use the whole bucket; others leave rtxReserve of it.
type rtxBudget struct {
	tokens float64 // bytes
	rate   float64 // bytes/s
	last   int64
}

const (
	rtxMinShare = 0.05
	rtxBurst    = 250 * time.Millisecond
	rtxReserve  = 0.3
	rtxMinBurst = 4 * 1250 // a few full packets
)

// setRate sets the refill rate from the estimate and the media rate, bits/s.
func (b *rtxBudget) setRate(estimate, media float64) {
	b.rate = max(estimate-media, rtxMinShare*estimate) / 8
}

func (b *rtxBudget) capacity() float64 {
	return max(b.rate*rtxBurst.Seconds(), rtxMinBurst)
}

// take spends n bytes if the bucket holds them; it reports whether it did.
func (b *rtxBudget) take(now int64, n int, priority bool) bool {
	c := b.capacity()
	if b.last == 0 {
		b.tokens = c
	} else if dt := now - b.last; dt > 0 {
		b.tokens = min(b.tokens+b.rate*float64(dt)/float64(time.Second), c)
	}
	b.last = now
	need := float64(n)
	if !priority {
		need += rtxReserve * c
	}
	if b.tokens < need {
		return false
	}
	b.tokens -= float64(n)
	return true
}
