package recorder

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"lectern/sfu"
)

// queueSize is the recorder's per-track sfu.Queue size: about four seconds of
// 2.5 Mbit/s video, so a slow disk flush does not drop video.
const queueSize = 1024

// drainWait bounds how long a finished track's reader waits for packets still
// queued (they are all queued already when the track ends).
const drainWait = 20 * time.Millisecond

// recTrack is one sfu track being recorded: its sink (a Queue) and the goroutine
// that turns its packets into access units.
type recTrack struct {
	rec   *recording
	t     *sfu.Track
	local string     // "video", "screen", "audio"
	aac   *aacFormat // AAC tracks only
	queue *sfu.Queue
	// ctx is done when the track ended or was detached (or the recorder stopped
	// hard); the reader then consumes what is queued and says it is done.
	ctx    context.Context
	cancel context.CancelFunc

	endOnce  sync.Once
	mu       sync.Mutex
	remove   func()
	detached bool
}

// WriteRTP implements sfu.Sink; it runs on the publisher's goroutine and never
// blocks (the queue drops when full, video until the next keyframe).
func (rt *recTrack) WriteRTP(p *sfu.Packet) error { return rt.queue.WriteRTP(p) }

// TrackEnded implements sfu.TrackEnder: the publication was removed. The reader
// stops once the queued packets are consumed.
func (rt *recTrack) TrackEnded(*sfu.Track) { rt.finish() }

// finish accounts the end of the track once.
func (rt *recTrack) finish() { rt.endOnce.Do(func() { rt.rec.r.trackEnded(rt) }) }

// setRemove records the function detaching the sink (or calls it, when the track
// was detached meanwhile).
func (rt *recTrack) setRemove(fn func()) {
	rt.mu.Lock()
	if rt.detached {
		rt.mu.Unlock()
		fn()
		return
	}
	rt.remove = fn
	rt.mu.Unlock()
}

// detach removes the sink and ends the track for the recording (Close).
func (rt *recTrack) detach() {
	rt.mu.Lock()
	rt.detached = true
	fn := rt.remove
	rt.mu.Unlock()
	if fn != nil {
		fn()
	}
	rt.finish()
}

// localName returns the part of a track name after the publication: "video" for
// "trainer/video".
func localName(track string) (publication, local string) {
	pub, local, ok := strings.Cut(track, "/")
	if !ok {
		return track, track
	}
	return pub, local
}

// recordable reports whether the recorder can store a codec: H.264, Opus, and
// AAC in RFC 3640 framing (MPEG4-GENERIC, from RTSP encoders and cameras).
//
// G.711 is not recorded: fMP4 has no sample entry for it, so it would have to be
// stored decoded, as LPCM ('ipcm', ISO/IEC 23003-5), which browsers' Media Source
// Extensions refuse; in the main rendition, muxed with the video, that would make
// the whole replay unplayable in the web player.
func recordable(c sfu.Codec) error {
	switch {
	case strings.EqualFold(c.MimeType, sfu.MimeH264) && c.ClockRate == 90000:
		return nil
	case strings.EqualFold(c.MimeType, sfu.MimeOpus) && c.ClockRate == 48000:
		return nil
	case isAAC(c):
		_, err := parseAACFormat(c)
		return err
	case strings.EqualFold(c.MimeType, sfu.MimePCMU), strings.EqualFold(c.MimeType, sfu.MimePCMA):
		return fmt.Errorf("%w: %s: G.711 could only be stored as LPCM, which browsers cannot play in a replay", ErrUnsupportedCodec, c.MimeType)
	}
	return fmt.Errorf("%w: %s/%d", ErrUnsupportedCodec, c.MimeType, c.ClockRate)
}

// accessUnit is what a track reader hands to its recording's mux goroutine: one
// video access unit or audio packet on the recording clock, or the end of the track.
// Its media (nalus, audio) is in the memory of the batch that carries it: valid
// until the mux has handled the batch.
type accessUnit struct {
	track *recTrack
	ticks int64 // presentation time, in the track's clock rate since the recording epoch
	nalus [][]byte
	audio []byte // one Opus packet or one AAC access unit
	dur   int64  // audio duration in ticks
	key   bool
	gap   bool  // packets were lost (or time jumped) right before this unit
	wall  int64 // sfu.Nanotime of arrival
	done  bool  // the track's last message
}

// auBatch is what a track reader hands to its recording's mux goroutine at once:
// the access units of every packet it found queued when it woke up, with their
// media. The mux returns it to its reader (free) once handled, and the reader
// reuses it: a batch's memory grows to what the track needs and stays warm, where
// a copy per NAL unit or packet would keep the allocator and the garbage collector
// busy (and, on virtual machines, the page faults of fresh memory).
type auBatch struct {
	aus   []accessUnit
	mem   []byte   // the media of aus
	lists [][]byte // the NAL unit lists of aus
	free  chan<- *auBatch
}

