package sfu

import (
	"context"
	"sync"
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
	// Layer is the simulcast rank of the track the packet came from (0 for a
	// single-layer track). After a ResyncSwitch item, a consumer drops items of
	// another layer: a packet the previous layer's publisher goroutine queued just
	// after the switch.
	Layer uint8
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
	// Notify, when set, is called after each packet is queued, with the item and
	// the number of packets now queued (on the writer's goroutine, without the
	// queue's lock; it must not block). A consumer that serves many queues from a
	// few goroutines uses it instead of Next, and may choose to wait for more.
	Notify func(item QueueItem, queued int)
}

// queueMinCap is the ring's starting (and resting) capacity: live traffic at
// 2.5 Mbit/s rarely queues more than a frame, so a full-size ring per subscriber
// would be memory paid for the fast-start burst only.
const queueMinCap = 32

// Queue is a [Sink] that decouples a consumer from the publisher: WriteRTP never
// blocks; a consumer takes packets with Next or TryNext. When the consumer falls
// behind and the queue is full, the queue drops: audio packet by packet, video until
// the next keyframe (anything in between would not decode), and asks for a keyframe.
// Only that consumer notices.
//
// WriteRTP is called by one track at a time; a [LayerFollower] may write from two
// layers' tracks while it switches.
//
// The queue is a ring that grows on demand up to Size and shrinks back when it
// empties, so an idle or keeping-up consumer costs a few hundred bytes.
type Queue struct {
	size    int
	kind    Kind
	stats   *Stats
	keyReq  func()
	notify  func(QueueItem, int)
	dropped atomic.Uint64
	wake    chan struct{} // signalled on every push, for Next

	mu   sync.Mutex
	ring []QueueItem
	head int
	n    int

	// Guarded by mu: a [LayerFollower] writes from two tracks' goroutines while it
	// switches layers.
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
	return &Queue{
		size: o.Size, kind: o.Kind, stats: o.Stats, keyReq: o.RequestKeyframe, notify: o.Notify,
		wake: make(chan struct{}, 1),
	}
}

// push appends an item unless the queue is full.
func (q *Queue) push(item QueueItem) bool {
	q.mu.Lock()
	ok := q.pushLocked(item)
	n := q.n
	q.mu.Unlock()
	if ok {
		q.signal(item, n)
	}
	return ok
}

// pushLocked appends an item unless the queue is full; q.mu held.
func (q *Queue) pushLocked(item QueueItem) bool {
	if q.n == len(q.ring) {
		if q.n >= q.size {
			return false
		}
		q.grow()
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = item
	q.n++
	return true
}

// signal tells the consumer that an item was queued, n now queued; without q.mu.
func (q *Queue) signal(item QueueItem, n int) {
	if q.notify != nil {
		q.notify(item, n)
		return
	}
	if n == 1 {
		// Only a consumer that found the queue empty waits for a signal; while
		// packets are queued it takes them without one.
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// grow doubles the ring (up to size), keeping the order; q.mu held.
func (q *Queue) grow() {
	c := min(max(2*len(q.ring), queueMinCap), q.size)
	ring := make([]QueueItem, c)
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring, q.head = ring, 0
}

// pop takes the oldest item.
func (q *Queue) pop() (QueueItem, bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return QueueItem{}, false
	}
	item := q.ring[q.head]
	q.ring[q.head] = QueueItem{}
	q.head++
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > 8*queueMinCap {
			// A burst (fast start, a stall) grew the ring: give the memory back.
			q.ring = make([]QueueItem, queueMinCap)
		}
	}
	q.mu.Unlock()
	return item, true
}

// Len returns the number of queued packets.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// WriteRTP implements [Sink].
func (q *Queue) WriteRTP(p *Packet) error {
	q.write(p, 0, false)
	return nil
}

// write queues p from the layer of that rank; switchLayer marks it as the first
// packet of a new source (a layer switch).
func (q *Queue) write(p *Packet, layer uint8, switchLayer bool) {
	q.mu.Lock()
	if switchLayer {
		q.resync, q.waitKeyframe = ResyncSwitch, false
	}
	if q.waitKeyframe {
		if !p.KeyframeStart {
			q.mu.Unlock()
			q.drop()
			return
		}
		q.waitKeyframe = false
	}
	item := QueueItem{Packet: p, Resync: q.resync, Layer: layer}
	p.Retain()
	if q.pushLocked(item) {
		q.resync = ResyncNone
		n := q.n
		q.mu.Unlock()
		q.signal(item, n)
		return
	}
	if q.resync == ResyncNone {
		q.resync = ResyncDrop
	}
	keyReq := q.keyReq
	if q.kind == KindVideo {
		q.waitKeyframe = true
	} else {
		keyReq = nil
	}
	q.mu.Unlock()
	p.Release()
	q.drop()
	if keyReq != nil {
		keyReq()
	}
}

// MarkSwitch flags the next packet written as the start of a new source (the
// consumer moves to another track). Call it before attaching the queue to the new
// track.
func (q *Queue) MarkSwitch() {
	q.mu.Lock()
	q.resync = ResyncSwitch
	q.waitKeyframe = q.kind == KindVideo
	q.mu.Unlock()
}

// SetKeyframeRequester changes the function called when video is dropped.
func (q *Queue) SetKeyframeRequester(fn func()) {
	q.mu.Lock()
	q.keyReq = fn
	q.mu.Unlock()
}

// Retransmit queues a cached packet (from Track.Retransmit, already retained; the
// queue takes over that reference). It returns false, releasing p, when the queue is
// full: a retransmission to a congested consumer would only add to its congestion.
// layer is the rank of the track p comes from ([Track.Layer]).
func (q *Queue) Retransmit(p *Packet, layer int) bool {
	if q.push(QueueItem{Packet: p, Retransmission: true, Layer: uint8(layer)}) {
		return true
	}
	p.Release()
	return false
}

func (q *Queue) drop() {
	q.dropped.Add(1)
	q.stats.QueueDrops.Add(1)
}

// Dropped returns the number of packets this queue dropped.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Next waits for the next packet. The consumer owns the returned packet's reference
// and must Release it. ok is false when ctx is done. Not for queues with Notify.
func (q *Queue) Next(ctx context.Context) (item QueueItem, ok bool) {
	for {
		if item, ok = q.pop(); ok {
			return item, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return QueueItem{}, false
		}
	}
}

// TryNext returns the next packet if one is queued, without waiting: a consumer
// that woke up for one packet can take what else is ready and write it in one batch.
func (q *Queue) TryNext() (item QueueItem, ok bool) { return q.pop() }

// Drain releases every queued packet. Call it after the queue is detached and its
// consumer has stopped.
func (q *Queue) Drain() {
	for {
		item, ok := q.pop()
		if !ok {
			return
		}
		item.Packet.Release()
	}
}
