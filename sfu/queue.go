package sfu

import (
	"context"
	"sync/atomic"
)

// Resync says why a queued packet does not follow the previous one.
type Resync uint8

// Reasons for a discontinuity. A consumer that rewrites sequence numbers calls
// Rewriter.ResyncSeq for ResyncDrop and Rewriter.Resync for ResyncSwitch before
// rewriting the packet.
const (
	ResyncNone   Resync = iota
	ResyncDrop          // packets before this one were dropped
	ResyncSwitch        // the queue moved to another track
)

// QueueItem is one packet taken from a [Queue].
type QueueItem struct {
	Packet *Packet
	Resync Resync
	// Retransmission is set on packets queued by Retransmit.
	Retransmission bool
}

// QueueOptions configure a [Queue].
type QueueOptions struct {
	// Size is the number of packets the queue holds; default 512, enough for the
	// fast-start burst of a keyframe at 2.5 Mbit/s.
	Size int
	// Kind decides the drop policy: video drops until the next keyframe.
	Kind Kind
	// Stats receives the drop count; may be nil.
	Stats *Stats
	// RequestKeyframe is called (on the publisher's goroutine, must not block)
	// when video was dropped and the queue waits for a keyframe. Usually
	// Track.RequestKeyframe of the track the queue is attached to.
	RequestKeyframe func()
}

// Queue is a [Sink] that decouples a consumer from the publisher: WriteRTP never
// blocks; a consumer goroutine takes packets with Next. When the consumer falls
// behind and the queue is full, the queue drops: audio packet by packet, video until
// the next keyframe (anything in between would not decode), and asks for a keyframe.
// Only that consumer notices.
type Queue struct {
	ch      chan QueueItem
	kind    Kind
	stats   *Stats
	keyReq  func()
	dropped atomic.Uint64

	// Written only on the publisher's goroutine (under the track's lock).
	waitKeyframe bool
	resync       Resync
}

// NewQueue returns an empty queue.
func NewQueue(o QueueOptions) *Queue {
	if o.Size <= 0 {
		o.Size = 512
	}
	if o.Stats == nil {
		o.Stats = new(Stats)
	}
	return &Queue{ch: make(chan QueueItem, o.Size), kind: o.Kind, stats: o.Stats, keyReq: o.RequestKeyframe}
}

// WriteRTP implements [Sink]. It is called by one track at a time.
func (q *Queue) WriteRTP(p *Packet) error {
	if q.waitKeyframe {
		if !p.KeyframeStart {
			q.drop()
			return nil
		}
		q.waitKeyframe = false
	}
	p.Retain()
	select {
	case q.ch <- QueueItem{Packet: p, Resync: q.resync}:
		q.resync = ResyncNone
	default:
		p.Release()
		q.drop()
		if q.resync == ResyncNone {
			q.resync = ResyncDrop
		}
		if q.kind == KindVideo {
			q.waitKeyframe = true
			if q.keyReq != nil {
				q.keyReq()
			}
		}
	}
	return nil
}

// MarkSwitch flags the next packet written as the start of a new source (the
// consumer moves to another track). Call it before attaching the queue to the new
// track.
func (q *Queue) MarkSwitch() {
	q.resync = ResyncSwitch
	q.waitKeyframe = q.kind == KindVideo
}

// SetKeyframeRequester changes the function called when video is dropped. Call it
// only while the queue is not attached to a track.
func (q *Queue) SetKeyframeRequester(fn func()) { q.keyReq = fn }

// Retransmit queues a cached packet (from Track.Retransmit, already retained; the
// queue takes over that reference). It returns false, releasing p, when the queue is
// full: a retransmission to a congested consumer would only add to its congestion.
func (q *Queue) Retransmit(p *Packet) bool {
	select {
	case q.ch <- QueueItem{Packet: p, Retransmission: true}:
		return true
	default:
		p.Release()
		return false
	}
}

func (q *Queue) drop() {
	q.dropped.Add(1)
	q.stats.QueueDrops.Add(1)
}

// Dropped returns the number of packets this queue dropped.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Next waits for the next packet. The consumer owns the returned packet's reference
// and must Release it. ok is false when ctx is done.
func (q *Queue) Next(ctx context.Context) (item QueueItem, ok bool) {
	select {
	case item = <-q.ch:
		return item, true
	case <-ctx.Done():
		return QueueItem{}, false
	}
}

// TryNext returns the next packet if one is queued, without waiting: a consumer
// that woke up for one packet can take what else is ready and write it in one batch.
func (q *Queue) TryNext() (item QueueItem, ok bool) {
	select {
	case item = <-q.ch:
		return item, true
	default:
		return QueueItem{}, false
	}
}

// Drain releases every queued packet. Call it after the queue is detached and its
// consumer has stopped.
func (q *Queue) Drain() {
	for {
		select {
		case item := <-q.ch:
			item.Packet.Release()
		default:
			return
		}
	}
}
