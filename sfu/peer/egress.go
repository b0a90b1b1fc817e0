package peer

import (
	"context"
	"runtime"
	"sync"
)

// egress sends every subscriber's media from a few goroutines (one per CPU)
// instead of one per downtrack. A downtrack's queue notifies its worker when a
// packet arrives; the worker then serves its ready downtracks round-robin, one
// packet each per turn, so a keyframe burst for one subscriber does not hold back
// the next subscriber's first packet, and writes them within one batchConn round,
// so they leave in a few sendmmsg calls. Per packet and subscriber that saves a
// goroutine wake-up and most of a system call; per subscriber, two goroutines.
type egress struct {
	conn    *batchConn // nil: no batching (ICE-TCP only edges, tests)
	workers []*egressWorker
	next    int // round-robin assignment
	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type egressWorker struct {
	e      *egress
	wake   chan struct{}
	mu     sync.Mutex
	ready  []*downTrack // notified since the worker last looked
	active []*downTrack // the worker's own: being served this round
}

func newEgress(conn *batchConn) *egress {
	ctx, cancel := context.WithCancel(context.Background())
	e := &egress{conn: conn, cancel: cancel}
	n := min(runtime.GOMAXPROCS(0), 8)
	for range n {
		w := &egressWorker{e: e, wake: make(chan struct{}, 1)}
		e.workers = append(e.workers, w)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			w.run(ctx)
		}()
	}
	return e
}

// assign picks the worker for a new downtrack.
func (e *egress) assign() *egressWorker {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.workers[e.next%len(e.workers)]
	e.next++
	return w
}

// close stops the workers; every resource must be closed before.
func (e *egress) close() {
	e.cancel()
	e.wg.Wait()
}

// notify marks d ready; called on the publisher's goroutine after a packet was
// queued for d. It never blocks.
func (w *egressWorker) notify(d *downTrack) {
	if !d.ready.CompareAndSwap(false, true) {
		return // already on the worker's lists
	}
	w.mu.Lock()
	w.ready = append(w.ready, d)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *egressWorker) run(ctx context.Context) {
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
		for w.collect() {
			if w.e.conn != nil {
				w.e.conn.begin()
			}
			w.round()
			if w.e.conn != nil {
				w.e.conn.end()
			}
		}
	}
}

// collect moves the notified downtracks to the active list; false when none.
func (w *egressWorker) collect() bool {
	w.mu.Lock()
	w.active = append(w.active, w.ready...)
	clear(w.ready)
	w.ready = w.ready[:0]
	w.mu.Unlock()
	return len(w.active) > 0
}

// burstMax is the most packets a downtrack sends per turn: about one frame at
// 2.5 Mbit/s. They end up in the same sendmmsg batch as the other subscribers'
// turns, so the order within a round costs no one latency; a frame's packets
// next to each other let the kernel send them as one GSO datagram train.
const burstMax = 16

// round lets each active downtrack send up to burstMax packets per turn until
// every queue is empty. A downtrack whose queue empties leaves the list and clears its ready
// flag; a packet queued after that notifies again.
func (w *egressWorker) round() {
	for len(w.active) > 0 {
		j := 0
		for _, d := range w.active {
			if d.sendBurst(burstMax) {
				w.active[j] = d
				j++
				continue
			}
			d.ready.Store(false)
			// A packet may have arrived between the empty queue and the store,
			// its notify seeing the flag still set: look once more.
			if d.queue.Len() > 0 && d.ready.CompareAndSwap(false, true) {
				w.active[j] = d
				j++
			}
		}
		clear(w.active[j:])
		w.active = w.active[:j]
		if j > 0 {
			w.collect() // downtracks notified meanwhile join this round
		}
	}
}
