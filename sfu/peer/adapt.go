package peer

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"

	"lectern/sfu"
)

// Layer pins a subscriber may ask for (Resource.SetLayerPin).
const (
	PinAuto   = "auto"   // the estimate chooses
	PinHigh   = "high"   // the best layer (rank 0)
	PinMedium = "medium" // rank 1
	PinLow    = "low"    // rank 2
	PinAudio  = "audio"  // video paused, audio only
)

// ErrBadLayer: a layer pin that is none of auto, high, medium, low, audio.
var ErrBadLayer = errors.New("unknown layer: want auto, high, medium, low or audio")

// layerNames name the ranks of a stream's layers.
var layerNames = [sfu.MaxLayers]string{PinHigh, PinMedium, PinLow}

// LayerName returns the name of a simulcast rank ("high", "medium", "low"), or
// "paused" for -1.
func LayerName(rank int) string {
	if rank < 0 || rank >= sfu.MaxLayers {
		return "paused"
	}
	return layerNames[rank]
}

// LayerState is what a subscriber connection gets of its main picture, as the
// layer endpoint reports it.
type LayerState struct {
	// Pin is what the subscriber asked for: auto, high, medium, low or audio.
	Pin string `json:"pin"`
	// Layer is the layer of the main picture being sent: high, medium, low, paused;
	// "" while none is (no video yet, or waiting for the first keyframe).
	Layer string `json:"layer"`
	// Paused is true while the video is paused (by the estimate or the pin) and
	// audio alone is sent.
	Paused bool `json:"paused"`
	// EstimateBps is the estimate of what the subscriber's link carries, bits/s; 0
	// before the first receiver report or with adaptation off.
	EstimateBps int64 `json:"estimate_bps"`
	// Layers are the layers the main picture's stream has now, best first.
	Layers []string `json:"layers"`
}

// adapter is one subscriber connection's bandwidth estimate, layer choice and
// retransmission budget, shared by its downtracks. It runs on their RTCP goroutines
// when a receiver report or a NACK arrives (no goroutine of its own); the packet
// path only adds to two counters.
type adapter struct {
	r       *Resource
	enabled bool // estimate-driven choice and retransmission budget (Config.Adaptation)

	// Written by the egress worker for each packet sent to the subscriber: payload
	// plus packet overhead; rtxBytes the part that is retransmissions.
	bytes    atomic.Uint64
	packets  atomic.Uint64
	rtxBytes atomic.Uint64
	nacked   atomic.Uint64 // packets NACKed for the first time
	rttNanos atomic.Int64  // smoothed round-trip time; 0 unknown

	mu        sync.Mutex
	video     []*downTrack // layout order: Video[0], the main picture, first
	audio     []*downTrack
	want      []int // per video downtrack: the rank asked of its follower; -1 paused
	samples   [][sfu.MaxLayers]layerSample
	audioRate []layerSample
	pin       string
	est       lossEstimate
	budget    rtxBudget

	lastRun                      int64
	lastBytes, lastPkts, lastRtx uint64
	lastNacked                   uint64
	lossSum, lossWeight          float64
}

// layerSample measures the bitrate of one layer's track from its byte counter.
type layerSample struct {
	track       *sfu.Track
	bytes, pkts uint64
	at          int64
	bps         float64 // smoothed, payload and packet overhead; 0 unknown
}

// packetOverhead is what a packet costs on the link beyond its payload: RTP
// header, SRTP tag, UDP and IPv4 headers.
const packetOverhead = 12 + 10 + 8 + 20

// adaptMinInterval is the shortest time between two runs of the controller.
const adaptMinInterval = 450 * time.Millisecond

func newAdapter(r *Resource, enabled bool) *adapter {
	return &adapter{r: r, enabled: enabled, pin: PinAuto}
}

// add registers a downtrack, in layout order.
func (a *adapter) add(d *downTrack) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d.kind == sfu.KindVideo {
		a.video = append(a.video, d)
		a.want = append(a.want, 0)
		a.samples = append(a.samples, [sfu.MaxLayers]layerSample{})
		return
	}
	a.audio = append(a.audio, d)
	a.audioRate = append(a.audioRate, layerSample{})
}

