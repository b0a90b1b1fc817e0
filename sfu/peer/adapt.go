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
// retransmission budget, shared by its downtracks. It runs where their RTCP is handled (handleRTCP)
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
	rtxPkts  atomic.Uint64
	nacked   atomic.Uint64 // packets NACKed for the first time
	rttNanos atomic.Int64  // smoothed round-trip time; 0 unknown

	mu        sync.Mutex
	video     []*downTrack // layout order: Video[0], the main picture, first
	audio     []*downTrack
	want      []int // per video downtrack: the rank asked of its follower; -1 paused
	steps     []layerStep
	samples   [][sfu.MaxLayers]layerSample
	audioRate []layerSample
	pin       string
	// redDist is the RED distance the subscriber's audio gets (chooseRED): the
	// copies of previous frames fit what the video layers leave of the estimate.
	redDist int
	// redLowered is when redDist was last lowered, from redFrom: NACKs and reports
	// tell of packets sent up to a second before, with redFrom's copies.
	redLowered int64
	redFrom    int
	est        lossEstimate
	budget     rtxBudget

	lastRun                      int64
	lastBytes, lastPkts, lastRtx uint64
	lastRtxPkts, lastNacked      uint64
	lossSum, lossWeight          float64
	prevMedia                    uint64  // media packets sent in the interval before the last
	prevSent                     float64 // bits/s sent in the interval before the last
	begun                        int64   // when the downtracks started sending
	lastMediaBps                 float64 // media sent in the last interval
	chosenBps                    float64 // what the chosen layers and the audio take
	// The last NACK range read (nackRange): loss, video rate carried, when.
	rangeLoss, rangeCarried float64
	rangeAt                 int64
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
	return &adapter{r: r, enabled: enabled, pin: PinAuto, redDist: redDistance}
}

