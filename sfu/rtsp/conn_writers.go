package rtsp

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// connWriters send what TCP readers' connections gathered (see lecternConn.Write)
// from a few goroutines, one per CPU, instead of one per connection: gortsplib's
// writer goroutine of each reader appends its packets to the connection's pending
// bytes and notifies the connection's worker, which sends every notified
// connection's pending bytes with one non-blocking system call each. Per packet
// and reader that saves a goroutine wake-up; the batches grow too, since a worker
// serves many connections per wake-up while their writers keep appending. A
// connection whose socket buffer is full (the reader is slow) is handed to a
// goroutine of its own that waits for it (lecternConn.sendBlocking), so a stalled
// reader never holds a worker.
type connWriters struct {
	workers []*connWriter
	next    atomic.Uint32 // round-robin assignment
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type connWriter struct {
	wake   chan struct{}
	mu     sync.Mutex
	ready  []*lecternConn // notified since the worker last looked
	active []*lecternConn // the worker's own: being served this round
}

func newConnWriters() *connWriters {
	ctx, cancel := context.WithCancel(context.Background())
	ws := &connWriters{cancel: cancel}
	for range min(runtime.GOMAXPROCS(0), 8) {
		w := &connWriter{wake: make(chan struct{}, 1)}
		ws.workers = append(ws.workers, w)
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			w.run(ctx)
		}()
	}
	return ws
}

// assign picks the worker of a new connection.
func (ws *connWriters) assign() *connWriter {
	return ws.workers[int(ws.next.Add(1))%len(ws.workers)]
}

// close stops the workers. Connections still pending are not sent (the server is
// closing them).
func (ws *connWriters) close() {
	ws.cancel()
	ws.wg.Wait()
}

// notify puts c on the worker's list; called by c.Write, which set c.queued, so a
// connection is on at most one list once. It never blocks.
func (w *connWriter) notify(c *lecternConn) {
	w.mu.Lock()
	w.ready = append(w.ready, c)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // already woken: it will look at ready
	}
}

func (w *connWriter) run(ctx context.Context) {
	for {
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
		for w.collect() {
			w.round()
		}
	}
}

// collect moves the notified connections to the active list; false when none.
func (w *connWriter) collect() bool {
	w.mu.Lock()
	w.active = append(w.active, w.ready...)
	clear(w.ready)
	w.ready = w.ready[:0]
	w.mu.Unlock()
	return len(w.active) > 0
}

// round sends each active connection's pending bytes, one system call per turn,
// until none has any left; connections notified meanwhile join the round.
func (w *connWriter) round() {
	for len(w.active) > 0 {
		j := 0
		for _, c := range w.active {
			if c.sendSome() {
				w.active[j] = c
				j++
			}
		}
		clear(w.active[j:])
		w.active = w.active[:j]
		w.collect()
	}
}
