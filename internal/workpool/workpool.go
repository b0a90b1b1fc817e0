// Package workpool serves many senders (a WebRTC subscriber's downtracks, an RTSP
// reader's connection) from a few goroutines, one per CPU, instead of one goroutine
// each. A sender with work is handed to its worker with Notify; the worker then
// serves its notified senders round-robin, one turn each, until none has work left,
// so one sender's burst (a keyframe, a backlog) does not hold back the others' first
// packet. Per packet and sender that saves a goroutine wake-up, and the sends of one
// round can share system calls.
package workpool

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options tune a [Pool].
type Options struct {
	// BeginRound and EndRound, when set, run on the worker's goroutine around each
	// pass over its notified senders (e.g. to batch their writes into one system
	// call).
	BeginRound, EndRound func()
}

// Pool is a set of workers serving senders of type T.
type Pool[T comparable] struct {
	workers []*Worker[T]
	next    atomic.Uint32 // round-robin assignment
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Worker is one goroutine of a [Pool] and the senders notified to it.
type Worker[T comparable] struct {
	serve  func(T) bool
	o      Options
	wake   chan struct{}
	mu     sync.Mutex
	ready  []T // notified since the worker last looked
	active []T // the worker's own: being served this round
}

// New starts one worker per CPU (at most 8). serve gives a sender one turn, on its
// worker's goroutine; it returns true while the sender has more work, false once it
// is done (it is dropped from the round and must be notified again for more).
func New[T comparable](serve func(T) bool, o Options) *Pool[T] {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[T]{cancel: cancel}
	for range min(runtime.GOMAXPROCS(0), 8) {
		w := &Worker[T]{serve: serve, o: o, wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			w.run(ctx)
		}()
	}
	return p
}

// Assign picks the worker of a new sender: round-robin.
func (p *Pool[T]) Assign() *Worker[T] {
	return p.workers[int(p.next.Add(1)-1)%len(p.workers)]
}

// Close stops the workers and waits for them. Senders still notified are not
// served.
func (p *Pool[T]) Close() {
	p.cancel()
	p.wg.Wait()
}

// Notify puts s on the worker's list. The caller makes sure s is notified at most
// once until serve returns false for it (e.g. with an atomic flag). It never
// blocks.
func (w *Worker[T]) Notify(s T) {
	w.mu.Lock()
	w.ready = append(w.ready, s)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // already woken: it will look at ready
	}
}

func (w *Worker[T]) run(ctx context.Context) {
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
		for w.collect() {
			if w.o.BeginRound != nil {
				w.o.BeginRound()
			}
			w.round()
			if w.o.EndRound != nil {
				w.o.EndRound()
			}
		}
	}
}

// collect moves the notified senders to the active list; false when none.
func (w *Worker[T]) collect() bool {
	w.mu.Lock()
	w.active = append(w.active, w.ready...)
	clear(w.ready)
	w.ready = w.ready[:0]
	w.mu.Unlock()
	return len(w.active) > 0
}

// round gives each active sender a turn until none has work left; senders
// notified meanwhile join the round.
func (w *Worker[T]) round() {
	for len(w.active) > 0 {
		j := 0
		for _, s := range w.active {
			if w.serve(s) {
				w.active[j] = s
				j++
			}
		}
		var zero T
		for i := j; i < len(w.active); i++ {
			w.active[i] = zero
		}
		w.active = w.active[:j]
		if j > 0 {
			w.collect()
		}
	}
}
