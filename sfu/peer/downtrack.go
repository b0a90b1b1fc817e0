package peer

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// receiverStartDelay is how long a downtrack waits after binding before sending.
const receiverStartDelay = 20 * time.Millisecond

// downTrack sends one session track to one subscriber. It is a pion TrackLocal whose
// packets come from a bounded sfu.Queue filled by the track and are written by an
// egress worker, so a slow subscriber never slows the publisher or anyone else. Which
// track feeds it can change (the trainer's publication ended and a new one began);
// sequence numbers and timestamps stay continuous for the receiver.
type downTrack struct {
	r     *Resource
	kind  sfu.Kind
	want  string // session track name, e.g. "trainer/video"
	mime  string // the codec the downtrack binds with: H.264 or Opus
	queue *sfu.Queue
	stats *sfu.Stats

	sender *webrtc.RTPSender

	bindOnce sync.Once
	bound    chan struct{}
	ssrc     uint32
	writer   webrtc.TrackLocalWriter
	// negotiated maps each codec the subscriber accepted on this section (canonical
	// mime) to its payload type and clock rate; written once before bound closes.
	negotiated map[string]negotiatedCodec
	// red makes RED packets (red.go) for an audio downtrack whose subscriber
	// accepted audio/red; nil otherwise. Set before bound closes.
	red *redEncoder

	// follow feeds queue: a Follower for audio, for video a LayerFollower (layers
	// is the same follower) whose layer the subscriber's estimate chooses.
	follow interface {
		sfu.Attacher
		Track() *sfu.Track
	}
	layers *sfu.LayerFollower

	mu sync.Mutex // guards rw
	rw sfu.Rewriter

	// The source codec's payload type and clock, and the layer being sent; the
	// egress worker only.
	pt        uint8
	clockRate uint32
	layer     uint8

	hdr rtp.Header // reused by the egress worker

	egressGate // its egress worker and the queue's wake-ups (egress.go)

	// Sender report state (RFC 3550 §6.4.1); the egress worker only.
	srPackets, srOctets uint32
	srTS                uint32 // RTP timestamp of the last frame sent
	srArrival           int64  // sfu.Nanotime at which that frame reached the SFU
	srNext              int64  // when the next report is due

	// kfTS is the source timestamp of the last keyframe sent: its packets are
	// retransmitted first (written by the egress worker, read by handleRTCP).
	kfTS atomic.Uint32
	// handleRTCP's (one goroutine at a time): recent retransmissions.
	rtx rtxRing
	// sendTimes holds when each recent output sequence number was sent (see
	// sendStamp), so a receiver report's range of sequence numbers maps to the time
	// it took to send; nil with adaptation off. Written by the egress worker.
	sendTimes []atomic.Int64
	// switchedAt is when the egress worker sent the first packet of a new layer
	// (the first picture included), switches how often it did.
	switchedAt atomic.Int64
	switches   atomic.Uint32
	// firstSeq is 1<<16 | the first output sequence number sent (0 before).
	firstSeq atomic.Uint32
	// The previous receiver report (guarded by the adapter's lock): its arrival,
	// extended highest sequence number and cumulative loss; and the rate the
	// subscriber received this stream at, measured from rrRateHighest and
	// rrRateLost, the report that began the measuring range: a range spans reports
	// until it holds enough packets (rrMinPackets) to measure.
	rrAt          int64
	rrHighest     uint32
	rrLost        int32
	rrRateHighest uint32
	rrRateLost    int32
	rrRecvBps     float64
	rrRecvAt      int64
	// rrPacketSize is the mean payload of the stream's packets (from the source
	// track's counters; kept while none is forwarded).
	rrPacketSize float64
}

// srInterval is the time between sender reports to a subscriber.
const srInterval = time.Second

type negotiatedCodec struct {
	pt        uint8
	clockRate uint32
}

// playable reports whether a subscriber can receive a track of that codec.
func (d *downTrack) playable(mime string) bool {
	if d.kind == sfu.KindVideo {
		return mime == sfu.MimeH264
	}
	return mime == sfu.MimeOpus || mime == sfu.MimePCMU || mime == sfu.MimePCMA
}