// sent counts a packet sent to the subscriber; the egress worker calls it.
func (a *adapter) sent(payload int, rtx bool) {
	n := uint64(payload + packetOverhead)
	a.bytes.Add(n)
	a.packets.Add(1)
	if rtx {
		a.rtxBytes.Add(n)
	}
}

// SetLayerPin pins the layer the subscriber gets: auto (the estimate chooses),
// high, medium, low, or audio (video paused). Unknown names are ErrBadLayer. A
// pinned layer the stream does not have gives the nearest lower one that sends,
// else the nearest higher one.
func (r *Resource) SetLayerPin(pin string) error {
	a := r.adapt
	if a == nil {
		return fmt.Errorf("%w: a publishing connection has no layers", ErrBadLayer)
	}
	switch pin {
	case PinAuto, PinHigh, PinMedium, PinLow, PinAudio:
	default:
		return fmt.Errorf("%w: %q", ErrBadLayer, pin)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pin != pin {
		r.log.Info("layer pinned", "pin", pin)
	}
	a.pin = pin
	a.choose(sfu.Nanotime())
	return nil
}

// LayerState reports the layer of the connection's main picture, its pin and
// estimate.
func (r *Resource) LayerState() LayerState {
	a := r.adapt
	if a == nil {
		return LayerState{Pin: PinAuto, Layers: []string{}}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := LayerState{Pin: a.pin, EstimateBps: int64(a.est.bps), Layers: []string{}}
	if !a.enabled {
		st.EstimateBps = 0
	}
	if len(a.video) == 0 {
		return st
	}
	f := a.video[0].layers
	now := sfu.Nanotime()
	for rank, t := range f.Layers() {
		if layerAlive(t, now) {
			st.Layers = append(st.Layers, layerNames[rank])
		}
	}
	cur, tgt := f.Current(), f.Target()
	st.Paused = a.want[0] < 0 || tgt < 0 && len(st.Layers) > 0
	switch {
	case cur >= 0:
		st.Layer = layerNames[cur]
	case st.Paused:
		st.Layer = "paused"
	}
	return st
}

// layerAlive reports whether a layer's track has sent recently.
func layerAlive(t *sfu.Track, now int64) bool {
	if t == nil || t.Closed() {
		return false
	}
	last := t.LastArrival()
	return last != 0 && now-last < int64(layerAliveFor)
}

// layerAliveFor matches the follower's notion of a layer that sends.
const layerAliveFor = 1500 * time.Millisecond

// onReport takes one receiver report block about downtrack d: the fraction it lost
// since its previous report, weighted by the packets it expected.
func (a *adapter) onReport(d *downTrack, now int64, rr rtcp.ReceptionReport) {
	if rr.LastSenderReport != 0 {
		// RFC 3550 §6.4.1: the round trip is the arrival time minus LSR minus DLSR,
		// in the middle 32 bits of NTP time (1/65536 s).
		mid := uint32(sfu.NTPTime(time.Now()) >> 16)
		if rtt := mid - rr.LastSenderReport - rr.Delay; rtt < 65536*5 {
			ns := int64(rtt) * int64(time.Second) / 65536
			if old := a.rttNanos.Load(); old != 0 {
				ns = (7*old + ns) / 8
			}
			a.rttNanos.Store(max(ns, int64(time.Millisecond)))
		}
	}
	weight := d.rrExpected(rr)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lossSum += float64(rr.FractionLost) / 256 * weight
	a.lossWeight += weight
	if now-a.lastRun >= int64(adaptMinInterval) {
		a.run(now, -1)
	}
}

// nackEarly is the share of the packets sent since the last run that, once NACKed,
// moves the estimate before the next receiver report does.
const nackEarly = 0.10

// onNack runs the controller early when many packets were NACKed since its last
// run: receiver reports come once a second, NACKs within a round trip.
func (a *adapter) onNack(now int64) {
	if !a.enabled {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if now-a.lastRun < int64(adaptMinInterval)/2 || a.lossWeight > 0 {
		return
	}
	sent := a.packets.Load() - a.lastPkts
	nacked := a.nacked.Load() - a.lastNacked
	if sent < 20 || float64(nacked) < nackEarly*float64(sent) {
		return
	}
	a.run(now, min(float64(nacked)/float64(sent), 0.5))
}

// run updates the estimate from what was sent and lost since the previous run, and
// chooses the layers; a.mu held. nackLoss >= 0 is a loss fraction from NACKs when
// no receiver report came.
func (a *adapter) run(now int64, nackLoss float64) {
	bytes, pkts, rtx := a.bytes.Load(), a.packets.Load(), a.rtxBytes.Load()
	dt := float64(now-a.lastRun) / float64(time.Second)
	loss := nackLoss
	if a.lossWeight > 0 {
		loss = a.lossSum / a.lossWeight
	}
	sentBps := float64(bytes-a.lastBytes) * 8 / dt
	mediaBps := float64((bytes-a.lastBytes)-(rtx-a.lastRtx)) * 8 / dt
	a.lastRun, a.lastBytes, a.lastPkts, a.lastRtx = now, bytes, pkts, rtx
	a.lastNacked = a.nacked.Load()
	a.lossSum, a.lossWeight = 0, 0
	a.sample(now)
	if !a.enabled || dt <= 0 {
		return
	}
	a.est.ceiling = a.ceiling()
	a.est.update(now, sentBps, loss)
	a.budget.setRate(a.est.bps, mediaBps)
	a.choose(now)
}

// begin starts the first measuring interval: the subscriber's downtracks start
// sending.
func (a *adapter) begin(now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastRun = now
	a.lastBytes, a.lastPkts, a.lastRtx = a.bytes.Load(), a.packets.Load(), a.rtxBytes.Load()
	a.sample(now)
}

// sample measures every layer's bitrate and the audio's; a.mu held.
func (a *adapter) sample(now int64) {
	for i, d := range a.video {
		layers := d.layers.Layers()
		for rank, t := range layers {
			measure(&a.samples[i][rank], t, now)
		}
	}
	for i, d := range a.audio {
		measure(&a.audioRate[i], d.follow.Track(), now)
	}
}

func measure(s *layerSample, t *sfu.Track, now int64) {
	if t == nil {
		*s = layerSample{}
		return
	}
	bytes, pkts := t.Bytes(), t.Packets()
	if s.track != t {
		*s = layerSample{track: t, bytes: bytes, pkts: pkts, at: now}
		return
	}
	dt := float64(now-s.at) / float64(time.Second)
	if dt < 0.2 {
		return
	}
	bps := float64(bytes-s.bytes+(pkts-s.pkts)*packetOverhead) * 8 / dt
	if s.bps == 0 {
		s.bps = bps
	} else {
		s.bps = 0.6*s.bps + 0.4*bps
	}
	s.bytes, s.pkts, s.at = bytes, pkts, now
}

// audioReserve is what the audio of the subscriber takes: measured, at least a
// voice Opus stream's worth.
func (a *adapter) audioReserve() float64 {
	sum := 0.0
	for i := range a.audio {
		sum += max(a.audioRate[i].bps, 40e3)
	}
	return sum
}

// upgradeMargin: a layer is chosen when its bitrate times this fits the estimate;
// the layer already chosen stays while its bitrate alone fits.
const upgradeMargin = 1.1

// ceiling is as far as growing the estimate makes sense: all the best layers with
// some room, so that a loss-free link is not assumed to carry ten times what it was
// ever given. 0 when no layer's rate is known yet.
func (a *adapter) ceiling() float64 {
	sum := 0.0
	for i := range a.video {
		for rank := range sfu.MaxLayers {
			if s := a.samples[i][rank]; s.bps > 0 && layerAlive(s.track, sfu.Nanotime()) {
				sum += s.bps
				break
			}
		}
	}
	if sum == 0 {
		return 0
	}
	return max(1.3*(sum+a.audioReserve()), 300e3)
}

// choose sets each video downtrack's target: audio first, then the video in
// layout order, each the best layer that fits what remains of the estimate; a.mu
// held.
func (a *adapter) choose(now int64) {
	remaining := a.est.bps - a.audioReserve()
	for i, d := range a.video {
		want := a.want[i]
		switch a.pin {
		case PinHigh, PinMedium, PinLow:
			for rank, n := range layerNames {
				if n == a.pin {
					want = rank
				}
			}
		case PinAudio:
			want = -1
		default:
			if !a.enabled || a.est.bps == 0 {
				want = 0
				break
			}
			want = a.fit(i, remaining, now)
			if want == -2 { // no layer measured yet: leave it
				want = a.want[i]
			} else if want >= 0 {
				remaining -= a.samples[i][want].bps
			}
		}
		if want == a.want[i] {
			continue
		}
		if want < 0 {
			a.r.edge.adaptStats.pauses.Add(1)
			reason := "the link cannot carry the lowest layer"
			if a.pin == PinAudio {
				reason = "pinned to audio"
			}
			a.r.log.Info("video paused", "reason", reason, "track", d.want, "estimate_bps", int64(a.est.bps))
		} else if a.want[i] < 0 {
			a.r.log.Info("video resumed", "track", d.want, "layer", layerNames[want], "estimate_bps", int64(a.est.bps))
		}
		a.r.edge.adaptStats.switches.Add(1)
		a.want[i] = want
		d.layers.SetTarget(want)
	}
}

// fit returns the best rank of video downtrack i whose bitrate fits remaining, -1
// when none does, -2 when no layer's bitrate is known; a.mu held.
func (a *adapter) fit(i int, remaining float64, now int64) int {
	known := false
	for rank := range sfu.MaxLayers {
		s := a.samples[i][rank]
		if s.bps == 0 || !layerAlive(s.track, now) {
			continue
		}
		known = true
		need := s.bps
		if a.want[i] < 0 || rank < a.want[i] {
			need *= upgradeMargin
		}
		if need <= remaining {
			return rank
		}
	}
	if !known {
		return -2
	}
	return -1
}

// allowRetransmit reports whether n more bytes of retransmission fit the budget;
// priority packets (audio, the current keyframe) may use all of it.
func (a *adapter) allowRetransmit(now int64, n int, priority bool) bool {
	if !a.enabled {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.est.bps == 0 {
		return true // no estimate yet: the first report comes within a second
	}
	return a.budget.take(now, n+packetOverhead, priority)
}

// rtt returns the smoothed round-trip time, or def when unknown.
func (a *adapter) rtt(def time.Duration) time.Duration {
	if ns := a.rttNanos.Load(); ns > 0 {
		return time.Duration(ns)
	}
	return def
}

// adaptStats are the edge's adaptation counters.
type adaptStats struct {
	switches, pauses, refused atomic.Uint64
}

// AdaptationStats are the edge's layer adaptation figures, for metrics.
type AdaptationStats struct {
	// ByLayer counts subscriber connections by the layer of their main picture:
	// "high", "medium", "low", "paused".
	ByLayer map[string]int
	// Estimates are the subscribers' bandwidth estimates, bits/s (those that have
	// one).
	Estimates []float64
	// Switches counts layer changes chosen (by estimates or pins), Pauses those that
	// paused a video, NACKsRefused the retransmissions the budget refused.
	Switches, Pauses, NACKsRefused uint64
}

// AdaptationStats collects the figures of every live subscriber connection.
func (e *Edge) AdaptationStats() AdaptationStats {
	st := AdaptationStats{
		ByLayer:      map[string]int{PinHigh: 0, PinMedium: 0, PinLow: 0, "paused": 0},
		Switches:     e.adaptStats.switches.Load(),
		Pauses:       e.adaptStats.pauses.Load(),
		NACKsRefused: e.adaptStats.refused.Load(),
	}
	e.mu.Lock()
	list := make([]*Resource, 0, len(e.resources))
	for _, r := range e.resources {
		if r.adapt != nil {
			list = append(list, r)
		}
	}
	e.mu.Unlock()
	for _, r := range list {
		ls := r.LayerState()
		if ls.Layer != "" {
			st.ByLayer[ls.Layer]++
		}
		if ls.EstimateBps > 0 {
			st.Estimates = append(st.Estimates, float64(ls.EstimateBps))
		}
	}
	return st
}
