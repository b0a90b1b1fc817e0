package peer

import (
	"log/slog"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// choiceFixture is an adapter over a camera with three layers, a one-layer screen
// share and audio, whose layer bitrates are set by hand.
type choiceFixture struct {
	a             *adapter
	camera, slide *downTrack
}

// newTestAdapter returns a subscriber's adapter (its resource not connected) and
// the trainer's lease of a session in a registry of its own, to make tracks on.
func newTestAdapter(t *testing.T) (*sfu.Lease, *Resource, *adapter) {
	t.Helper()
	reg := sfu.NewRegistry(sfu.RegistryConfig{})
	t.Cleanup(reg.CloseAll)
	lease, err := reg.Session("lecture").Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Resource{log: slog.New(slog.DiscardHandler), edge: &Edge{}}
	a := newAdapter(r, true)
	r.adapt = a
	return lease, r, a
}

// liveTrack makes a track of lease that has sent a packet (so it counts as alive).
func liveTrack(t *testing.T, lease *sfu.Lease, name string, kind sfu.Kind, codec sfu.Codec) *sfu.Track {
	t.Helper()
	tr, err := lease.Track(name, kind, codec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 1}, Payload: []byte{0x41, 0x9a}}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func newChoiceFixture(t *testing.T) *choiceFixture {
	t.Helper()
	lease, r, a := newTestAdapter(t)
	h264 := sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000}
	f := &choiceFixture{a: a}
	f.camera = newDownTrack(r, nil, sfu.KindVideo, "trainer/video", 64, nil)
	f.slide = newDownTrack(r, nil, sfu.KindVideo, "trainer/screen", 64, nil)
	audio := newDownTrack(r, nil, sfu.KindAudio, "trainer/audio", 64, nil)
	for _, d := range []*downTrack{f.camera, f.slide, audio} {
		a.add(d)
	}
	for rank, bps := range []float64{2.6e6, 850e3, 280e3} {
		tr := liveTrack(t, lease, sfu.LayerName("video", rank), sfu.KindVideo, h264)
		f.camera.layers.Attach(tr)
		a.samples[0][rank] = layerSample{track: tr, bps: bps}
	}
	tr := liveTrack(t, lease, "screen", sfu.KindVideo, h264)
	f.slide.layers.Attach(tr)
	a.samples[1][0] = layerSample{track: tr, bps: 300e3}
	a.audioRate[0] = layerSample{bps: 50e3}
	return f
}

// choose runs the choice at an estimate and returns the layers the camera's and
// the screen share's followers then target (a pinned layer a stream lacks resolves
// to the nearest one it has).
func (f *choiceFixture) choose(estimate float64) (camera, slide int) {
	f.a.mu.Lock()
	defer f.a.mu.Unlock()
	f.a.est.bps = estimate
	f.a.choose(sfu.Nanotime())
	return f.camera.layers.Target(), f.slide.layers.Target()
}

