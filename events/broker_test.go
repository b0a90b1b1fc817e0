package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wait is how long a test waits for something that should happen at once before failing.
const wait = 5 * time.Second

func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want an event")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return Event{}
}

func assertClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("got %+v, want closed channel", ev)
		}
	case <-time.After(wait):
		t.Fatal("channel not closed")
	}
}

func assertEmpty(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("got %+v (open %v), want nothing", ev, ok)
	default:
	}
}

func TestPublishSubscribeOrder(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	ch1, cancel1 := b.Subscribe("s1")
	defer cancel1()
	ch2, cancel2 := b.Subscribe("s1")
	defer cancel2()
	if n := b.Subscribers("s1"); n != 2 {
		t.Fatalf("Subscribers = %d, want 2", n)
	}

	before := time.Now()
	types := []string{TypeSessionLive, TypePublicationAdded, TypeHands, TypeSessionEnded}
	for i, typ := range types {
		b.Publish("s1", typ, i)
	}
	for _, ch := range []<-chan Event{ch1, ch2} {
		var last uint64
		for i, typ := range types {
			ev := recv(t, ch)
			if ev.Session != "s1" || ev.Type != typ || ev.Data != i {
				t.Fatalf("event %d = %+v, want s1 %s %d", i, ev, typ, i)
			}
			if ev.Seq <= last {
				t.Fatalf("seq %d after %d, want increasing", ev.Seq, last)
			}
			if ev.Time.Before(before) {
				t.Fatalf("time %v before publishing started at %v", ev.Time, before)
			}
			last = ev.Seq
		}
		assertEmpty(t, ch)
	}
}

func TestSessionsIsolated(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	a, cancelA := b.Subscribe("a")
	defer cancelA()
	bb, cancelB := b.Subscribe("b")
	defer cancelB()

	b.Publish("a", TypeHands, "for a")
	b.Publish("c", TypeHands, "for nobody")
	b.Publish("b", TypeHands, "for b")

	if ev := recv(t, a); ev.Data != "for a" {
		t.Fatalf("a got %+v", ev)
	}
	if ev := recv(t, bb); ev.Data != "for b" || ev.Seq != 3 {
		t.Fatalf("b got %+v, want seq 3 (seq counts every event of the broker)", ev)
	}
	assertEmpty(t, a)
	assertEmpty(t, bb)
}

// countHandler is a slog.Handler that counts warnings.
type countHandler struct{ warns atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countHandler) WithGroup(string) slog.Handler            { return h }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}

func TestSlowSubscriberDisconnected(t *testing.T) {
	logs := &countHandler{}
	const buffer = 4
	b := NewBroker(Options{Buffer: buffer, Logger: slog.New(logs)})
	defer b.Close()
	stuck, cancelStuck := b.Subscribe("s")
	defer cancelStuck()
	live, cancelLive := b.Subscribe("s")
	defer cancelLive()

	// Nobody reads stuck. Publish must still return every time; a reader that keeps up
	// (live, read in lock-step) must get every event.
	const n = 100
	published := make(chan struct{})
	got := make(chan Event, n)
	go func() {
		defer close(published)
		for i := range n {
			b.Publish("s", TypeSubscribers, i)
			got <- <-live
		}
	}()
	select {
	case <-published:
	case <-time.After(wait):
		t.Fatal("Publish blocked on a stuck subscriber")
	}
	for i := range n {
		if ev := <-got; ev.Data != i {
			t.Fatalf("live subscriber got %+v, want data %d", ev, i)
		}
	}

	for i := range buffer { // what fit in the buffer is still delivered, then the channel closes
		if ev := recv(t, stuck); ev.Data != i {
			t.Fatalf("stuck subscriber got %+v, want data %d", ev, i)
		}
	}
	assertClosed(t, stuck)

	if got := b.Evicted(); got != 1 {
		t.Fatalf("Evicted = %d, want 1", got)
	}
	if got := logs.warns.Load(); got != 1 {
		t.Fatalf("%d warnings logged, want 1", got)
	}
	if got := b.Subscribers("s"); got != 1 {
		t.Fatalf("Subscribers = %d, want 1", got)
	}
	cancelStuck() // cancelling an evicted subscriber is harmless
}

func TestDefaultBuffer(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	ch, cancel := b.Subscribe("s")
	defer cancel()
	for range DefaultBuffer {
		b.Publish("s", TypeHands, nil)
	}
	if b.Subscribers("s") != 1 || b.Evicted() != 0 {
		t.Fatalf("a full buffer of %d disconnected the subscriber", DefaultBuffer)
	}
	b.Publish("s", TypeHands, nil)
	if b.Subscribers("s") != 0 || b.Evicted() != 1 {
		t.Fatal("event beyond the buffer did not disconnect the subscriber")
	}
	for range DefaultBuffer {
		recv(t, ch)
	}
	assertClosed(t, ch)
}

