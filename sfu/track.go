package sfu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Kind is a track's media kind.
type Kind uint8

// Media kinds.
const (
	KindAudio Kind = iota + 1
	KindVideo
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	}
	return "unknown"
}

// Codec describes a track's media format, as negotiated with its publisher.
type Codec struct {
	MimeType  string // e.g. "video/H264", "audio/opus"
	ClockRate uint32
	Channels  uint16
	Fmtp      string // SDP fmtp line, e.g. "packetization-mode=1;profile-level-id=42e01f"
}

// Common codec mime types.
const (
	MimeH264 = "video/H264"
	MimeOpus = "audio/opus"
	MimePCMU = "audio/PCMU"
	MimePCMA = "audio/PCMA"
	MimeAAC  = "audio/MPEG4-GENERIC"
)

// Sink consumes a track's packets.
type Sink interface {
	// WriteRTP runs on the publisher's read goroutine with the track's lock held, once
	// per packet. It must not block and must not call back into the track. pkt is
	// shared read-only with every other sink; a sink that keeps it after returning
	// calls pkt.Retain and later pkt.Release. A returned error detaches the sink.
	WriteRTP(pkt *Packet) error
}

// TrackEnder is implemented by sinks that want to know when their track ends (its
// publication was removed). TrackEnded runs once, without the track's lock, after
// the sink has been detached.
type TrackEnder interface {
	TrackEnded(t *Track)
}

// Errors returned by tracks.
var (
	ErrTrackClosed    = errors.New("track closed")
	ErrPacketTooLarge = fmt.Errorf("rtp payload larger than %d bytes", MaxPayloadSize)
)

// keyframeInterval is the minimum time between two keyframe requests sent upstream:
// twenty classrooms losing the same packet must not make the trainer's encoder send
// twenty keyframes.
const keyframeInterval = 500 * time.Millisecond

// Track is one stream of RTP packets with a fixed codec, owned by a session under a
// stable name (e.g. "trainer/video"). Sources come and go (a publisher reconnects);
// the track and its sinks stay.
type Track struct {
	name  string
	base  string // name without the layer suffix
	layer int    // simulcast rank: 0 the best (and only, for a single-layer source)
	kind  Kind
	codec Codec
	stats *Stats
	// derived: fed by the server (Publication.DerivedTrack), not by the
	// publication's source; Lease.RemoveTracks leaves it alone. Set before the
	// track is shown to anyone.
	derived bool

	mu        sync.Mutex // held for each packet written, and to attach or detach sinks
	sinks     []Sink
	rewriter  Rewriter
	cache     packetCache
	gop       gopCache
	lastKeyTS uint32
	haveKey   bool
	closed    bool
	lastSSRC  uint32

	requestKeyframe atomic.Pointer[func()]
	lastKeyRequest  atomic.Int64 // Nanotime of the last upstream request
	packets         atomic.Uint64
	bytes           atomic.Uint64 // payload bytes written, for layer bitrates
	lastArrival     atomic.Int64  // Nanotime of the last packet written
}

// TrackOptions tunes a track's caches.
type TrackOptions struct {
	// CacheSize is the number of recent packets kept for retransmission. It defaults
	// to 1024 for video (about 4 s at 2.5 Mbit/s) and 256 for audio.
	CacheSize int
	// GOPLimit bounds the packets kept since the last keyframe for fast start. It
	// defaults to 1024 (about 3.5 s at 2.5 Mbit/s); consumers' queues are sized to
	// take such a burst.
	GOPLimit int
}

func newTrack(name string, kind Kind, codec Codec, stats *Stats, o TrackOptions) *Track {
	if o.CacheSize <= 0 {
		o.CacheSize = 1024
		if kind == KindAudio {
			o.CacheSize = 256
		}
	}
	if o.GOPLimit <= 0 {
		o.GOPLimit = 1024
	}
	base, layer := SplitLayer(name)
	t := &Track{name: name, base: base, layer: layer, kind: kind, codec: codec, stats: stats, cache: newPacketCache(o.CacheSize)}
	t.gop.limit = o.GOPLimit
	return t
}