// maxBatch bounds the access units of a batch: a reader that finds a long backlog
// (a keyframe burst, a stalled mux) passes it on in parts.
const maxBatch = 64

// batchesPerReader is how many handled batches a reader keeps for reuse.
const batchesPerReader = 4

// add appends au with a copy of its media.
func (b *auBatch) add(au accessUnit) {
	if au.nalus != nil {
		start := len(b.lists)
		for _, n := range au.nalus {
			b.lists = append(b.lists, b.copy(n))
		}
		au.nalus = b.lists[start:len(b.lists):len(b.lists)]
	}
	if au.audio != nil {
		au.audio = b.copy(au.audio)
	}
	b.aus = append(b.aus, au)
}

func (b *auBatch) copy(p []byte) []byte {
	start := len(b.mem)
	b.mem = append(b.mem, p...) // when it grows, what was copied stays where it was
	return b.mem[start:len(b.mem):len(b.mem)]
}

// recycle empties the batch and gives it back to its reader (when the reader
// has room for it; else it is left to the garbage collector).
func (b *auBatch) recycle() {
	clear(b.aus)
	clear(b.lists)
	b.aus, b.lists, b.mem = b.aus[:0], b.lists[:0], b.mem[:0]
	select {
	case b.free <- b:
	default:
	}
}

// trackReader is the per-track goroutine's state.
type trackReader struct {
	rt      *recTrack
	out     chan<- *auBatch
	batch   *auBatch // access units not yet handed to the mux
	reorder reorderer
	tl      *timeline
	h264    h264Depacketizer
	aac     *aacDepacketizer // AAC tracks only
	free    chan *auBatch    // batches the mux has handled
	gap     bool
	stats   *metrics
}

// newTrackReader returns the reader of rt, sending to out, on the timeline of a
// recording whose epoch is epoch.
func newTrackReader(rt *recTrack, out chan<- *auBatch, epoch int64, stats *metrics) *trackReader {
	r := &trackReader{rt: rt, out: out, tl: newTimeline(rt.t.Codec().ClockRate, epoch), stats: stats,
		reorder: reorderer{maxWait: int64(500 * time.Millisecond)}, free: make(chan *auBatch, batchesPerReader)}
	if rt.aac != nil {
		r.aac = newAACDepacketizer(rt.aac)
	}
	return r
}

// gatherWait is how long a track reader lets packets gather in its queue after
// handing a batch to the mux. A wakeup costs more than the work of a packet, and
// a recording has no use for a packet a few milliseconds sooner: with the wait a
// 2.5 Mbit/s track (about 300 packets a second) wakes its reader and the mux
// about 50 times a second instead of once per packet. The queue (queueSize
// packets) holds seconds of media, far more than gathers in the wait.
const gatherWait = 20 * time.Millisecond

