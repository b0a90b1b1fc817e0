package events

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultBuffer is the number of events a subscriber may have queued when Options.Buffer is 0.
const DefaultBuffer = 64

// Options configures a Broker.
type Options struct {
	// Buffer is how many events may wait for one subscriber. A subscriber that falls this
	// far behind is disconnected. It defaults to DefaultBuffer.
	Buffer int
	// Logger receives one line per subscriber disconnected for being slow. It defaults to
	// discarding everything.
	Logger *slog.Logger
}

// Broker fans out events to the subscribers of each session. It has no goroutine of its own:
// Publish delivers on the caller's goroutine, without blocking, and subscribers read their
// channels on theirs. All methods are safe for concurrent use.
//
// Events of one session reach each of its subscribers in the order they were published, with
// increasing Seq.
type Broker struct {
	buffer int
	log    *slog.Logger

	mu      sync.Mutex
	closed  bool
	seq     uint64
	subs    map[string]map[*subscriber]struct{} // session → subscribers
	evicted uint64
}

// subscriber is one Subscribe call; its channel is closed exactly once, by whoever removes it
// from Broker.subs while holding Broker.mu.
type subscriber struct {
	ch chan Event
}

// NewBroker returns a Broker configured by o (zero values take their defaults).
func NewBroker(o Options) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Broker{
		buffer: o.Buffer,
		log:    o.Logger.With("component", "events"),
		subs:   make(map[string]map[*subscriber]struct{}),
	}
}

// Publish sends an event of type typ with payload data to every current subscriber of session.
// It may be called from any goroutine, including the SFU's packet paths, and never blocks: it
// takes the broker's mutex only for non-blocking channel sends. A subscriber whose buffer is
// full is disconnected (its channel is closed), counted in Evicted and logged once; the
// other subscribers are not affected. data must not be modified afterwards (see Event.Data).
// After Close, Publish does nothing.
func (b *Broker) Publish(session, typ string, data any) { b.send(session, typ, data, false) }

// send delivers an event to session's subscribers; with last, every subscriber is then
// unsubscribed (its channel closed) whether or not the event fitted in its buffer.
func (b *Broker) send(session, typ string, data any, last bool) {
	var dropped int
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.seq++
	ev := Event{Session: session, Type: typ, Data: data, Seq: b.seq, Time: time.Now()}
	for sub := range b.subs[session] {
		select {
		case sub.ch <- ev:
			if last {
				b.removeLocked(session, sub)
			}
		default:
			b.removeLocked(session, sub)
			b.evicted++
			dropped++
		}
	}
	b.mu.Unlock()

	for range dropped { // log outside the lock: a slow log sink must not hold up other publishers
		b.log.Warn("subscriber too slow, disconnected", "session", session, "buffer", b.buffer,
			"seq", ev.Seq, "last", last)
	}
}

// Subscribe returns a channel that receives the events published to session from now on, and a
// cancel function that unsubscribes and closes the channel. cancel may be called any number of
// times, from any goroutine. The channel is also closed when the subscriber falls Buffer
// events behind or the broker is closed; the reader should then end (a browser reconnects and
// gets a new snapshot). After Close, Subscribe returns a closed channel.
//
// To miss nothing, subscribe before reading the state the events will update.
func (b *Broker) Subscribe(session string) (events <-chan Event, cancel func()) {
	sub := &subscriber{ch: make(chan Event, b.buffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(sub.ch)
		return sub.ch, func() {}
	}
	set := b.subs[session]
	if set == nil {
		set = make(map[*subscriber]struct{})
		b.subs[session] = set
	}
	set[sub] = struct{}{}
	return sub.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.removeLocked(session, sub)
	}
}

// End publishes a last event of type typ with payload data to session's subscribers, then
// closes their channels, so that their streams write it and end: the session is gone (deleted)
// and nothing more will come for it. A subscriber whose buffer is full is closed without it
// (and counted in Evicted), as Publish does. It does not stop anyone from subscribing to
// session again later: the caller makes sure a deleted session cannot be subscribed to.
// After Close, End does nothing.
func (b *Broker) End(session, typ string, data any) { b.send(session, typ, data, true) }

// removeLocked unsubscribes sub and closes its channel, if it is still subscribed. b.mu must
// be held.
func (b *Broker) removeLocked(session string, sub *subscriber) {
	set := b.subs[session]
	if _, ok := set[sub]; !ok {
		return
	}
	delete(set, sub)
	if len(set) == 0 {
		delete(b.subs, session)
	}
	close(sub.ch)
}

// Subscribers returns how many subscribers session has now.
func (b *Broker) Subscribers(session string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs[session])
}

// Evicted returns how many subscribers have been disconnected for being slow since the broker
// was created (a counter for metrics).
func (b *Broker) Evicted() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evicted
}

// Close closes every subscriber's channel and makes later Publish calls no-ops and later
// Subscribe calls return closed channels. It is idempotent; call it at shutdown, after the
// HTTP server has stopped accepting, so that the SSE handlers return.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for session, set := range b.subs {
		for sub := range set {
			close(sub.ch)
		}
		delete(b.subs, session)
	}
}
