package recorder

import "time"

// maxClockSkew is how far a track's RTP clock may disagree with the arrival clock
// between two packets before the recorder treats it as a timestamp jump (a camera
// that restarted its clock, a broken relay) rather than real media time.
const maxClockSkew = 3 * time.Second

// maxBackStep is how far timestamps may step back (B-frame reordering, audio
// jitter) before it counts as a jump.
const maxBackStep = time.Second

// timeline maps a track's 32-bit RTP timestamps to 64-bit ticks on the recording's
// clock (the track's RTP clock rate, zero at the recording's epoch), unwrapping
// wrap-around (RFC 3550 §5.1) and absorbing timestamp jumps: a jump is replaced by
// the time that passed by the arrival clock, so the recording stays monotonic and
// in sync with the other tracks. Used by one goroutine.
type timeline struct {
	rate  int64 // ticks per second
	epoch int64 // sfu.Nanotime of the recording's zero

	started     bool
	lastTS      uint32
	lastTicks   int64
	lastArrival int64
	jumps       int
}

func newTimeline(rate uint32, epoch int64) *timeline {
	return &timeline{rate: int64(rate), epoch: epoch}
}

// ticks returns the recording time of a packet with RTP timestamp ts that arrived
// at arrival (sfu.Nanotime). jumped reports a timestamp jump that was absorbed.
func (tl *timeline) ticks(ts uint32, arrival int64) (t int64, jumped bool) {
	if !tl.started {
		tl.started = true
		tl.lastTS, tl.lastArrival = ts, arrival
		tl.lastTicks = tl.fromNanos(arrival - tl.epoch)
		return tl.lastTicks, false
	}
	delta := int64(int32(ts - tl.lastTS))
	wall := tl.fromNanos(arrival - tl.lastArrival)
	if delta < -tl.fromDuration(maxBackStep) || delta > wall+tl.fromDuration(maxClockSkew) {
		delta = max(wall, 1)
		tl.jumps++
		jumped = true
	}
	tl.lastTS, tl.lastArrival = ts, arrival
	tl.lastTicks += delta
	return tl.lastTicks, jumped
}

func (tl *timeline) fromNanos(ns int64) int64 {
	return ns * tl.rate / int64(time.Second)
}

func (tl *timeline) fromDuration(d time.Duration) int64 { return tl.fromNanos(int64(d)) }