// TestLayerChoice: audio is reserved first, then the camera takes the best layer
// whose bitrate x 1.1 fits, then the screen share what remains; a video that fits
// no layer is paused. A layer already chosen stays while its bitrate alone fits.
// Pins override the estimate. A step up that failed is not retried before the
// hold-off ends.
func TestLayerChoice(t *testing.T) {
	f := newChoiceFixture(t)
	for _, tc := range []struct {
		estimate       float64
		camera, screen int
	}{
		{3.5e6, 0, 0},   // 50k audio + 2.86M camera + 330k screen
		{3.1e6, 0, 0},   // both stay: 2.6M + 300k without margins
		{2.8e6, 0, -1},  // the camera fits, the screen share does not
		{1.3e6, 1, 0},   // medium; 1.25M - 850k leaves room for the screen
		{1.2e6, 1, 0},   // medium stays at 850k + 300k (no margin for what is chosen)
		{1.0e6, 1, -1},  // medium stays; the screen cannot come back without its margin
		{0.85e6, 2, 0},  // low (280k), then the screen (330k)
		{0.3e6, -1, -1}, // below the lowest layer with audio: video paused, audio goes on
		{0.38e6, 2, -1}, // back with a margin: 50k + 308k
	} {
		camera, screen := f.choose(tc.estimate)
		if camera != tc.camera || screen != tc.screen {
			t.Errorf("estimate %.0f: camera %d, screen %d; want %d, %d", tc.estimate, camera, screen, tc.camera, tc.screen)
		}
	}

	// Pins: whatever the estimate.
	for _, tc := range []struct {
		pin            string
		camera, screen int
	}{{PinLow, 2, 0}, {PinHigh, 0, 0}, {PinAudio, -1, -1}, {PinMedium, 1, 0}} {
		f.a.mu.Lock()
		f.a.pin = tc.pin
		f.a.mu.Unlock()
		if camera, screen := f.choose(0.5e6); camera != tc.camera || screen != tc.screen {
			t.Errorf("pinned %s: camera %d, screen %d; want %d, %d", tc.pin, camera, screen, tc.camera, tc.screen)
		}
	}
	f.a.mu.Lock()
	f.a.pin = PinAuto
	f.a.mu.Unlock()

	// A step up from low to medium that loss follows at once: medium is not tried
	// again before the hold-off ends, however high the estimate says.
	f.choose(0.85e6)
	if camera, _ := f.choose(1.3e6); camera != 1 {
		t.Fatalf("step up to medium: camera %d", camera)
	}
	now := sfu.Nanotime()
	f.a.mu.Lock()
	f.a.est.probeUntil = now + int64(holdOffMin)
	f.a.upgradeFailed(now)
	f.a.mu.Unlock()
	if camera, _ := f.choose(0.85e6); camera != 2 {
		t.Fatalf("after the failed step: camera %d, want 2", camera)
	}
	if camera, _ := f.choose(3.5e6); camera != 2 {
		t.Errorf("within the hold-off: camera %d, want it kept on low", camera)
	}
	f.a.mu.Lock()
	f.a.steps[0].capUntil = now // the hold-off is over
	f.a.mu.Unlock()
	if camera, _ := f.choose(3.5e6); camera != 0 {
		t.Errorf("after the hold-off: camera %d, want 0", camera)
	}
}

