package peer

import (
	"lectern/internal/workpool"
)

// egress sends every subscriber's media from a few goroutines (one per CPU, a
// workpool) instead of one per downtrack. A downtrack's queue notifies its worker
// when a packet arrives; the worker then serves its ready downtracks round-robin,
// up to burstMax packets each per turn, so a keyframe burst for one subscriber does
// not hold back the next subscriber's first packet, and writes them within one
// batchConn round, so they leave in a few sendmmsg calls. Per packet and subscriber
// that saves a goroutine wake-up and most of a system call; per subscriber, two
// goroutines.
type egress struct {
	pool *workpool.Pool[*downTrack]
}

// egressWorker is the worker a subscriber's downtracks share.
type egressWorker = workpool.Worker[*downTrack]

func newEgress(conn *batchConn) *egress {
	var o workpool.Options
	if conn != nil { // nil: no batching (ICE-TCP only edges, tests)
		o.BeginRound, o.EndRound = conn.begin, conn.end
	}
	return &egress{pool: workpool.New((*downTrack).sendTurn, o)}
}

// assign picks the worker for a new subscriber's downtracks.
func (e *egress) assign() *egressWorker { return e.pool.Assign() }

// close stops the workers; every resource must be closed before.
func (e *egress) close() { e.pool.Close() }

// notifyWorker puts d on its worker's list, unless it is there already; called on
// the publisher's goroutine after a packet was queued for d. It never blocks.
func (d *downTrack) notifyWorker() {
	if !d.ready.CompareAndSwap(false, true) {
		return // already on the worker's lists
	}
	d.worker.Notify(d)
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
	d.ready.Store(false)
	// A packet may have arrived between the empty queue and the store, its notify
	// seeing the flag still set: look once more.
	return d.queue.Len() > 0 && d.ready.CompareAndSwap(false, true)
}
