package cluster

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// SetSubscribers records this node's subscriber count of session: written at
// once when Redis is reachable (bounded by about a second) and re-written by
// every heartbeat, so counts come back after Redis does. 0 removes it.
func (c *Cluster) SetSubscribers(session string, n int) {
	if session == "" || len(session) > 256 || n < 0 {
		return
	}
	c.mu.Lock()
	if n == 0 {
		delete(c.subs, session)
	} else {
		c.subs[session] = n
	}
	c.mu.Unlock()
	if !c.healthy.Load() {
		return // the heartbeat writes it when Redis is back
	}
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if n == 0 {
			p.HDel(ctx, subsKey(session), c.cfg.NodeID)
			return nil
		}
		p.HSet(ctx, subsKey(session), c.cfg.NodeID, n)
		p.PExpire(ctx, subsKey(session), c.ttl)
		return nil
	})
	if err != nil && c.ctx.Err() == nil {
		c.log.Debug("cluster: subscriber count not written; the heartbeat retries", "session", session, "err", err)
	}
}

// subscribersScript sums a session's per-node counts of live nodes.
//
// KEYS: subs hash. ARGV: node key prefix.
var subscribersScript = redis.NewScript(`
local t = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. t[i]) == 1 then sum = sum + tonumber(t[i + 1]) end
end
return sum
`)

// Subscribers returns session's subscribers summed over the live nodes.
func (c *Cluster) Subscribers(ctx context.Context, session string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	n, err := subscribersScript.Run(ctx, c.rdb, []string{subsKey(session)}, keyPrefix+"node:").Int()
	if err != nil {
		return 0, unavailable("subscribers of "+session, err)
	}
	return n, nil
}

// placeMargin is how much less loaded another node must be before a client is
// sent there: redirecting costs the client a round trip, and loads move.
const placeMargin = 0.1

// share is a node's load share, 0 (idle) .. 1 (full): its subscribers over
// its maximum, else (no maximum) its CPU share.
func share(l Load) float64 {
	if l.MaxSubscribers > 0 {
		return float64(l.Subscribers) / float64(l.MaxSubscribers)
	}
	return l.CPU
}

// full reports a node that takes no more subscribers.
func full(l Load) bool { return l.MaxSubscribers > 0 && l.Subscribers >= l.MaxSubscribers }

// Place returns the node a new client of region should use: among live nodes
// that are not full, those of the client's region first (any node when none
// of them is, or region is ""), then the lowest load share. redirect is false,
// and n this node, when this node is as good (within a margin): the caller
// then serves the client itself. When every node is full, it is this node
// too (the caller answers 503).
func (c *Cluster) Place(ctx context.Context, region string) (n Node, redirect bool, err error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return Node{}, false, fmt.Errorf("cluster: place: %w", err)
	}
	self := c.Self()
	if c.cfg.Load != nil {
		self.Load = c.cfg.Load() // fresher than the last heartbeat
	}
	var inRegion, any []Node
	for _, nd := range nodes {
		if nd.ID == self.ID {
			nd = self
		}
		if full(nd.Load) {
			continue
		}
		any = append(any, nd)
		if region != "" && nd.Region == region {
			inRegion = append(inRegion, nd)
		}
	}
	cands := any
	if len(inRegion) > 0 {
		cands = inRegion
	}
	if len(cands) == 0 {
		return self, false, nil
	}
	best, selfIn := cands[0], false
	for _, nd := range cands {
		if share(nd.Load) < share(best.Load) {
			best = nd // ties keep the lowest id: Nodes is sorted
		}
		selfIn = selfIn || nd.ID == self.ID
	}
	if best.ID == self.ID || (selfIn && share(self.Load) <= share(best.Load)+placeMargin) {
		return self, false, nil
	}
	return best, true, nil
}