// TestREDDistanceChoice: a subscriber with RED audio keeps its camera's lowest
// layer before the copies of previous frames (the audio's primary frames are
// reserved first, RED's redundancy fits what the video leaves: 2, 1, or 0 copies,
// the primary alone), while the copies come before a better layer; the distance
// rises again only with a margin, is full while the video is paused, and without
// an estimate. The encoder gets the distance chosen.
func TestREDDistanceChoice(t *testing.T) {
	lease, r, a := newTestAdapter(t)
	camera := newDownTrack(r, nil, sfu.KindVideo, "trainer/video", 64, nil)
	audio := newDownTrack(r, nil, sfu.KindAudio, "trainer/audio", 64, nil)
	audio.red = newREDEncoder(63, 111, redDistance)
	a.add(camera)
	a.add(audio)
	for rank, bps := range []float64{2.6e6, 850e3, 280e3} {
		tr := liveTrack(t, lease, sfu.LayerName("video", rank), sfu.KindVideo, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000})
		camera.layers.Attach(tr)
		a.samples[0][rank] = layerSample{track: tr, bps: bps}
	}
	// 65 kbit/s of audio with overhead; no source measured yet, so 80-byte frames:
	// a copy adds 65k x 84/130 = 42 kbit/s.
	a.audioRate[0] = layerSample{bps: 65e3}
	const perCopy = 65e3 * 84 / 130

	for _, tc := range []struct {
		estimate float64
		camera   int
		distance int
	}{
		{3.2e6, 0, 2},   // 65k + 2.86M + 84k
		{0.95e6, 2, 2},  // medium would stay without the copies (65k + 850k), not with them (+84k): low and both
		{1.2e6, 1, 2},   // medium with the copies: 65k + 935k + 84k
		{0.42e6, 2, 1},  // low (308k) leaves 47k: one copy (42k)
		{0.36e6, 2, 0},  // low stays (280k) and leaves 15k: the primary alone
		{0.39e6, 2, 0},  // 45k left: one copy needs 46k with its margin
		{0.40e6, 2, 1},  // 55k left: one copy
		{0.38e6, 2, 0},  // 35k left, one copy is 42k
		{0.30e6, -1, 2}, // the lowest layer does not fit: paused, the audio gets every copy
	} {
		a.mu.Lock()
		a.est.bps = tc.estimate
		a.choose(sfu.Nanotime())
		dist, chosen := a.redDist, a.chosenBps
		a.mu.Unlock()
		if got := camera.layers.Target(); got != tc.camera || dist != tc.distance {
			t.Errorf("estimate %.0f: camera %d, RED distance %d; want %d, %d", tc.estimate, got, dist, tc.camera, tc.distance)
		}
		if enc := int(audio.red.distance.Load()); enc != dist {
			t.Errorf("estimate %.0f: the encoder repeats %d frames, the adapter chose %d", tc.estimate, enc, dist)
		}
		want := 65e3 + float64(tc.distance)*perCopy
		if tc.camera >= 0 {
			want += a.samples[0][tc.camera].bps
		}
		if math.Abs(chosen-want) > 1 {
			t.Errorf("estimate %.0f: the choice takes %.0f bit/s, want %.0f", tc.estimate, chosen, want)
		}
	}
	// The metrics: 2 -> 1 -> 0, 0 -> 1 -> 0, 0 -> 2; the subscriber now at 2.
	if n := r.edge.adaptStats.redChanges.Load(); n != 5 {
		t.Errorf("RED distance changes counted %d, want 5", n)
	}
	r.edge.resources = map[string]*Resource{"subscriber": r}
	if st := r.edge.AdaptationStats(); st.REDChanges != 5 || !maps.Equal(st.ByREDDistance, map[int]int{0: 0, 1: 0, 2: 1}) {
		t.Errorf("AdaptationStats: RED changes %d, by distance %v; want 5, one at 2", st.REDChanges, st.ByREDDistance)
	}

	// What the link carried in the last second (NACKed ranges, reports) counts the
	// copies sent before a lowering: within a second, at the distance before it.
	a.mu.Lock()
	a.est.bps = 3.2e6
	a.choose(sfu.Nanotime())
	now := sfu.Nanotime()
	a.est.bps = 0.36e6
	a.choose(now)
	sent, later, dist0 := a.audioSent(now+int64(nackRangeAge)/2), a.audioSent(now+int64(nackRangeAge)), a.redDist
	a.mu.Unlock()
	if dist0 != 0 || math.Abs(sent-(65e3+2*perCopy)) > 1 || math.Abs(later-65e3) > 1 {
		t.Errorf("lowered 2 -> %d: audio sent %.0f within a second, %.0f after; want %.0f, %.0f", dist0, sent, later, 65e3+2*perCopy, 65e3)
	}

	// No estimate yet: the full redundancy.
	a.mu.Lock()
	a.est.bps = 0.36e6
	a.choose(sfu.Nanotime())
	a.est.bps = 0
	a.choose(sfu.Nanotime())
	dist := a.redDist
	a.mu.Unlock()
	if dist != redDistance || audio.red.distance.Load() != redDistance {
		t.Errorf("without an estimate: RED distance %d (encoder %d), want %d", dist, audio.red.distance.Load(), redDistance)
	}
}

// TestLowestNeed: the floor NACKs cannot push the estimate under counts the lowest
// layer that sends of each video, a single-layer one (the screen share) with its
// only layer, plus the audio's frames; a video without a layer measured adds
// nothing and leaves the others' floor.
func TestLowestNeed(t *testing.T) {
	f := newChoiceFixture(t)
	a := f.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if got, want := a.lowestNeed(), 280e3+300e3+50e3; math.Abs(got-want) > 1 {
		t.Errorf("camera and screen share: lowest need %.0f, want %.0f", got, want)
	}
	a.samples[0][2].bps = 0 // the camera's low layer not measured: its medium is its lowest
	if got, want := a.lowestNeed(), 850e3+300e3+50e3; math.Abs(got-want) > 1 {
		t.Errorf("camera without its low layer: lowest need %.0f, want %.0f", got, want)
	}
	screen := a.samples[1][0]
	a.samples[1][0] = layerSample{}
	if got, want := a.lowestNeed(), 850e3+50e3; math.Abs(got-want) > 1 {
		t.Errorf("screen share not measured: lowest need %.0f, want %.0f", got, want)
	}
	a.samples[0] = [sfu.MaxLayers]layerSample{}
	if got := a.lowestNeed(); got != 0 {
		t.Errorf("no video measured: lowest need %.0f, want 0", got)
	}
	a.samples[1][0] = screen
	if got, want := a.lowestNeed(), 300e3+50e3; math.Abs(got-want) > 1 {
		t.Errorf("screen share alone: lowest need %.0f, want %.0f", got, want)
	}
}