func newDownTrack(r *Resource, w *egressWorker, kind sfu.Kind, want string, queueSize int, stats *sfu.Stats) *downTrack {
	mime := sfu.MimeOpus
	if kind == sfu.KindVideo {
		mime = sfu.MimeH264
	}
	d := &downTrack{r: r, kind: kind, want: want, mime: mime, stats: stats, bound: make(chan struct{})}
	d.worker = w
	d.queue = sfu.NewQueue(sfu.QueueOptions{Size: queueSize, Kind: kind, Stats: stats, Notify: d.queued})
	if kind == sfu.KindVideo {
		d.layers = sfu.NewLayerFollower(want, d.queue, d.accepts)
		d.follow = d.layers
	} else {
		// AAC from a studio encoder, or G.711, is played through its Opus
		// variant (package transcode) once there is one.
		d.follow = sfu.NewVariantFollower(want, d.queue, d.accepts)
	}
	return d
}

// ID implements webrtc.TrackLocal.
func (d *downTrack) ID() string { return strings.ReplaceAll(d.want, "/", "-") }

// RID implements webrtc.TrackLocal.
func (d *downTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal: all downtracks of a subscriber share one
// stream so the browser synchronises audio with video.
func (d *downTrack) StreamID() string { return "lectern" }

// Kind implements webrtc.TrackLocal.
func (d *downTrack) Kind() webrtc.RTPCodecType {
	if d.kind == sfu.KindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// Bind implements webrtc.TrackLocal; pion calls it once the transport is up. It picks
// the negotiated codec: for H.264 packetization-mode 1, constrained baseline first.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var chosen *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, d.mime) {
			continue
		}
		if d.kind == sfu.KindVideo && !packetizationMode1(c.SDPFmtpLine) {
			continue
		}
		if chosen == nil || strings.EqualFold(sfu.FmtpParam(c.SDPFmtpLine, "profile-level-id"), "42e01f") {
			c := c
			chosen = &c
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	var red *redEncoder
	if d.kind == sfu.KindAudio {
		*chosen, red = bindRED(ctx.CodecParameters(), *chosen)
	}
	d.bindOnce.Do(func() {
		d.red = red
		d.ssrc = uint32(ctx.SSRC())
		d.writer = ctx.WriteStream()
		d.negotiated = map[string]negotiatedCodec{}
		for _, c := range ctx.CodecParameters() {
			mime := canonicalMime(c.MimeType)
			if _, ok := d.negotiated[mime]; ok && mime != sfu.MimeH264 {
				continue
			}
			if mime == sfu.MimeH264 && c.PayloadType != chosen.PayloadType {
				continue
			}
			d.negotiated[mime] = negotiatedCodec{pt: uint8(c.PayloadType), clockRate: c.ClockRate}
		}
		close(d.bound)
	})
	return *chosen, nil
}

// Unbind implements webrtc.TrackLocal.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error { return nil }

// accepts is the follower's vetting of a source track: one whose codec no WebRTC
// subscriber can play is not attached.
func (d *downTrack) accepts(t *sfu.Track) bool {
	if !d.playable(t.Codec().MimeType) {
		d.r.log.Info("track not playable by WebRTC subscribers; its Opus variant plays when there is one", "track", t.Name(), "codec", t.Codec().MimeType)
		return false
	}
	return true
}

// detach stops following the session track and drops what is queued.
func (d *downTrack) detach() {
	d.follow.Stop()
	d.queue.Drain()
}

// start lets the downtrack send: the connection is up and the receiver had a
// moment to open its streams (see Subscribe). It returns false when pion never
// bound the downtrack (the subscriber refused its codec).
func (d *downTrack) start() bool {
	select {
	case <-d.bound:
	default:
		return false
	}
	d.started.Store(true)
	d.notifyWorker() // anything queued before
	return true
}

// queued is the queue's Notify: a packet is waiting (see egressGate.onQueued).
func (d *downTrack) queued(item sfu.QueueItem, queued int) { d.onQueued(d, d.kind, item, queued) }

// sendBurst writes up to n queued packets, on the downtrack's egress worker. It
// returns false when the queue is empty.
func (d *downTrack) sendBurst(n int) bool {
	for range n {
		if !d.sendOne() {
			return false
		}
	}
	return true
}

// sendOne writes the next queued packet. It returns false when the queue is empty.
func (d *downTrack) sendOne() bool {
	item, ok := d.queue.TryNext()
	if !ok {
		return false
	}
	p := item.Packet
	if d.r.ctx.Err() != nil {
		p.Release()
		d.queue.Drain()
		return false
	}
	if item.Resync != sfu.ResyncSwitch && item.Layer != d.layer {
		// Queued by the previous layer's publisher just after a switch.
		p.Release()
		return true
	}
	d.mu.Lock()
	switch item.Resync {
	case sfu.ResyncDrop:
		d.rw.ResyncSeq()
	case sfu.ResyncSwitch:
		d.layer = item.Layer
		d.rw.Resync()
		d.switchedAt.Store(sfu.Nanotime())
		d.switches.Add(1)
		var c negotiatedCodec
		ok := false
		if t := d.follow.Track(); t != nil {
			c, ok = d.negotiated[t.Codec().MimeType]
		}
		d.pt, d.clockRate = c.pt, c.clockRate
		if !ok {
			d.clockRate = 0 // the subscriber did not accept this codec
		}
	}
	if d.clockRate == 0 {
		d.mu.Unlock()
		p.Release()
		return true
	}
	now := sfu.Nanotime()
	seq, ts := d.rw.Rewrite(p.Header.SequenceNumber, p.Header.Timestamp, d.clockRate, now)
	d.mu.Unlock()
	d.hdr = rtp.Header{
		Version: 2, Marker: p.Header.Marker, PayloadType: d.pt,
		SequenceNumber: seq, Timestamp: ts, SSRC: d.ssrc,
	}
	payload := d.encodeRED(p.Payload, item.Retransmission)
	written, err := d.writer.WriteRTP(&d.hdr, payload)
	n, arrival, key, srcTS := len(payload), p.ArrivalNanos, p.KeyframeStart, p.Header.Timestamp
	p.Release()
	if err != nil || written == 0 {
		return true // closed transport: the resource is going away
	}
	d.stats.PacketsOut.Add(1)
	d.stats.BytesOut.Add(uint64(n))
	d.r.adapt.sent(n, item.Retransmission)
	if d.sendTimes != nil && !item.Retransmission {
		d.sendTimes[int(seq)%len(d.sendTimes)].Store(sendStamp(now, seq))
	}
	if key && !item.Retransmission {
		d.kfTS.Store(srcTS)
	}
	d.srPackets++
	if d.srPackets == 1 {
		d.firstSeq.Store(1<<16 | uint32(seq))
	}
	d.srOctets += uint32(n)
	if ts != d.srTS || d.srPackets == 1 {
		d.srTS, d.srArrival = ts, arrival
	}
	if now >= d.srNext {
		d.srNext = now + int64(srInterval)
		d.sendReport(now)
	}
	return true
}

// sendReport sends a sender report: the RTP clock of this stream against wall-clock
// time, which receivers use to play audio and video in sync, and the counts.
// The mapping is taken at the packets' arrival in the SFU, like the publisher's
// own, so time spent queued here does not skew it. The SFU makes its own reports
// rather than run pion's report interceptor: that one takes a lock and the time
// on every packet, and keeps a goroutine per connection.
func (d *downTrack) sendReport(now int64) {
	rtpNow := d.srTS + uint32(uint64(max(now-d.srArrival, 0))*uint64(d.clockRate)/uint64(time.Second))
	sr := rtcp.SenderReport{
		SSRC: d.ssrc, NTPTime: sfu.NTPTime(time.Now()), RTPTime: rtpNow,
		PacketCount: d.srPackets, OctetCount: d.srOctets,
	}
	_ = d.r.pc.WriteRTCP([]rtcp.Packet{&sr}) // fails only once the connection is closed
}

// handleRTCP handles one RTCP packet from the subscriber about this downtrack's
// stream, on the connection's SRTCP goroutine (rtcpsink.go): NACKs are answered
// from the track's cache within the retransmission budget, PLI/FIR become
// (coalesced) keyframe requests, receiver reports and NACKs feed the subscriber's
// estimate. Nothing here blocks.
func (d *downTrack) handleRTCP(buf []byte) {
	if d.r.ctx.Err() != nil {
		return
	}
	pkts, err := rtcp.Unmarshal(buf)
	if err != nil {
		return
	}
	now := sfu.Nanotime()
	for _, pkt := range pkts {
		switch pkt := pkt.(type) {
		case *rtcp.TransportLayerNack:
			for _, pair := range pkt.Nacks {
				pair.Range(func(seq uint16) bool {
					d.retransmit(seq, now)
					return true
				})
			}
			d.r.adapt.onNack(d, now, pkt.Nacks)
		case *rtcp.ReceiverReport:
			d.receiverReports(now, pkt.Reports)
		case *rtcp.SenderReport: // a subscriber that also sends reports this way
			d.receiverReports(now, pkt.Reports)
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			if t := d.follow.Track(); t != nil {
				t.RequestKeyframe()
			}
		}
	}
}

// receiverReports takes the report blocks about this downtrack's stream.
func (d *downTrack) receiverReports(now int64, reports []rtcp.ReceptionReport) {
	for _, rr := range reports {
		if rr.SSRC == d.ssrc {
			d.r.adapt.onReport(d, now, rr)
		}
	}
}

// rrInterval takes a receiver report: it returns how many packets the receiver
// expected since its previous report (the weight of its loss fraction), and
// measures the rate it received them at (rrRecvBps, rrRate). The adapter's lock is
// held.
func (d *downTrack) rrInterval(now int64, rr rtcp.ReceptionReport) float64 {
	prevAt, prevHighest, prevLost := d.rrAt, d.rrHighest, d.rrLost
	d.rrAt, d.rrHighest, d.rrLost = now, rr.LastSequenceNumber, int32(rr.TotalLost)
	if prevAt == 0 {
		// The first report covers the stream from its first packet.
		first := d.firstSeq.Load()
		if first == 0 {
			return 0
		}
		prevHighest = rr.LastSequenceNumber - uint32(uint16(rr.LastSequenceNumber)-uint16(first)) - 1
		d.rrRateHighest, d.rrRateLost = prevHighest, 0
	}
	expected := int32(rr.LastSequenceNumber - prevHighest)
	if expected <= 0 {
		return 0
	}
	if from, ok := d.sentAt(uint16(prevHighest + 1)); ok && from < d.switchedAt.Load() || !ok && d.switches.Load() > 1 {
		// The report covers packets of the layer before a switch: its loss and
		// rate are about a rate that is no longer sent (reports lag a round trip
		// and an interval), and the choice has already moved.
		d.rrRateHighest, d.rrRateLost = rr.LastSequenceNumber, int32(rr.TotalLost)
		return 0
	}
	d.rrRate(now, rr, prevHighest, prevLost)
	return float64(expected)
}

// rrRate measures the rate the subscriber received the stream at from the report
// that began the measuring range to rr: the packets that arrived (retransmissions
// included) at the stream's mean packet size, over the time from the sending of
// the range's first packet to its last's, not the time between the reports (the
// stream may have paused or resumed meanwhile). A range too short to measure is
// carried on to the next report: a receiver that reports with every NACK
// (Chromium's reduced-size RTCP on a lossy link reports every few tens of
// milliseconds) would otherwise never give one, and the estimate would judge the
// link by its audio alone. A range that began before a layer switch begins again
// at the previous report (prevHighest, prevLost), whose range is after it. The
// adapter's lock is held.
func (d *downTrack) rrRate(now int64, rr rtcp.ReceptionReport, prevHighest uint32, prevLost int32) {
	from, ok1 := d.sentAt(uint16(d.rrRateHighest + 1))
	if ok1 && from < d.switchedAt.Load() {
		d.rrRateHighest, d.rrRateLost = prevHighest, prevLost
		from, ok1 = d.sentAt(uint16(d.rrRateHighest + 1))
	}
	expected := int32(rr.LastSequenceNumber - d.rrRateHighest)
	if expected <= 0 || !ok1 {
		// Nothing new, or a range begun too long ago to time: start again here.
		d.rrRateHighest, d.rrRateLost = rr.LastSequenceNumber, int32(rr.TotalLost)
		return
	}
	to, ok2 := d.sentAt(uint16(rr.LastSequenceNumber))
	span := to - from
	if !ok2 || expected < rrMinPackets || span < int64(100*time.Millisecond) {
		return
	}
	received := max(expected-(int32(rr.TotalLost)-d.rrRateLost), 0)
	if t := d.follow.Track(); t != nil && t.Packets() > 0 {
		d.rrPacketSize = float64(t.Bytes()) / float64(t.Packets())
	}
	d.rrRecvBps = float64(received) * (d.rrPacketSize + packetOverhead) * 8 / (float64(span) / float64(time.Second))
	d.rrRecvAt = now
	d.rrRateHighest, d.rrRateLost = rr.LastSequenceNumber, int32(rr.TotalLost)
}

// rrMinPackets is the fewest packets a measuring range of receiver reports needs.
const rrMinPackets = 10

// sendStamp packs a send time (sfu.Nanotime, in 1.024 µs units: 48 bits last
// nine years) with the sequence number it is for.
func sendStamp(now int64, seq uint16) int64 { return now>>10<<16 | int64(seq) }

// sentAt returns when output sequence number seq was sent, if it is recent.
func (d *downTrack) sentAt(seq uint16) (int64, bool) {
	if d.sendTimes == nil {
		return 0, false
	}
	v := d.sendTimes[int(seq)%len(d.sendTimes)].Load()
	if v == 0 || uint16(v) != seq {
		return 0, false
	}
	return v >> 16 << 10, true
}

func (d *downTrack) retransmit(outSeq uint16, now int64) {
	a := d.r.adapt
	var e *rtxEntry
	if a.enabled {
		if d.rtx == nil {
			d.rtx = make(rtxRing, rtxRingSize(d.kind))
		}
		e = d.rtx.entry(outSeq)
		if !e.nacked {
			e.nacked = true
			a.nacked.Add(1)
		}
		// A paused video's packets are no use to the receiver: it gets none.
		if !e.due(now, a.rtt(rtxDefaultRTT)) || d.layers != nil && d.layers.Target() < 0 {
			d.r.edge.adaptStats.refused.Add(1)
			return
		}
	}
	t := d.follow.Track()
	d.mu.Lock()
	in, ok := d.rw.Invert(outSeq)
	d.mu.Unlock()
	if t == nil || !ok {
		d.stats.NACKsMissed.Add(1)
		return
	}
	p := t.Retransmit(in)
	if p == nil {
		d.stats.NACKsMissed.Add(1)
		return
	}
	if e != nil {
		priority := d.kind == sfu.KindAudio || p.Header.Timestamp == d.kfTS.Load()
		if now-p.ArrivalNanos > int64(rtxMaxAgeFor(a.rtt(0))) || !a.allowRetransmit(now, len(p.Payload), priority) {
			p.Release()
			d.r.edge.adaptStats.refused.Add(1)
			return
		}
		e.count++
		e.sent = now
	}
	if d.queue.Retransmit(p, t.Layer()) {
		d.stats.NACKsAnswered.Add(1)
	}
}

// rtxRingSize covers about a second of packets of a kind at the bitrates Lectern
// forwards.
func rtxRingSize(k sfu.Kind) int {
	if k == sfu.KindAudio {
		return 64
	}
	return 512
}