// Name returns the track's stable name within its session, e.g. "trainer/video".
func (t *Track) Name() string { return t.name }

// Base returns the name without the layer suffix: the same for every simulcast
// layer of one source's stream ("trainer/video").
func (t *Track) Base() string { return t.base }

// Layer returns the track's simulcast rank: 0 for the best layer and for a
// single-layer stream, 1 and 2 for lower ones (see [LayerName]).
func (t *Track) Layer() int { return t.layer }

// Bytes returns the payload bytes written so far; consumers sample it to measure
// the track's bitrate.
func (t *Track) Bytes() uint64 { return t.bytes.Load() }

// LastArrival returns the [Nanotime] of the last packet written, 0 before any.
func (t *Track) LastArrival() int64 { return t.lastArrival.Load() }

// Kind returns audio or video.
func (t *Track) Kind() Kind { return t.kind }

// Codec returns the codec the track carries.
func (t *Track) Codec() Codec { return t.codec }

// Stats returns the counters the track reports to.
func (t *Track) Stats() *Stats { return t.stats }

// Packets returns the number of packets written so far.
func (t *Track) Packets() uint64 { return t.packets.Load() }

// SetSource declares that a new source feeds the track from now on: its first packet
// continues the sequence and timestamp space of the previous source. requestKeyframe
// (which may be nil, e.g. for an RTSP camera) is how the track asks this source for a
// keyframe; it runs on a consumer's goroutine and must not block.
func (t *Track) SetSource(requestKeyframe func()) {
	t.mu.Lock()
	t.rewriter.Resync()
	t.mu.Unlock()
	if requestKeyframe == nil {
		t.requestKeyframe.Store(nil)
	} else {
		t.requestKeyframe.Store(&requestKeyframe)
	}
}

// WriteRTP forwards one packet from the current source to every sink. It is called
// by the source's read goroutine; in is not retained. It does not allocate in the
// steady state.
func (t *Track) WriteRTP(in *rtp.Packet) error {
	if len(in.Payload) > MaxPayloadSize {
		t.stats.PacketsRejected.Add(1)
		return ErrPacketTooLarge
	}
	if len(in.Payload) == 0 {
		// Padding only (bandwidth probes): not forwarded, and the next packet closes
		// the gap so consumers do not ask for packets that never existed.
		t.mu.Lock()
		t.rewriter.ResyncSeq()
		t.mu.Unlock()
		return nil
	}
	p := newPacket()
	now := Nanotime()
	p.Payload = p.buf[:copy(p.buf[:], in.Payload)]
	p.ArrivalNanos = now
	keyframe := t.kind == KindVideo && t.codec.MimeType == MimeH264 && H264IsKeyframe(p.Payload)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		p.Release()
		return ErrTrackClosed
	}
	if in.SSRC != t.lastSSRC {
		if t.lastSSRC != 0 {
			t.rewriter.Resync()
		}
		t.lastSSRC = in.SSRC
	}
	seq, ts := t.rewriter.Rewrite(in.SequenceNumber, in.Timestamp, t.codec.ClockRate, now)
	p.Header = rtp.Header{
		Version:        2,
		Marker:         in.Marker,
		PayloadType:    in.PayloadType,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           in.SSRC,
	}
	if keyframe && (!t.haveKey || ts != t.lastKeyTS) {
		p.KeyframeStart = true
		t.haveKey, t.lastKeyTS = true, ts
		t.gop.reset(p)
	} else if t.kind == KindVideo {
		t.gop.add(p)
	}
	t.cache.put(p) // the cache takes over the reference newPacket gave us
	t.fanOut(p)
	t.mu.Unlock()

	t.packets.Add(1)
	t.bytes.Add(uint64(len(in.Payload)))
	t.lastArrival.Store(now)
	t.stats.PacketsIn.Add(1)
	t.stats.BytesIn.Add(uint64(len(in.Payload)))
	return nil
}