// TestSingleLayerKeptOnNACKs: a single-layer video (a trainer without simulcast)
// is not paused by NACKs alone, as a simulcast one keeps its lowest layer: the
// estimate stays at what the layer and the audio take; a receiver report that
// measures the link below the layer's rate pauses it.
func TestSingleLayerKeptOnNACKs(t *testing.T) {
	lease, r, a := newTestAdapter(t)
	camera := newDownTrack(r, nil, sfu.KindVideo, "trainer/video", 64, nil)
	audio := newDownTrack(r, nil, sfu.KindAudio, "trainer/audio", 64, nil)
	a.add(camera)
	a.add(audio)
	tr := liveTrack(t, lease, "video", sfu.KindVideo, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000})
	camera.layers.Attach(tr)
	const videoBps, audioBps = 1e6, 40e3 // no audio track measured: a voice stream's worth

	// interval runs the controller over one second in which sent bit/s went out and
	// a share nacked of the packets was NACKed; with report, a receiver report came
	// too, of that loss and the rate that arrived.
	interval := func(sent, nacked float64, report bool) (target int, estimate float64) {
		a.mu.Lock()
		defer a.mu.Unlock()
		now := beginInterval(a)
		const pkts = 100
		a.bytes.Add(uint64(sent / 8))
		a.packets.Add(pkts)
		a.nacked.Add(uint64(nacked * pkts))
		a.samples[0][0] = layerSample{track: tr, bytes: tr.Bytes(), pkts: tr.Packets(), at: now, bps: videoBps}
		if report {
			camera.rrRecvAt, camera.rrRecvBps = now, sent*(1-nacked)
			a.lossSum, a.lossWeight = nacked, 1
		}
		a.run(now)
		return camera.layers.Target(), a.est.bps
	}

	a.mu.Lock()
	a.est.bps = 1.2e6
	a.mu.Unlock()
	// 30 % of the packets NACKed, 350 kbit/s of 500 arrived by the NACKs' count:
	// without the floor the estimate would drop to 300 kbit/s and pause the video.
	target, est := interval(500e3, 0.3, false)
	if target != 0 || est < videoBps+audioBps {
		t.Fatalf("NACKs alone: target %d, estimate %.0f; want the layer kept, estimate >= %.0f", target, est, videoBps+audioBps)
	}
	// A receiver report measures the same: the link carries 350 kbit/s.
	target, est = interval(500e3, 0.3, true)
	if target != -1 || est > 350e3 {
		t.Fatalf("receiver report: target %d, estimate %.0f; want the video paused under 350 kbit/s", target, est)
	}
	// Paused, NACKs of what was in flight neither lower the estimate further (it
	// is what the report measured) nor bring the video back.
	before := est
	target, est = interval(50e3, 0.5, false)
	if target != -1 || est < before {
		t.Fatalf("NACKs while paused: target %d, estimate %.0f; want paused at %.0f or more", target, est, before)
	}
}

// beginInterval makes the controller's next run, at the now it returns, cover
// the second since its previous one, past the start's grace, with nothing counted
// yet; a.mu held.
func beginInterval(a *adapter) int64 {
	now := sfu.Nanotime()
	a.begun = now - int64(time.Minute)
	a.lastRun = now - int64(time.Second)
	a.lastBytes, a.lastPkts, a.lastNacked = a.bytes.Load(), a.packets.Load(), a.nacked.Load()
	a.lastRtx, a.lastRtxPkts = a.rtxBytes.Load(), a.rtxPkts.Load()
	return now
}
