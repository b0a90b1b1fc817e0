package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sender has `left` turns of work; a turn is recorded in the shared log.
type sender struct {
	name    string
	left    atomic.Int32
	flagged atomic.Bool
	log     *turnLog
}

type turnLog struct {
	mu    sync.Mutex
	turns []string
	done  chan struct{}
	want  int
}

func (s *sender) turn() bool {
	s.log.mu.Lock()
	s.log.turns = append(s.log.turns, s.name)
	if len(s.log.turns) == s.log.want {
		close(s.log.done)
	}
	s.log.mu.Unlock()
	if s.left.Add(-1) > 0 {
		return true
	}
	s.flagged.Store(false)
	return false
}

// TestRoundRobin: senders notified together take turns, so one with a long backlog
// does not hold the others back, and a sender notified again after it was done is
// served again.
func TestRoundRobin(t *testing.T) {
	log := &turnLog{done: make(chan struct{}), want: 7}
	p := New((*sender).turn, Options{})
	defer p.Close()
	w := p.workers[0]
	a, b := &sender{name: "a", log: log}, &sender{name: "b", log: log}
	a.left.Store(4)
	b.left.Store(2)
	// Hold the worker off until both are notified: notify under its lock.
	w.mu.Lock()
	w.ready = append(w.ready, a, b)
	w.mu.Unlock()
	w.Notify(&sender{name: "c", log: log}) // one turn (left 0 -> done at once)
	select {
	case <-time.After(5 * time.Second):
		t.Fatal("turns not taken")
	case <-log.done:
	}
	log.mu.Lock()
	got := append([]string(nil), log.turns...)
	log.mu.Unlock()
	want := []string{"a", "b", "c", "a", "b", "a", "a"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("turns %v, want %v", got, want)
		}
	}
	// Done senders are off the lists; a new notify serves again.
	log.mu.Lock()
	log.done, log.want = make(chan struct{}), len(log.turns)+1
	log.mu.Unlock()
	b.left.Store(1)
	w.Notify(b)
	select {
	case <-time.After(5 * time.Second):
		t.Fatal("a notified sender was not served again")
	case <-log.done:
	}
}

// TestRoundHooks: BeginRound and EndRound bracket every pass.
func TestRoundHooks(t *testing.T) {
	var begins, ends atomic.Int32
	served := make(chan struct{}, 1)
	p := New(func(int) bool { served <- struct{}{}; return false },
		Options{BeginRound: func() { begins.Add(1) }, EndRound: func() { ends.Add(1) }})
	p.Assign().Notify(1)
	<-served
	p.Close()
	if begins.Load() != 1 || ends.Load() != 1 {
		t.Fatalf("begin %d, end %d; want 1 and 1", begins.Load(), ends.Load())
	}
}