func TestCancelIdempotent(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	ch, cancel := b.Subscribe("s")
	other, cancelOther := b.Subscribe("s")
	defer cancelOther()

	cancel()
	cancel()
	assertClosed(t, ch)
	if n := b.Subscribers("s"); n != 1 {
		t.Fatalf("Subscribers = %d, want 1", n)
	}
	b.Publish("s", TypeHands, nil) // must not send on the closed channel
	recv(t, other)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(cancelOther) // concurrent cancels close once
	}
	wg.Wait()
	assertClosed(t, other)
	if n := b.Subscribers("s"); n != 0 {
		t.Fatalf("Subscribers = %d, want 0", n)
	}
}

func TestClose(t *testing.T) {
	b := NewBroker(Options{})
	a, cancelA := b.Subscribe("a")
	c, cancelC := b.Subscribe("c")

	b.Close()
	assertClosed(t, a)
	assertClosed(t, c)
	cancelA() // after Close: harmless
	cancelC()
	b.Publish("a", TypeHands, nil) // no-op, no panic
	b.Close()                      // idempotent

	late, cancelLate := b.Subscribe("a")
	assertClosed(t, late)
	cancelLate()
	if n := b.Subscribers("a"); n != 0 {
		t.Fatalf("Subscribers after Close = %d, want 0", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	b := NewBroker(Options{Buffer: 8})
	stop := make(chan struct{})
	var publishers, subscribers sync.WaitGroup
	for p := range 4 {
		publishers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b.Publish([]string{"x", "y"}[(p+i)%2], TypeSpeakers, i)
			}
		})
	}
	for s := range 4 {
		subscribers.Go(func() {
			for range 20 {
				ch, cancel := b.Subscribe([]string{"x", "y"}[s%2])
				for range 3 {
					<-ch // publishers run until stop; a closed channel (evicted) is fine here
				}
				_ = b.Subscribers("x")
				cancel()
			}
		})
	}
	subscribers.Wait()
	close(stop)
	publishers.Wait()
	b.Close()
}

// TestEndClosesSessionStreams: End delivers one last event to every subscriber of the
// session, then closes their channels; other sessions are untouched, and the session can
// be subscribed to afresh.
func TestEndClosesSessionStreams(t *testing.T) {
	b := NewBroker(Options{})
	defer b.Close()
	a1, cancelA1 := b.Subscribe("a")
	defer cancelA1()
	a2, cancelA2 := b.Subscribe("a")
	defer cancelA2()
	other, cancelOther := b.Subscribe("b")
	defer cancelOther()

	b.Publish("a", TypeHands, "before")
	b.End("a", TypeSessionEnded, map[string]bool{"deleted": true})
	for _, ch := range []<-chan Event{a1, a2} {
		if ev := recv(t, ch); ev.Type != TypeHands {
			t.Fatalf("first event %+v, want the one published before End", ev)
		}
		if ev := recv(t, ch); ev.Type != TypeSessionEnded || ev.Session != "a" || ev.Seq != 2 {
			t.Fatalf("last event %+v, want session.ended seq 2", ev)
		}
		assertClosed(t, ch)
	}
	if n := b.Subscribers("a"); n != 0 {
		t.Fatalf("Subscribers(a) after End = %d, want 0", n)
	}
	assertEmpty(t, other)
	b.Publish("b", TypeHands, nil)
	recv(t, other)
	cancelA1() // harmless after End

	again, cancelAgain := b.Subscribe("a")
	defer cancelAgain()
	b.Publish("a", TypeSessionLive, nil)
	if ev := recv(t, again); ev.Type != TypeSessionLive {
		t.Fatalf("new subscriber got %+v", ev)
	}
}

// TestEndFullSubscriber: a subscriber whose buffer is full at End is closed without the
// last event and counted as evicted.
func TestEndFullSubscriber(t *testing.T) {
	b := NewBroker(Options{Buffer: 1})
	defer b.Close()
	ch, cancel := b.Subscribe("a")
	defer cancel()
	b.Publish("a", TypeHands, 1)
	b.End("a", TypeSessionEnded, nil)
	if ev := recv(t, ch); ev.Data != 1 {
		t.Fatalf("got %+v, want the buffered event", ev)
	}
	assertClosed(t, ch)
	if b.Evicted() != 1 {
		t.Fatalf("Evicted = %d, want 1", b.Evicted())
	}
	b.Close()
	b.End("a", TypeSessionEnded, nil) // after Close: no-op
}
