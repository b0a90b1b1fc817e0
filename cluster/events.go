package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// envelope is an event on the wire.
type envelope struct {
	From    string          `json:"from"`
	Session string          `json:"session"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Publish sends an event of session to every OTHER node's handlers (it is not
// echoed to this node's). data is encoded as JSON. Redis pub/sub delivers at
// most once: a node that is cut off from Redis misses what is published
// meanwhile.
func (c *Cluster) Publish(ctx context.Context, session, typ string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("cluster: publish %s on %s: encode: %w", typ, session, err)
	}
	msg, err := json.Marshal(envelope{From: c.cfg.NodeID, Session: session, Type: typ, Data: raw})
	if err != nil {
		return fmt.Errorf("cluster: publish %s on %s: encode: %w", typ, session, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.rdb.Publish(ctx, eventsChannel, msg).Err(); err != nil {
		return unavailable(fmt.Sprintf("publish %s on %s", typ, session), err)
	}
	return nil
}

// OnEvent adds a handler of other nodes' events; cancel removes it. Handlers
// run one at a time on the cluster's one receiving goroutine, in the order the
// events reached Redis: they must not block (hand the event over to a channel
// or a non-blocking fan-out), or every later event waits.
func (c *Cluster) OnEvent(fn func(session, typ string, data json.RawMessage, from string)) (cancel func()) {
	c.handlersMu.Lock()
	id := c.nextID
	c.nextID++
	c.handlers[id] = fn
	c.handlersMu.Unlock()
	return func() {
		c.handlersMu.Lock()
		delete(c.handlers, id)
		c.handlersMu.Unlock()
	}
}

// receive runs the pub/sub subscription until Close: it dispatches events to
// the handlers and floor changes to the floors. go-redis reconnects and
// resubscribes on the next Receive after a failure; this loop backs off while
// Redis is down, and pings an idle connection: one that answers nothing for
// two idle periods died silently (a network cut) and is replaced.
func (c *Cluster) receive() {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	idle := 3 * c.cfg.Heartbeat
	silent := 0 // idle periods without anything received
	for {
		c.psMu.Lock()
		ps := c.ps
		c.psMu.Unlock()
		msg, err := ps.ReceiveTimeout(c.ctx, idle)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() {
				if silent++; silent >= 2 {
					silent = 0
					c.resubscribe(ps)
					continue
				}
				_ = ps.Ping(c.ctx) // its error, if any, makes the next Receive reconnect
				continue
			}
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff, silent = 50*time.Millisecond, 0
		c.handle(msg)
	}
}

// resubscribe replaces a subscription whose connection died silently.
func (c *Cluster) resubscribe(old *redis.PubSub) {
	c.log.Warn("cluster: event subscription silent; subscribing anew")
	_ = old.Close()
	c.psMu.Lock()
	defer c.psMu.Unlock()
	if c.ctx.Err() != nil {
		return // Close closes c.ps
	}
	c.ps = c.rdb.Subscribe(c.ctx, eventsChannel, floorChannel)
}

// handle dispatches one message of the subscription.
func (c *Cluster) handle(msg any) {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Channel == floorChannel && m.Kind == "subscribe" {
			// (Re)subscribed: floor changes made while not subscribed are
			// fetched now (see floorHub).
			c.floors.subscribed(c.ctx)
		}
	case *redis.Message:
		switch m.Channel {
		case eventsChannel:
			c.dispatch(m.Payload)
		case floorChannel:
			c.floors.received(c.ctx, m.Payload)
		}
	}
}

// dispatch hands one event to the handlers, unless this node sent it.
func (c *Cluster) dispatch(payload string) {
	var e envelope
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		c.log.Warn("cluster: dropped a malformed event", "err", err)
		return
	}
	if e.From == c.cfg.NodeID {
		return
	}
	c.handlersMu.Lock()
	fns := make([]func(string, string, json.RawMessage, string), 0, len(c.handlers))
	for _, fn := range c.handlers {
		fns = append(fns, fn)
	}
	c.handlersMu.Unlock()
	for _, fn := range fns {
		fn(e.Session, e.Type, e.Data, e.From)
	}
}
