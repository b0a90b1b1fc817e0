package peer

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"lectern/sfu"
)

// TestReceiverRateOverShortReports: a receiver that reports every few packets
// (Chromium sends a reduced-size report with each NACK on a lossy link) still has
// the rate it received measured, over as many reports as make a range long enough;
// a range that began before a layer switch starts again after it.
func TestReceiverRateOverShortReports(t *testing.T) {
	_, r, a := newTestAdapter(t)
	camera := newDownTrack(r, nil, sfu.KindVideo, "trainer/video", 64, nil)
	a.add(camera)
	const size = 1000.0 // bytes of payload a packet
	camera.rrPacketSize = size

	// 100 packets a second: seq 1..300 sent 10 ms apart; every 4th lost.
	start := sfu.Nanotime() + int64(time.Second) // positive: the clock starts near 0
	sentAt := func(seq int) int64 { return start + int64(seq)*int64(10*time.Millisecond) }
	camera.firstSeq.Store(1<<16 | 1)
	for seq := 1; seq <= 300; seq++ {
		camera.sendTimes[seq%len(camera.sendTimes)].Store(sendStamp(sentAt(seq), uint16(seq)))
	}
	report := func(highest int) {
		lost := highest / 4
		a.mu.Lock()
		defer a.mu.Unlock()
		camera.rrInterval(sentAt(highest)+int64(20*time.Millisecond), rtcp.ReceptionReport{
			SSRC: camera.ssrc, LastSequenceNumber: uint32(highest), TotalLost: uint32(lost), FractionLost: 64,
		})
	}
	want := 0.75 * 100 * (size + packetOverhead) * 8 // three in four of 100 packets a second
	// A range of n packets is timed over n-1 intervals: up to a tenth above.
	near := func(got float64) bool { return math.Abs(got-want) < 0.15*want }

	// Reports of 3 packets each: none alone measures (rrMinPackets, 100 ms), together
	// they do.
	for highest := 3; highest <= 60; highest += 3 {
		report(highest)
	}
	if camera.rrRecvAt == 0 || !near(camera.rrRecvBps) {
		t.Fatalf("after 20 reports of 3 packets: received %.0f bit/s (measured at %d), want about %.0f", camera.rrRecvBps, camera.rrRecvAt, want)
	}

	// A switch at seq 100: the range that began before it starts again at the
	// report after it, and measures the new layer alone (half the packets arrive).
	camera.switchedAt.Store(sentAt(100))
	report(99)
	report(102)
	measuredAt := camera.rrRecvAt
	for highest := 105; highest <= 160; highest += 3 {
		lost := 99/4 + (highest-102)/2
		a.mu.Lock()
		camera.rrInterval(sentAt(highest)+int64(20*time.Millisecond), rtcp.ReceptionReport{
			SSRC: camera.ssrc, LastSequenceNumber: uint32(highest), TotalLost: uint32(lost), FractionLost: 128,
		})
		a.mu.Unlock()
	}
	want = 0.5 * 100 * (size + packetOverhead) * 8
	if camera.rrRecvAt == measuredAt || !near(camera.rrRecvBps) {
		t.Fatalf("after the switch: received %.0f bit/s, want about %.0f (the new layer's range alone)", camera.rrRecvBps, want)
	}
}

// TestStepDownHeldUntilSwitched: after heavy loss takes the camera from high to
// low, more loss reported before the follower has switched (the high layer's
// overflow, still arriving) keeps what the low layer needs instead of pausing
// the video; the same loss reported once the switch has settled pauses it.
func TestStepDownHeldUntilSwitched(t *testing.T) {
	f := newChoiceFixture(t)
	a := f.a
	// interval runs the controller over one second after which a receiver report
	// says the link lost loss of the packets and carried carried bit/s.
	interval := func(carried, loss float64) (camera int, estimate float64) {
		a.mu.Lock()
		defer a.mu.Unlock()
		now := beginInterval(a)
		a.bytes.Add(uint64(carried / 8))
		a.packets.Add(100)
		f.camera.rrRecvAt, f.camera.rrRecvBps = now, carried
		a.lossSum, a.lossWeight = loss, 1
		a.run(now)
		return f.camera.layers.Target(), a.est.bps
	}
	if camera, _ := f.choose(3.5e6); camera != 0 {
		t.Fatalf("start: camera %d, want high", camera)
	}
	// The link carries 600 kbit/s: low and the audio.
	if camera, est := interval(600e3, 0.5); camera != 2 {
		t.Fatalf("after heavy loss: camera %d (estimate %.0f), want low", camera, est)
	}
	// The high layer's overflow is reported again before the follower switched
	// (nothing is forwarded in this fixture: it never does).
	if camera, est := interval(200e3, 0.6); camera != 2 || est < 280e3+40e3 { // low, and a voice stream (no audio track measured here)
		t.Fatalf("loss of the layer left: camera %d, estimate %.0f; want low kept", camera, est)
	}
	// Once downSettleMax has passed, the same report is about the link.
	a.mu.Lock()
	for i := range a.steps {
		a.steps[i].downAt -= int64(downSettleMax)
	}
	a.mu.Unlock()
	if camera, est := interval(200e3, 0.6); camera != -1 {
		t.Fatalf("loss after the switch settled: camera %d, estimate %.0f; want paused", camera, est)
	}
}