// fanOut hands p to every sink; t.mu is held.
func (t *Track) fanOut(p *Packet) {
	for i := 0; i < len(t.sinks); {
		if err := t.sinks[i].WriteRTP(p); err != nil {
			t.removeSinkAt(i)
			continue
		}
		i++
	}
}

func (t *Track) removeSinkAt(i int) {
	// Copy so a slice handed out earlier is never modified behind its holder.
	sinks := make([]Sink, 0, len(t.sinks)-1)
	sinks = append(sinks, t.sinks[:i]...)
	t.sinks = append(sinks, t.sinks[i+1:]...)
}

// AddSink attaches s. A video sink first receives the packets cached since the last
// keyframe (a fast start), or, when there is none, the track asks its source for a
// keyframe. The returned function detaches s; it is idempotent and must not be called
// from s.WriteRTP.
func (t *Track) AddSink(s Sink) (remove func()) { return t.addSink(s, true) }

// AddSinkLive attaches s without the fast start: it gets packets from now on and
// the track asks its source for a keyframe. A consumer switching layers uses it:
// the cached packets since the last keyframe are old, and would arrive as a burst
// that the receiver plays late.
func (t *Track) AddSinkLive(s Sink) (remove func()) { return t.addSink(s, false) }

func (t *Track) addSink(s Sink, fastStart bool) (remove func()) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		if e, ok := s.(TrackEnder); ok {
			e.TrackEnded(t)
		}
		return func() {}
	}
	needKeyframe := false
	if t.kind == KindVideo {
		if !fastStart {
			needKeyframe = true
		} else if len(t.gop.pkts) > 0 {
			for _, p := range t.gop.pkts {
				if s.WriteRTP(p) != nil {
					break
				}
			}
			needKeyframe = !t.gop.complete
		} else {
			needKeyframe = true
		}
	}
	t.sinks = append(t.sinks[:len(t.sinks):len(t.sinks)], s)
	t.mu.Unlock()
	if needKeyframe {
		t.RequestKeyframe()
	}
	var once sync.Once
	return func() { once.Do(func() { t.removeSink(s) }) }
}

func (t *Track) removeSink(s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.sinks {
		if x == s {
			t.removeSinkAt(i)
			return
		}
	}
}

// Sinks returns the number of attached sinks.
func (t *Track) Sinks() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sinks)
}

// RequestKeyframe asks the current source for a keyframe, at most once per 500 ms
// however many consumers ask. Safe for concurrent use; never blocks.
func (t *Track) RequestKeyframe() {
	if t.kind != KindVideo {
		return
	}
	now := Nanotime()
	last := t.lastKeyRequest.Load()
	if last != 0 && now-last < int64(keyframeInterval) {
		return
	}
	if !t.lastKeyRequest.CompareAndSwap(last, now) {
		return
	}
	if fn := t.requestKeyframe.Load(); fn != nil {
		t.stats.KeyframeRequests.Add(1)
		(*fn)()
	}
}

// Retransmit returns the cached packet with the given track sequence number,
// retained for the caller (who must Release it), or nil when it is no longer cached.
func (t *Track) Retransmit(seq uint16) *Packet {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cache.get(seq)
}

// close ends the track: sinks are detached and told, caches freed.
func (t *Track) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	sinks := t.sinks
	t.sinks = nil
	t.cache.clear()
	t.gop.clear()
	t.mu.Unlock()
	t.requestKeyframe.Store(nil)
	for _, s := range sinks {
		if e, ok := s.(TrackEnder); ok {
			e.TrackEnded(t)
		}
	}
}

// Closed reports whether the track has ended.
func (t *Track) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}