// add registers a downtrack, in layout order.
func (a *adapter) add(d *downTrack) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.enabled {
		// Two seconds of packets at the best layer's rate: receiver reports come
		// every second or so (browsers report audio less often: then only video
		// measures). 5 KB a subscriber.
		n := 512
		if d.kind == sfu.KindAudio {
			n = 128
		}
		d.sendTimes = make([]atomic.Int64, n)
	}
	if d.kind == sfu.KindVideo {
		a.video = append(a.video, d)
		a.want = append(a.want, 0)
		a.steps = append(a.steps, layerStep{})
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
		a.rtxPkts.Add(1)
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
	a.budget.setRate(a.est.bps, max(a.lastMediaBps, a.chosenBps))
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
		// On a short path rounding can make it slightly negative.
		mid := uint32(sfu.NTPTime(time.Now()) >> 16)
		if rtt := int32(mid - rr.LastSenderReport - rr.Delay); rtt > -65536/100 && rtt < 65536*5 {
			ns := int64(max(rtt, 0)) * int64(time.Second) / 65536
			if old := a.rttNanos.Load(); old != 0 {
				ns = (7*old + ns) / 8
			}
			a.rttNanos.Store(max(ns, int64(time.Millisecond)))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	weight := d.rrInterval(now, rr)
	a.lossSum += float64(rr.FractionLost) / 256 * weight
	a.lossWeight += weight
	if now-a.lastRun >= int64(adaptMinInterval) {
		a.run(now)
	}
}

// nackLossMax bounds the loss read from NACKs.
const nackLossMax = 0.6

// nackEarly is the loss, from NACKs since the last run, that moves the estimate
// before the next receiver report does.
const nackEarly = 0.10

// onNack takes one NACK packet from d's subscriber: it runs the controller early
// when many packets were NACKed since its last run (receiver reports come once a
// second, NACKs within a round trip), and at once when the packet shows heavy loss
// over the range of a video stream it names (nackRange): a link whose rate just
// fell under the layer being sent loses most of what exceeds it, and every
// millisecond until the step down overflows its queue further.
func (a *adapter) onNack(d *downTrack, now int64, nacks []rtcp.NackPair) {
	if !a.enabled {
		return
	}
	loss, carried, ok := nackRange(d, now, nackRangeAge, nacks)
	a.mu.Lock()
	defer a.mu.Unlock()
	if now-a.begun < int64(startGrace) {
		// The fast start's burst: judged by the NACKs' share of all packets sent
		// (nackLoss), as before.
		ok = false
	}
	if ok {
		a.rangeLoss, a.rangeCarried, a.rangeAt = loss, carried, now
	}
	wait := int64(adaptMinInterval) / 2
	heavy := ok && loss > a.lossHigh(now)
	if heavy || a.probing(now) {
		wait = int64(probeReaction)
	}
	if now-a.lastRun >= wait && (heavy || a.nackLoss() >= nackEarly) {
		a.run(now)
	}
}

// nackRangeMin is the fewest packets a NACK's range must span to tell a loss rate;
// nackRangeAge is the oldest packet it counts: NACKs come after the queue that
// overflowed (a router holds a few hundred milliseconds), a round trip and the
// receiver's NACK interval.
const (
	nackRangeMin = 16
	nackRangeAge = time.Second
)

// nackRange reads one NACK packet about video downtrack d: the share of the
// packets from the first to the last sequence number it names that were lost, and
// the rate that arrived of what was sent over that range (its packets' send
// times, at the stream's mean packet size). Receivers NACK every packet still
// missing in their recent history (pion, libwebrtc), so on a link that just
// became too narrow the range is the overflow itself: its loss is the share of
// the sending rate the link cannot carry, without the packets sent before it that
// dilute the loss counted since the controller's last run.
func nackRange(d *downTrack, now int64, maxAge time.Duration, nacks []rtcp.NackPair) (loss, carried float64, ok bool) {
	if d.kind != sfu.KindVideo || len(nacks) == 0 || d.sendTimes == nil {
		return 0, 0, false
	}
	t := d.follow.Track()
	if t == nil || t.Packets() == 0 {
		return 0, 0, false
	}
	return nackRangeOf(d.sentAt, float64(t.Bytes())/float64(t.Packets())+packetOverhead, now, maxAge, nacks)
}

// nackRangeOf is nackRange over the send times sentAt, at a mean packet size of
// size bytes (overhead included).
func nackRangeOf(sentAt func(uint16) (int64, bool), size float64, now int64, maxAge time.Duration, nacks []rtcp.NackPair) (loss, carried float64, ok bool) {
	// Only packets sent within maxAge: receivers NACK a missing packet again and
	// again while it is in their history, long after the loss that dropped it.
	var lo, hi uint16
	var from, to int64
	count := 0
	for _, p := range nacks {
		p.Range(func(seq uint16) bool {
			at, ok := sentAt(seq)
			if !ok || now-at > int64(maxAge) {
				return true
			}
			if count == 0 || int16(seq-lo) < 0 {
				lo, from = seq, at
			}
			if count == 0 || int16(seq-hi) > 0 {
				hi, to = seq, at
			}
			count++
			return true
		})
	}
	span := int(hi-lo) + 1
	if count == 0 || span < nackRangeMin || to-from < int64(20*time.Millisecond) {
		return 0, 0, false
	}
	loss = min(float64(count)/float64(span), 1)
	sent := float64(span) * size * 8 / (float64(to-from) / float64(time.Second))
	return loss, sent * (1 - loss), true
}

// probeReaction is how soon after the last run NACKs move the estimate while a
// step up is being tried: a resume or a higher layer that the link cannot carry
// starts with a keyframe burst, and every millisecond of it is sent in vain.
const probeReaction = 50 * time.Millisecond

// need is what the layers chosen now and the audio take (layers not measured yet
// count as nothing). a.mu held.
func (a *adapter) need() float64 {
	sum := a.audioNow()
	for i, w := range a.want {
		if w >= 0 {
			sum += a.samples[i][w].bps
		}
	}
	return sum
}

// downSettle is how long after a step down (or a pause) the loss reported is
// taken for the layer left's: its packets still in the link's queue when the new
// layer's keyframe comes (a round trip to the publisher) go on overflowing it, and
// reports and NACKs come a round trip and a report interval after them. Measured
// behind a 500 kbit/s tbf with a 100 ms queue, half a second after a step from medium
// to low the low layer's first reports still showed 11-13 % loss. downSettleMax
// bounds the wait for a switch that does not come (no keyframe).
const (
	downSettle    = time.Second
	downSettleMax = 2 * time.Second
)

// switchingDown reports whether a video was told to step down or pause within
// downSettle, or within downSettleMax and its follower has not switched yet: the
// loss read now is about the layer before, which the choice has already answered,
// and lowering the estimate on it again would take the video a further layer down,
// or pause it, on a link that carries the new one. a.mu held.
func (a *adapter) switchingDown(now int64) bool {
	for i, d := range a.video {
		since := now - a.steps[i].downAt
		if a.steps[i].downAt == 0 || since >= int64(downSettleMax) {
			continue
		}
		if since < int64(downSettle) || d.layers.Current() != d.layers.Target() {
			return true
		}
	}
	return false
}

// stepConfirm is how long after a step up the estimate does not grow: long enough
// for the new layer's keyframe to arrive and for the loss it causes on a link too
// narrow for it to come back as NACKs.
const stepConfirm = 2 * time.Second

// stepping reports whether a video stepped up within stepConfirm. a.mu held.
func (a *adapter) stepping(now int64) bool {
	for _, st := range a.steps {
		if st.upAt != 0 && st.upAt != a.begun && now-st.upAt < int64(stepConfirm) {
			return true
		}
	}
	return false
}

// lowestNeed is what the lowest layer that sends of each video and the audio's
// primary frames take (RED's copies give way to the lowest layer: chooseRED); 0
// when no video has a layer measured.
//
// A single-layer video (the screen share, a trainer without simulcast) counts with
// its one layer: it is its lowest, and pausing it costs the picture where a
// simulcast video only steps down, so the NACKs that cannot take a simulcast video
// below its lowest layer (run) cannot pause it either; a receiver report that
// measures the link below its rate still does. Each video counts on its own: one
// without a layer measured leaves the others' floor. a.mu held.
func (a *adapter) lowestNeed() float64 {
	now := sfu.Nanotime()
	sum := 0.0
	for i := range a.video {
		for rank := sfu.MaxLayers - 1; rank >= 0; rank-- {
			if s := a.samples[i][rank]; s.bps > 0 && layerAlive(s.track, now) {
				sum += s.bps
				break
			}
		}
	}
	if sum == 0 {
		return 0
	}
	primary, _ := a.audioRates()
	return sum + primary
}

// probing reports whether a video stepped up within upgradeFailWindow. a.mu held.
func (a *adapter) probing(now int64) bool {
	for _, st := range a.steps {
		if st.upAt != 0 && now-st.upAt < int64(upgradeFailWindow) {
			return true
		}
	}
	return false
}

// nackLoss is the share of the media packets sent since the last run that were
// NACKed (first NACKs only); 0 with too few packets to tell. Receiver reports
// count a packet recovered by a retransmission as received, so on a link that
// loses what exceeds its rate and gets it back by NACK they show little loss
// while the link is saturated: NACKs show it. a.mu held.
func (a *adapter) nackLoss() float64 {
	// NACKs come a round trip after the packets they name, which may be those of
	// the previous interval when the rate just fell.
	media := max((a.packets.Load()-a.lastPkts)-(a.rtxPkts.Load()-a.lastRtxPkts), a.prevMedia)
	if media < 20 {
		return 0
	}
	// More NACKed than sent is a confused receiver (NACKs of long-gone packets),
	// not a link that carries nothing.
	return min(float64(a.nacked.Load()-a.lastNacked)/float64(media), nackLossMax)
}

// run updates the estimate from what was sent and lost since the previous run, and
// chooses the layers; a.mu held.
func (a *adapter) run(now int64) {
	bytes, pkts, rtx, rtxPkts := a.bytes.Load(), a.packets.Load(), a.rtxBytes.Load(), a.rtxPkts.Load()
	dt := float64(now-a.lastRun) / float64(time.Second)
	prevRun := a.lastRun
	rrCarried, fresh := a.received(now)
	nackLoss, rrLoss := a.nackLoss(), 0.0
	if a.lossWeight > 0 {
		rrLoss = a.lossSum / a.lossWeight
	}
	a.prevMedia = (pkts - a.lastPkts) - (rtxPkts - a.lastRtxPkts)
	sentBps := float64(bytes-a.lastBytes) * 8 / dt
	mediaBps := float64((bytes-a.lastBytes)-(rtx-a.lastRtx)) * 8 / dt
	a.lastRun, a.lastBytes, a.lastPkts, a.lastRtx, a.lastRtxPkts = now, bytes, pkts, rtx, rtxPkts
	a.lastNacked = a.nacked.Load()
	a.lossSum, a.lossWeight = 0, 0
	a.sample(now)
	if !a.enabled || dt <= 0 {
		return
	}
	// Two views of the loss and of what the link carried. Receiver reports: the
	// loss of a range of sequence numbers and the rate its packets arrived at (over
	// the time they took to send), a report interval and a round trip late. NACKs:
	// the loss of the packets sent since the last run, within a round trip, and
	// what was sent less that loss, taking the higher of the last two intervals
	// (NACKs come a round trip after their packets, whose rate may have been
	// higher: before a pause). NACKs and reports count packets recovered by a
	// retransmission as received, so on a saturated link the NACK view is high;
	// the next report corrects it. The more pessimistic view that shows loss wins.
	nackCarried := max(sentBps, a.prevSent) * (1 - nackLoss)
	a.prevSent = sentBps
	if a.rangeAt > prevRun && a.rangeLoss > nackLoss {
		// A NACK named a range of the video's packets that lost more: that range is
		// the link's overflow, read within a round trip (onNack).
		nackLoss, nackCarried = a.rangeLoss, a.rangeCarried+a.audioSent(now)
	}
	probing := a.probing(now)
	if !probing {
		// NACKs alone never pause a video (simulcast or single-layer, lowestNeed)
		// that was not stepping up: they
		// count packets a retransmission recovered as lost once, and a range read
		// right after a switch can still be the previous layer's. The lowest layer
		// goes on until a receiver report measures that the link cannot carry it.
		// (A hair above, so the back-off's product is not a rounding below it.)
		nackCarried = max(nackCarried, a.lowestNeed()*(1+1e-9)/lossBackoff)
	}
	loss, carried := max(nackLoss, rrLoss), nackCarried
	switch high := a.lossHigh(now); {
	case fresh && rrLoss > high && nackLoss > high:
		carried = min(rrCarried, nackCarried)
	case fresh && rrLoss > high:
		loss, carried = rrLoss, rrCarried
	case nackLoss > high:
		loss = nackLoss
	default:
		loss = min(loss, lossHigh) // the start's burst: judged by heavy loss only
	}
	a.est.ceiling = a.ceiling()
	if now-a.begun < int64(startGrace) {
		// The fast start's burst (a GOP sent at once) overflows any router's queue:
		// its loss says nothing of the link's rate, what arrived of it does. No
		// back-off below that.
		carried /= lossBackoff
	}
	before := a.est.bps
	a.est.update(now, carried, loss)
	if a.est.bps < before && a.switchingDown(now) {
		// The loss is the overflow of a layer already left: what the new choice
		// needs stays, until its packets alone are reported on.
		a.est.bps = max(a.est.bps, min(before, a.need()*(1+1e-9)))
	}
	if a.est.bps < before && loss > lossHigh && a.est.bps < a.need() {
		// Only a step up whose layers the link no longer carries failed.
		a.upgradeFailed(now)
	} else if before > 0 && a.est.bps > before && a.stepping(now) {
		// A step up is not judged yet (its keyframe and the queue it may fill take a
		// report or a NACK to show): growing on would step up again past a layer
		// the link may not carry.
		a.est.bps = before
	}
	a.r.log.Debug("estimate", "sent_bps", int64(sentBps), "loss", loss, "nack_loss", nackLoss, "report_loss", rrLoss,
		"carried_bps", int64(carried), "estimate_bps", int64(a.est.bps), "rtt", a.rtt(0))
	a.choose(now)
	a.lastMediaBps = mediaBps
	a.budget.setRate(a.est.bps, max(mediaBps, a.chosenBps))
}

// startGrace is how long after the first packet only heavy loss (startLossHigh)
// counts: the fast-start burst (the packets since the last keyframe, sent at once)
// loses some on any link, even loopback.
const (
	startGrace    = 2 * time.Second
	startLossHigh = 0.25
)

// lossHigh is the loss above which the estimate drops at now. a.mu held.
func (a *adapter) lossHigh(now int64) float64 {
	if now-a.begun < int64(startGrace) {
		return startLossHigh
	}
	return lossHigh
}

// received sums the rates the subscriber received its streams at, from their last
// two receiver reports (within 2 s); fresh when a video stream's came since the
// last run (audio alone says little about what the link carries). a.mu held,
// before lastRun moves.
func (a *adapter) received(now int64) (bps float64, fresh bool) {
	for _, d := range a.video {
		if d.rrRecvAt != 0 && now-d.rrRecvAt < int64(2*time.Second) {
			bps += d.rrRecvBps
			fresh = fresh || d.rrRecvAt > a.lastRun
		}
	}
	for _, d := range a.audio {
		if d.rrRecvAt != 0 && now-d.rrRecvAt < int64(2*time.Second) {
			bps += d.rrRecvBps
		}
	}
	return bps, fresh
}

// begin starts the first measuring interval: the subscriber's downtracks start
// sending.
func (a *adapter) begin(now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastRun, a.begun = now, now
	// The start on the best layer is a step up from the lowest: if the link
	// refuses it at once, the lowest layer (or a pause) is kept for a while.
	for i := range a.steps {
		a.steps[i] = layerStep{upAt: now, upFrom: sfu.MaxLayers - 1}
	}
	a.lastBytes, a.lastPkts, a.lastRtx, a.lastRtxPkts = a.bytes.Load(), a.packets.Load(), a.rtxBytes.Load(), a.rtxPkts.Load()
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

// audioRates are what the audio of the subscriber takes: primary, its frames
// (measured, at least a voice Opus stream's worth, with packet overhead), and
// perCopy, what each previous frame RED repeats adds (the frames and their 4-byte
// block headers, in the same packets: no overhead); perCopy is 0 without RED.
// a.mu held.
func (a *adapter) audioRates() (primary, perCopy float64) {
	for i, d := range a.audio {
		bps := max(a.audioRate[i].bps, 40e3)
		primary += bps
		if d.red == nil {
			continue
		}
		frame := 80.0 // a 20 ms voice frame at 32 kbit/s until the source says
		if t := a.audioRate[i].track; t != nil && t.Packets() > 0 {
			frame = float64(t.Bytes()) / float64(t.Packets())
		}
		perCopy += bps * (frame + 4) / (frame + packetOverhead)
	}
	return primary, perCopy
}

// audioSent is what the audio took over the last second, the span NACKed ranges
// cover (nackRangeAge): at the RED distance before the last lowering if it came
// within it. The link carried those copies beside the video: counting only the
// fewer copies of now would take them off what it carried, and lower the
// estimate further at each run of a drop. a.mu held.
func (a *adapter) audioSent(now int64) float64 {
	primary, perCopy := a.audioRates()
	dist := a.redDist
	if now-a.redLowered < int64(nackRangeAge) {
		dist = max(dist, a.redFrom)
	}
	return primary + float64(dist)*perCopy
}

// audioNow is what the audio takes at the RED distance chosen. a.mu held.
func (a *adapter) audioNow() float64 {
	primary, perCopy := a.audioRates()
	return primary + float64(a.redDist)*perCopy
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
	primary, perCopy := a.audioRates()
	return max(1.3*(sum+primary+redDistance*perCopy), 300e3)
}

// choose sets each video downtrack's target: the audio's primary frames first,
// then the video in layout order, each the best layer that fits what remains of
// the estimate (a layer above a video's lowest only with room left for RED's full
// redundancy: the copies come before a better picture, but after the lowest
// one), then RED's distance from what remains (chooseRED); a.mu held.
func (a *adapter) choose(now int64) {
	primary, perCopy := a.audioRates()
	remaining := a.est.bps - primary
	defer func() {
		a.chooseRED(now, remaining, perCopy)
		// What the choice takes, for the retransmission budget.
		a.chosenBps = primary + float64(a.redDist)*perCopy
		for i, w := range a.want {
			if w >= 0 {
				a.chosenBps += a.samples[i][w].bps
			}
		}
	}()
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
			want = a.fit(i, remaining, redDistance*perCopy, now)
			if want == -2 { // no layer measured yet: leave it
				want = a.want[i]
			} else if want >= 0 {
				remaining -= a.samples[i][want].bps
			}
		}
		if a.pin != PinAuto && want >= 0 {
			remaining -= a.samples[i][min(want, sfu.MaxLayers-1)].bps
		}
		if want == a.want[i] {
			if want >= 0 && d.layers.Target() != want {
				// The follower took another layer for this wish (it was missing or
				// silent): it looks again, and takes it once it sends (a publisher
				// back with simulcast, a pinned layer that started late).
				d.layers.SetTarget(want)
			}
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
		if a.pin == PinAuto && want >= 0 && (a.want[i] < 0 || want < a.want[i]) {
			a.steps[i].upAt, a.steps[i].upFrom = now, int64(a.want[i])
		}
		if a.want[i] >= 0 && (want < 0 || want > a.want[i]) {
			a.steps[i].downAt = now
		}
		a.want[i] = want
		d.layers.SetTarget(want)
	}
}

// chooseRED sets the RED distance of the subscriber's audio: the most copies of
// previous frames whose rate fits remaining, what the estimate leaves after the
// audio's frames and the video layers chosen; a distance higher than the current
// one needs upgradeMargin times its copies. Without an estimate (adaptation off,
// or no report yet), the full redundancy. The encoders read it per packet. a.mu
// held.
func (a *adapter) chooseRED(now int64, remaining, perCopy float64) {
	dist := redDistance
	if a.enabled && a.est.bps > 0 {
		dist = 0
		for k := redDistance; k > 0; k-- {
			need := float64(k) * perCopy
			if k > a.redDist {
				need *= upgradeMargin
			}
			if need <= remaining {
				dist = k
				break
			}
		}
	}
	if dist != a.redDist && perCopy > 0 {
		a.r.edge.adaptStats.redChanges.Add(1)
		a.r.log.Debug("RED distance", "distance", dist, "was", a.redDist, "estimate_bps", int64(a.est.bps))
	}
	if dist < a.redDist {
		if now-a.redLowered >= int64(nackRangeAge) {
			a.redFrom = a.redDist
		}
		a.redFrom = max(a.redFrom, a.redDist)
		a.redLowered = now
	}
	a.redDist = dist
	for _, d := range a.audio {
		if d.red != nil {
			d.red.setDistance(dist)
		}
	}
}

// wanted returns the rank asked of video downtrack i's follower (-1 paused).
func (a *adapter) wanted(i int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want[i]
}

// layerStep remembers a video downtrack's last step up, and how far up it may go
// until when after that step failed.
type layerStep struct {
	upAt, upFrom int64 // when it stepped up, and from which rank (-1 paused)
	downAt       int64 // when it was last told to step down or pause
	capUntil     int64
	capRank      int // the best rank allowed until capUntil; MaxLayers: none (paused)
	// Failed resumes of a paused video (and the optimistic start) hold off longer:
	// such a probe sends a whole keyframe and a layer the link could not carry.
	resumeFails    int
	lastResumeFail int64
}

// resumeHoldOff is how long a video whose resume failed stays paused (and a start
// on the best layer that failed stays on the lowest): doubling with each failure
// within resumeFailMemory, up to resumeHoldOffMax.
const (
	resumeHoldOff    = 15 * time.Second
	resumeHoldOffMax = 60 * time.Second
	resumeFailMemory = 2 * time.Minute
)

// upgradeFailWindow: a loss-driven drop this soon after a step up says the step
// was too far.
const upgradeFailWindow = 3 * time.Second

// upgradeFailed runs after a loss-driven drop: a video that stepped up just before
// may not step up again past where it was until the estimate's hold-off ends. The
// estimate alone would let it: it is judged from NACKs and reports that count
// recovered packets as received, and can stay above what the link carries for a
// few seconds, long enough to probe the same layer again. a.mu held.
func (a *adapter) upgradeFailed(now int64) {
	for i := range a.steps {
		st := &a.steps[i]
		if st.upAt == 0 || now-st.upAt > int64(upgradeFailWindow) {
			continue
		}
		st.capRank = int(st.upFrom)
		st.capUntil = max(a.est.probeUntil, now+int64(holdOffMin))
		if st.upFrom < 0 || st.upAt == a.begun {
			if st.upFrom < 0 {
				st.capRank = sfu.MaxLayers
			}
			if now-st.lastResumeFail > int64(resumeFailMemory) {
				st.resumeFails = 0
			}
			st.resumeFails++
			st.lastResumeFail = now
			st.capUntil = max(st.capUntil, now+int64(min(resumeHoldOff<<(st.resumeFails-1), resumeHoldOffMax)))
		}
		st.upAt = 0
		a.r.log.Debug("layer step up failed", "track", a.video[i].want, "back_to", LayerName(int(st.upFrom)),
			"until", time.Duration(st.capUntil-now))
	}
}

// fit returns the best rank of video downtrack i whose bitrate fits remaining, -1
// when none does, -2 when no layer's bitrate is known; a rank above the lowest
// that sends must also leave redundancy (RED's copies) of remaining. a.mu held.
func (a *adapter) fit(i int, remaining, redundancy float64, now int64) int {
	known := false
	st := a.steps[i]
	lowest := -1
	for rank := range sfu.MaxLayers {
		if s := a.samples[i][rank]; s.bps > 0 && layerAlive(s.track, now) {
			lowest = rank
		}
	}
	for rank := range sfu.MaxLayers {
		s := a.samples[i][rank]
		if s.bps == 0 || !layerAlive(s.track, now) {
			continue
		}
		known = true
		if now < st.capUntil && rank < st.capRank {
			continue
		}
		need := s.bps
		if a.want[i] < 0 || rank < a.want[i] {
			need *= upgradeMargin
		}
		if rank != lowest {
			need += redundancy
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
	switches, pauses, refused, redChanges atomic.Uint64
}

// redState returns the RED distance the connection's audio gets; ok is false
// without RED audio (not negotiated, or no audio).
func (a *adapter) redState() (distance int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.audio {
		if d.red != nil {
			return a.redDist, true
		}
	}
	return 0, false
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
	// ByREDDistance counts subscriber connections with RED audio by the number of
	// previous frames each audio packet repeats (0 to 2; fewer when the estimate
	// leaves no room for them); REDChanges counts the changes of that distance.
	ByREDDistance map[int]int
	REDChanges    uint64
}

// AdaptationStats collects the figures of every live subscriber connection.
func (e *Edge) AdaptationStats() AdaptationStats {
	st := AdaptationStats{
		ByLayer:      map[string]int{PinHigh: 0, PinMedium: 0, PinLow: 0, "paused": 0},
		Switches:     e.adaptStats.switches.Load(),
		Pauses:       e.adaptStats.pauses.Load(),
		NACKsRefused: e.adaptStats.refused.Load(),
		REDChanges:   e.adaptStats.redChanges.Load(),
	}
	st.ByREDDistance = make(map[int]int, redDistance+1)
	for d := range redDistance + 1 {
		st.ByREDDistance[d] = 0
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
		if d, ok := r.adapt.redState(); ok {
			st.ByREDDistance[d]++
		}
	}
	return st
}
