package peer

import (
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// receiverStartDelay is how long a downtrack waits after binding before sending.
const receiverStartDelay = 20 * time.Millisecond

// downTrack sends one session track to one subscriber. It is a pion TrackLocal whose
// packets come from a bounded sfu.Queue filled by the track, written by its own
// goroutine, so a slow subscriber never slows the publisher or anyone else. Which
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

	mu      sync.Mutex // guards track, srcMime, remove, rw
	track   *sfu.Track
	srcMime string
	remove  func()
	rw      sfu.Rewriter

	// The source codec's payload type and clock; writeLoop only.
	pt        uint8
	clockRate uint32

	hdr rtp.Header // reused by writeLoop
}

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

func newDownTrack(r *Resource, kind sfu.Kind, want string, queueSize int, stats *sfu.Stats) *downTrack {
	mime := sfu.MimeOpus
	if kind == sfu.KindVideo {
		mime = sfu.MimeH264
	}
	return &downTrack{
		r: r, kind: kind, want: want, mime: mime, stats: stats, bound: make(chan struct{}),
		queue: sfu.NewQueue(sfu.QueueOptions{Size: queueSize, Kind: kind, Stats: stats}),
	}
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
		if chosen == nil || strings.Contains(c.SDPFmtpLine, "profile-level-id=42e01f") {
			c := c
			chosen = &c
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	d.bindOnce.Do(func() {
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

// attach makes t the downtrack's source, replacing the previous one.
func (d *downTrack) attach(t *sfu.Track) {
	if !d.playable(t.Codec().MimeType) {
		d.r.log.Info("track not playable by WebRTC subscribers", "track", t.Name(), "codec", t.Codec().MimeType)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.track == t {
		return
	}
	if d.remove != nil {
		d.remove()
	}
	d.queue.MarkSwitch()
	d.queue.SetKeyframeRequester(t.RequestKeyframe)
	d.track = t
	d.srcMime = t.Codec().MimeType
	d.remove = t.AddSink(d.queue)
}

func (d *downTrack) detach() {
	d.mu.Lock()
	if d.remove != nil {
		d.remove()
		d.remove = nil
	}
	d.track = nil
	d.mu.Unlock()
	d.queue.Drain()
}

// writeLoop sends queued packets until the resource closes.
func (d *downTrack) writeLoop() {
	// pion binds an answerer's tracks before ICE and DTLS complete, and drops what
	// is written until SRTP is ready: wait for the connection. Then a receiver opens
	// its SRTP read streams just after its side of the DTLS handshake completes;
	// pion-based receivers (hardware decoders' gateways, the load tool) drop what
	// arrives before. Holding the first packets back a moment keeps the fast-start
	// keyframe from being lost.
	for _, ch := range []<-chan struct{}{d.bound, d.r.connected} {
		select {
		case <-ch:
		case <-d.r.ctx.Done():
			return
		}
	}
	select {
	case <-time.After(receiverStartDelay):
	case <-d.r.ctx.Done():
		return
	}
	for {
		item, ok := d.queue.Next(d.r.ctx)
		if !ok {
			return
		}
		p := item.Packet
		d.mu.Lock()
		switch item.Resync {
		case sfu.ResyncDrop:
			d.rw.ResyncSeq()
		case sfu.ResyncSwitch:
			d.rw.Resync()
			c, ok := d.negotiated[d.srcMime]
			d.pt, d.clockRate = c.pt, c.clockRate
			if !ok {
				d.clockRate = 0 // the subscriber did not accept this codec
			}
		}
		if d.clockRate == 0 {
			d.mu.Unlock()
			p.Release()
			continue
		}
		seq, ts := d.rw.Rewrite(p.Header.SequenceNumber, p.Header.Timestamp, d.clockRate, sfu.Nanotime())
		d.mu.Unlock()
		d.hdr = rtp.Header{
			Version: 2, Marker: p.Header.Marker, PayloadType: d.pt,
			SequenceNumber: seq, Timestamp: ts, SSRC: d.ssrc,
		}
		written, err := d.writer.WriteRTP(&d.hdr, p.Payload)
		n := len(p.Payload)
		p.Release()
		if err != nil || written == 0 {
			continue // closed transport: the resource is going away
		}
		d.stats.PacketsOut.Add(1)
		d.stats.BytesOut.Add(uint64(n))
		// Yield after each packet: every downtrack of a track is woken by the same
		// burst (a keyframe is dozens of packets), and without this the scheduler lets
		// each send its whole burst in turn, so the last subscriber's first packet
		// waits behind everyone else's frame. Round-robin per packet bounds that wait.
		runtime.Gosched()
	}
}

// rtcpLoop handles the subscriber's feedback: NACKs are answered from the track's
// cache, PLI/FIR become (coalesced) keyframe requests.
func (d *downTrack) rtcpLoop() {
	buf := make([]byte, 1500)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.TransportLayerNack:
				for _, pair := range pkt.Nacks {
					pair.Range(func(seq uint16) bool {
						d.retransmit(seq)
						return true
					})
				}
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.mu.Lock()
				t := d.track
				d.mu.Unlock()
				if t != nil {
					t.RequestKeyframe()
				}
			}
		}
	}
}

func (d *downTrack) retransmit(outSeq uint16) {
	d.mu.Lock()
	t := d.track
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
	if d.queue.Retransmit(p) {
		d.stats.NACKsAnswered.Add(1)
	}
}
