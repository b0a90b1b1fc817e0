package peer

import (
	"sync/atomic"
	"time"

	"lectern/internal/workpool"
	"lectern/sfu"
)

// egress sends every subscriber's media from a few goroutines (one per CPU, a
// workpool) instead of one per downtrack. A downtrack's queue notifies its worker
// when a packet arrives; the worker then serves its ready downtracks round-robin,
// up to burstMax packets each per turn, so a keyframe burst for one subscriber does
// not hold back the next subscriber's first packet, and writes them within one
// batchConn round, so they leave in a few sendmmsg calls. Per packet and subscriber
// that saves a goroutine wake-up and most of a system call; per subscriber, two
// goroutines. Senders of other packages (the origin's relays to other nodes) are
// served the same way through EgressSender.
type egress struct {
	pool *workpool.Pool[egressTask]
}

// egressTask is a sender the egress workers serve: a downtrack or an EgressSender.
// sendTurn gives it one turn on its worker and reports whether it has more to send.
type egressTask interface{ sendTurn() bool }

// egressWorker is the worker a subscriber's downtracks share.
type egressWorker = workpool.Worker[egressTask]

func newEgress(conn *batchConn) *egress {
	var o workpool.Options
	if conn != nil { // nil: no batching (ICE-TCP only edges, tests)
		o.BeginRound, o.EndRound = conn.begin, conn.end
	}
	return &egress{pool: workpool.New(egressTask.sendTurn, o)}
}

// assign picks the worker for a new subscriber's downtracks.
func (e *egress) assign() *egressWorker { return e.pool.Assign() }

// close stops the workers; every resource must be closed before.
func (e *egress) close() { e.pool.Close() }

// egressGate is how a sender's queue wakes its egress worker: the worker, whether
// the sender may send yet, whether it is on the worker's lists, and the frame being
// gathered. Downtracks and EgressSenders embed it.
type egressGate struct {
	worker *egressWorker
	// holdSince is the arrival of the oldest packet held for its frame; written by
	// the publisher's goroutine, or two of them while a LayerFollower switches layers.
	holdSince atomic.Int64
	started   atomic.Bool // sending may begin (see downTrack.start, EgressSender.Start)
	ready     atomic.Bool // on the worker's lists (see notify)
}

// notify puts t (the sender embedding g) on its worker's list, unless it is there
// already; called on the publisher's goroutine after a packet was queued for t. It
// never blocks.
func (g *egressGate) notify(t egressTask) {
	if !g.ready.CompareAndSwap(false, true) {
		return // already on the worker's lists
	}
	g.worker.Notify(t)
}

// notifyWorker puts d on its worker's list (see egressGate.notify).
func (d *downTrack) notifyWorker() { d.notify(d) }

// holdMax bounds how long video packets wait for the rest of their frame.
const holdMax = 2 * time.Millisecond

// onQueued is a sender's queue Notify: a packet is waiting. Video packets of a
// frame are let gather until the frame is complete (the marker bit), burstMax
// wait, or the oldest has waited holdMax, then the worker is woken: a frame's
// packets then leave as one GSO train and one wake-up serves them all, where a
// wake-up per packet sends trains of one. The receiver cannot decode a frame
// before its last packet anyway. holdMax keeps a browser publisher's pacing (its
// frames arrive spread over several milliseconds) from turning into whole-frame
// bursts, which lossy provincial links punish. Audio packets are frames;
// retransmissions are urgent.
func (g *egressGate) onQueued(t egressTask, kind sfu.Kind, item sfu.QueueItem, queued int) {
	if !g.started.Load() {
		return
	}
	if item.Retransmission { // on the sender's RTCP goroutine: holdSince is not ours
		g.notify(t)
		return
	}
	if p := item.Packet; kind == sfu.KindVideo && !p.Header.Marker && queued < burstMax {
		since := g.holdSince.Load()
		if since == 0 {
			g.holdSince.Store(p.ArrivalNanos)
			return
		}
		if p.ArrivalNanos-since < int64(holdMax) {
			return
		}
	}
	g.holdSince.Store(0)
	g.notify(t)
}

// idle ends a turn that found the sender's queue q empty: it clears the ready
// flag, so a packet queued after that notifies again. It reports whether the
// sender stays on the worker's lists after all.
func (g *egressGate) idle(q *sfu.Queue) bool {
	g.ready.Store(false)
	// A packet may have arrived between the empty queue and the store, its notify
	// seeing the flag still set: look once more.
	return q.Len() > 0 && g.ready.CompareAndSwap(false, true)
}

// burstMax is the most packets a downtrack sends per turn: about one frame at
// 2.5 Mbit/s. They end up in the same sendmmsg batch as the other subscribers'
// turns, so the order within a round costs no one latency; a frame's packets
// next to each other let the kernel send them as one GSO datagram train.
const burstMax = 16

// sendTurn is d's turn on its worker: up to burstMax packets. It reports whether d
// has more to send; when its queue is empty it clears the ready flag, and a packet
// queued after that notifies again.
func (d *downTrack) sendTurn() bool {
	if d.sendBurst(burstMax) {
		return true
	}
	return d.idle(d.queue)
}

// EgressSender is a sender outside this package (the origin's side of a cluster
// relay) served by the edge's egress workers like a subscriber's downtrack: its
// queue's packets are written on a worker, in the worker's batched rounds (a
// sendmmsg per round, a frame's packets as one GSO train), and a video frame's
// packets gather before the worker is woken. That replaces a goroutine per track
// and a wake-up and a system call per packet. The sender writes through a pion
// connection of this edge (NewRelaySenderPC), so its writes reach the batched
// socket.
type EgressSender struct {
	egressGate
	kind  sfu.Kind
	queue *sfu.Queue
	turn  func(max int) bool
}

// NewEgressSender returns a sender of kind for queue, whose QueueOptions.Notify must
// call the sender's Queued. turn is its turn on the worker: it writes up to max
// packets it takes from queue with TryNext, and returns true when it wrote max
// (there may be more), false when it found the queue empty or stopped for good (it
// then drains the queue itself). It runs on the worker's goroutine, one turn at a
// time, and must not block. The sender is served once Start is called; the edge's
// workers stop with the edge, so the caller stops queueing (and closes its
// connection) before the edge closes.
//
// beside is nil or a sender whose worker this one shares: a relay's tracks, like a
// subscriber's downtracks, share one, so a round carries its audio and its video
// together (one wake-up and one sendmmsg) rather than each on a worker of its own.
func (e *Edge) NewEgressSender(kind sfu.Kind, queue *sfu.Queue, turn func(max int) (more bool), beside *EgressSender) *EgressSender {
	s := &EgressSender{kind: kind, queue: queue, turn: turn}
	if beside != nil {
		s.worker = beside.worker
	} else {
		s.worker = e.egress.assign()
	}
	return s
}

// Queued is the queue's Notify (sfu.QueueOptions.Notify): a packet is waiting. It
// wakes the worker with a downtrack's gathering policy; before Start it does nothing.
func (s *EgressSender) Queued(item sfu.QueueItem, queued int) {
	s.onQueued(s, s.kind, item, queued)
}

// Start lets the sender send (after pion bound its track); what was queued before
// is sent now.
func (s *EgressSender) Start() {
	s.started.Store(true)
	s.notify(s)
}

// sendTurn is the sender's turn on its worker: up to burstMax packets.
func (s *EgressSender) sendTurn() bool {
	if s.turn(burstMax) {
		return true
	}
	return s.idle(s.queue)
}