// run reads the track until it ends or ctx (the recording's hard stop) is done, and
// always sends a done message last unless ctx is done.
//
// Each wakeup costs more than the work a packet needs, so the reader takes what
// is queued in one go: after waiting for a packet it takes every packet already
// queued behind it (TryNext), hands the access units they complete to the mux
// goroutine in one batch, waking it once, then lets the next packets gather
// (gatherWait) before it looks again.
func (r *trackReader) run(ctx context.Context) {
	defer r.rt.queue.Drain()
	defer r.releaseHeld()
	gather := time.NewTimer(gatherWait)
	defer gather.Stop()
	for {
		item, ok := r.next(ctx)
		if !ok {
			break
		}
		for ok {
			if !r.take(ctx, item) {
				return
			}
			item, ok = r.rt.queue.TryNext()
		}
		if !r.flush(ctx) {
			return
		}
		gather.Reset(gatherWait)
		select {
		case <-gather.C:
		case <-r.rt.ctx.Done(): // the track ended: take what is left now
		case <-ctx.Done():
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	ready, lost := r.reorder.drain()
	if !r.handle(ctx, ready, lost) {
		return
	}
	r.send(ctx, accessUnit{track: r.rt, done: true})
	r.flush(ctx)
}

// take puts one queued packet through the reorderer and turns what is released
// in order into access units; false when ctx is done.
func (r *trackReader) take(ctx context.Context, item sfu.QueueItem) bool {
	if item.Resync == sfu.ResyncDrop {
		r.lost()
	}
	ready, lost := r.reorder.push(item.Packet)
	return r.handle(ctx, ready, lost)
}

// next returns the next queued packet; once the track ended it returns what is
// still queued, then false.
func (r *trackReader) next(ctx context.Context) (sfu.QueueItem, bool) {
	if item, ok := r.rt.queue.Next(r.rt.ctx); ok {
		return item, true
	}
	if ctx.Err() != nil {
		return sfu.QueueItem{}, false
	}
	dctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	return r.rt.queue.Next(dctx)
}

// handle processes packets released in order; false when ctx is done.
func (r *trackReader) handle(ctx context.Context, ready []*sfu.Packet, lost int) bool {
	if lost > 0 {
		r.lost()
	}
	for i, p := range ready {
		ok := r.packet(ctx, p)
		p.Release()
		if !ok {
			for _, q := range ready[i+1:] {
				q.Release()
			}
			return false
		}
	}
	return true
}

// releaseHeld gives back the packets the depacketizers retain.
func (r *trackReader) releaseHeld() {
	r.h264.release()
	if r.aac != nil {
		r.aac.release()
	}
}

func (r *trackReader) lost() {
	r.gap = true
	switch {
	case r.rt.t.Kind() == sfu.KindVideo:
		r.h264.lost()
		r.rt.t.RequestKeyframe()
	case r.aac != nil:
		r.aac.lost()
	}
}

// packet turns one in-order packet into zero or more access units.
func (r *trackReader) packet(ctx context.Context, p *sfu.Packet) bool {
	ticks, jumped := r.tl.ticks(p.Header.Timestamp, p.ArrivalNanos)
	if jumped {
		r.gap = true
	}
	switch {
	case r.aac != nil:
		return r.packetAAC(ctx, p, ticks)
	case r.rt.t.Kind() == sfu.KindAudio:
		return r.packetOpus(ctx, p, ticks)
	}
	return r.packetH264(ctx, p, ticks)
}

// packetOpus turns an Opus packet (RFC 7587: one packet per RTP payload) into an
// access unit.
func (r *trackReader) packetOpus(ctx context.Context, p *sfu.Packet, ticks int64) bool {
	d := opus.PacketDuration2(p.Payload)
	if d <= 0 {
		r.stats.decodeErrors.Add(1)
		return true
	}
	return r.emit(ctx, accessUnit{track: r.rt, ticks: ticks, audio: p.Payload, dur: d, wall: p.ArrivalNanos})
}

// packetAAC turns an MPEG4-GENERIC packet into the AAC access units it
// completes; a malformed packet is counted (the AUs before the damage are kept).
func (r *trackReader) packetAAC(ctx context.Context, p *sfu.Packet, ticks int64) bool {
	aus, err := r.aac.push(p)
	if err != nil {
		r.stats.decodeErrors.Add(1)
		r.gap = true
	}
	dur := r.aac.f.auDuration
	for i, au := range aus {
		if !r.emit(ctx, accessUnit{track: r.rt, ticks: ticks + int64(i)*dur, audio: au, dur: dur, wall: p.ArrivalNanos}) {
			return false
		}
	}
	return true
}

// packetH264 turns an H.264 packet into the access units it completes.
func (r *trackReader) packetH264(ctx context.Context, p *sfu.Packet, ticks int64) bool {
	aus, err := r.h264.push(p, ticks)
	if err != nil {
		r.stats.decodeErrors.Add(1)
		r.rt.t.RequestKeyframe()
	}
	for _, v := range aus {
		if !r.emit(ctx, accessUnit{track: r.rt, ticks: v.ticks, nalus: v.nalus, key: v.key, wall: p.ArrivalNanos}) {
			return false
		}
	}
	return true
}

func (r *trackReader) emit(ctx context.Context, au accessUnit) bool {
	au.gap, r.gap = r.gap, false
	return r.send(ctx, au)
}

// send adds au (with a copy of its media) to the batch for the mux, handing the
// batch over when it is full; false when ctx is done.
func (r *trackReader) send(ctx context.Context, au accessUnit) bool {
	if r.batch == nil {
		select {
		case r.batch = <-r.free:
		default:
			r.batch = &auBatch{aus: make([]accessUnit, 0, maxBatch), free: r.free}
		}
	}
	r.batch.add(au)
	if len(r.batch.aus) >= maxBatch {
		return r.flush(ctx)
	}
	return true
}

// flush hands the batch to the mux goroutine; false when ctx is done.
func (r *trackReader) flush(ctx context.Context) bool {
	if r.batch == nil {
		return true
	}
	select {
	case r.out <- r.batch:
		r.batch = nil
		return true
	case <-ctx.Done():
		return false
	}
}
