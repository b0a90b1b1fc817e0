// Package cluster coordinates Lectern nodes through Redis (issue 13): which
// nodes are alive and how loaded, which node is the source of each live
// publication, events between nodes, subscriber counts across nodes, where a
// new client should go ([Cluster.Place]), and the talk-back floor kept
// cluster-wide ([NewFloor]).
//
// Without a Redis URL nothing here runs: a single node stays as it was.
//
// Keys (all under "lectern:"): node:{id} (JSON of [Node], expires after three
// heartbeats), nodes (set of ids ever seen, pruned as their keys expire),
// pub:{session}:{publication} (the source node's id, expires with the
// heartbeat), pubs:{session} (set of claimed publication names),
// subs:{session} (hash node id -> subscribers), floor:* (see [NewFloor]).
// Liveness is always judged by node:{id}: a claim or a count whose node key is
// gone is dead, even before its own key expires.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Load is a node's load, sampled at each heartbeat.
type Load struct {
	Subscribers    int      `json:"subscribers"`     // WHEP + RTSP consumers on the node
	MaxSubscribers int      `json:"max_subscribers"` // 0 = unlimited
	CPU            float64  `json:"cpu"`             // process CPU share of the machine, 0..1
	Sessions       []string `json:"sessions"`        // sessions with a local publication or consumer
}

// Node is one live Lectern node as registered in Redis.
type Node struct {
	ID      string    `json:"id"`
	Region  string    `json:"region"`
	URL     string    `json:"url"` // public base URL, e.g. http://10.0.0.2:8080
	Load    Load      `json:"load"`
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
}

// Config configures a [Cluster].
type Config struct {
	RedisURL, NodeID, Region, PublicURL string
	// Load is sampled at each heartbeat (and by Place for this node); may be
	// nil. It must be quick and safe to call from another goroutine.
	Load func() Load
	// Heartbeat is the period of the node's refresh (default 1 s); node and
	// claim keys expire after 3 heartbeats.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// ErrUnavailable is wrapped by every error caused by Redis being unreachable
// (or answering an error): callers answer 503 on it.
var ErrUnavailable = errors.New("cluster coordinator (Redis) unavailable")

// ClaimedError says a publication is live on another node.
type ClaimedError struct{ Owner Node }

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("publication is live on node %s", e.Owner.ID)
}

// opTimeout bounds every Redis operation, so that an unreachable Redis turns
// into an error within about a second instead of a hung request.
const opTimeout = time.Second

// keyPrefix starts every key and channel of the cluster.
const keyPrefix = "lectern:"

// Channels of the pub/sub subscription.
const (
	eventsChannel = keyPrefix + "events"
	floorChannel  = keyPrefix + "floor"
)

func nodeKey(id string) string          { return keyPrefix + "node:" + id }
func subsKey(session string) string     { return keyPrefix + "subs:" + session }
func pubsKey(session string) string     { return keyPrefix + "pubs:" + session }
func pubKey(session, pub string) string { return keyPrefix + "pub:" + session + ":" + pub }
func unavailable(what string, err error) error {
	return fmt.Errorf("cluster: %s: %w: %w", what, ErrUnavailable, err)
}

const nodesKey = keyPrefix + "nodes"

// idPattern is what node ids and regions look like: they end up in keys,
// URLs and logs.
var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// claim names a publication this node holds.
type claim struct{ session, publication string }

// Cluster is this node's membership of the cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg    Config
	ttl    time.Duration
	log    *slog.Logger
	rdb    *redis.Client
	psMu   sync.Mutex // guards ps, which receive replaces when its connection died silently
	ps     *redis.PubSub
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	healthy   atomic.Bool
	closeOnce sync.Once

	mu     sync.Mutex
	self   Node
	claims map[claim]struct{}
	subs   map[string]int // session -> local subscribers (non-zero only)

	handlersMu sync.Mutex
	handlers   map[int]func(session, typ string, data json.RawMessage, from string)
	nextID     int

	floors floorHub
}

// Open validates cfg and joins the cluster: it registers the node and
// subscribes to the cluster's events before it returns, when Redis answers.
// It does not fail when Redis is down: the cluster is then not Healthy and
// keeps retrying in the background.
func Open(ctx context.Context, cfg Config) (*Cluster, error) {
	var errs []error
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		errs = append(errs, fmt.Errorf("redis URL: %w", err))
	}
	if !idPattern.MatchString(cfg.NodeID) {
		errs = append(errs, fmt.Errorf("node id %q: want 1-32 of a-z, 0-9, -", cfg.NodeID))
	}
	if cfg.Region != "" && !idPattern.MatchString(cfg.Region) {
		errs = append(errs, fmt.Errorf("region %q: want 1-32 of a-z, 0-9, -", cfg.Region))
	}
	if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("public URL %q: want http(s)://host[:port]", cfg.PublicURL))
	}
	if cfg.Heartbeat < 0 || (cfg.Heartbeat > 0 && cfg.Heartbeat < 10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("heartbeat %v: want at least 10ms", cfg.Heartbeat))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cluster: %w", errors.Join(errs...))
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Every call is bounded (opTimeout, contexts honoured); one retry at most,
	// so that a Redis that is down answers within about a second.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = opTimeout, opTimeout, opTimeout, opTimeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = 1
	opt.DialerRetries = 1      // the heartbeat retries; a dial that fails fails at once
	opt.DisableIdentity = true // CLIENT SETINFO is unknown before Redis 7.2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	now := time.Now().UTC()
	c := &Cluster{
		cfg:      cfg,
		ttl:      3 * cfg.Heartbeat,
		log:      cfg.Logger.With("node", cfg.NodeID),
		rdb:      redis.NewClient(opt),
		self:     Node{ID: cfg.NodeID, Region: cfg.Region, URL: cfg.PublicURL, Started: now, Seen: now},
		claims:   map[claim]struct{}{},
		subs:     map[string]int{},
		handlers: map[int]func(string, string, json.RawMessage, string){},
	}
	c.floors.c = c
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// The first heartbeat and subscription happen now, so that a node is
	// listed, and hears events, as soon as Open returns.
	if err := c.beat(ctx); err != nil {
		c.log.Warn("cluster: Redis unavailable at start; retrying", "err", err)
	} else {
		c.healthy.Store(true)
	}
	c.ps = c.rdb.Subscribe(ctx, eventsChannel, floorChannel)
	if c.healthy.Load() {
		c.awaitSubscribed(ctx)
	}
	c.wg.Add(2)
	go c.heartbeat()
	go c.receive()
	return c, nil
}

// awaitSubscribed reads the subscription's confirmations, so that Open
// returns only once every event published afterwards reaches this node, and
// the floor knows where it starts. When they do not come (Redis went away
// meanwhile), the receiving goroutine takes them later.
func (c *Cluster) awaitSubscribed(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for confirmed := 0; confirmed < 2; {
		msg, err := c.ps.ReceiveTimeout(ctx, opTimeout)
		if err != nil {
			return
		}
		if m, ok := msg.(*redis.Subscription); ok && m.Kind == "subscribe" {
			confirmed++
			if m.Channel == floorChannel {
				c.floors.subscribed(ctx)
			}
		}
	}
}

// Close leaves the cluster: it stops the heartbeat and the event subscription,
// then removes the node, its claims and its subscriber counts from Redis (when
// it answers), so that other nodes may take over at once rather than after the
// keys expire.
func (c *Cluster) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.cancel()
		c.psMu.Lock()
		_ = c.ps.Close() // unblocks the receiving goroutine
		c.psMu.Unlock()
		c.wg.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		c.mu.Lock()
		claims := make([]claim, 0, len(c.claims))
		for cl := range c.claims {
			claims = append(claims, cl)
		}
		sessions := make([]string, 0, len(c.subs))
		for s := range c.subs {
			sessions = append(sessions, s)
		}
		c.mu.Unlock()
		_, perr := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, cl := range claims {
				releaseScript.Eval(ctx, p, []string{pubKey(cl.session, cl.publication), pubsKey(cl.session)}, c.cfg.NodeID, cl.publication)
			}
			for _, s := range sessions {
				p.HDel(ctx, subsKey(s), c.cfg.NodeID)
			}
			p.Del(ctx, nodeKey(c.cfg.NodeID))
			p.SRem(ctx, nodesKey, c.cfg.NodeID)
			return nil
		})
		if perr != nil && c.healthy.Load() {
			c.log.Warn("cluster: leaving: Redis did not answer; the node's keys expire by themselves", "err", perr)
		}
		err = c.rdb.Close()
	})
	return err
}

// Self returns this node as last registered (its load as of the last heartbeat).
func (c *Cluster) Self() Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.self
	n.Load.Sessions = append([]string(nil), n.Load.Sessions...)
	return n
}

// Healthy reports whether the last heartbeat reached Redis.
func (c *Cluster) Healthy() bool { return c.healthy.Load() }

// heartbeat refreshes the node, its claims and counts every period, and
// reports Redis going away and coming back (once each).
func (c *Cluster) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		err := c.beat(c.ctx)
		if c.ctx.Err() != nil {
			return
		}
		switch was := c.healthy.Load(); {
		case err != nil && was:
			c.healthy.Store(false)
			c.log.Error("cluster: Redis unreachable; cross-node joins fail until it returns", "err", err)
		case err == nil && !was:
			c.healthy.Store(true)
			c.log.Info("cluster: Redis reachable again; node, claims and counts registered")
		}
	}
}

// beat writes the node key (with a fresh Load), re-asserts every claim held
// and every subscriber count, in one round trip. Re-asserting (rather than
// only extending) is what restores them after Redis lost them.
func (c *Cluster) beat(ctx context.Context) error {
	var load Load
	if c.cfg.Load != nil {
		load = c.cfg.Load()
	}
	c.mu.Lock()
	c.self.Load = load
	c.self.Seen = time.Now().UTC()
	self := c.self
	claims := make([]claim, 0, len(c.claims))
	for cl := range c.claims {
		claims = append(claims, cl)
	}
	subs := make(map[string]int, len(c.subs))
	for s, n := range c.subs {
		subs[s] = n
	}
	c.mu.Unlock()
	js, err := json.Marshal(self)
	if err != nil {
		return fmt.Errorf("cluster: encode node: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	// One script, one command: atomic, and on the client's ordinary path, so
	// that its success says that path works.
	args := make([]any, 0, 5+2*len(claims)+2*len(subs))
	args = append(args, keyPrefix, self.ID, c.ttl.Milliseconds(), js, len(claims))
	for _, cl := range claims {
		args = append(args, cl.session, cl.publication)
	}
	for s, n := range subs {
		args = append(args, s, n)
	}
	res, err := beatScript.Run(ctx, c.rdb, []string{nodesKey}, args...).Int64Slice()
	if err != nil {
		return unavailable("heartbeat", err)
	}
	for i, kept := range res {
		if kept == 0 && i < len(claims) {
			// Another node took it while this one was deemed dead (its
			// publisher reconnected there): that node is the source now.
			cl := claims[i]
			c.mu.Lock()
			delete(c.claims, cl)
			c.mu.Unlock()
			c.log.Warn("cluster: publication claimed by another node meanwhile; this node no longer its source",
				"session", cl.session, "publication", cl.publication)
		}
	}
	return nil
}

// Nodes returns the live nodes, sorted by id.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := nodesScript.Run(ctx, c.rdb, []string{nodesKey}, keyPrefix+"node:").StringSlice()
	if err != nil {
		return nil, unavailable("list nodes", err)
	}
	nodes := make([]Node, 0, len(res))
	for _, js := range res {
		var n Node
		if err := json.Unmarshal([]byte(js), &n); err != nil {
			return nil, fmt.Errorf("cluster: list nodes: bad node record: %w", err)
		}
		nodes = append(nodes, n)
	}
	// SMEMBERS has no order; the script sorted the ids.
	return nodes, nil
}

// beatScript registers a node, re-asserts its claims (like claimScript, but
// never over a live node's) and
// its subscriber counts. It returns, per claim, 1 when kept, 0 when a live
// node holds it now.
//
// KEYS: nodes set. ARGV: key prefix, node id, ttl ms, node JSON, number of
// claims, then session, publication per claim, then session, count per count.
var beatScript = redis.NewScript(`
local pre, id, ttl = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', pre .. 'node:' .. id, ARGV[4], 'PX', ttl)
redis.call('SADD', KEYS[1], id)
local n = tonumber(ARGV[5])
local out = {}
for i = 0, n - 1 do
  local s, p = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
  local key, set = pre .. 'pub:' .. s .. ':' .. p, pre .. 'pubs:' .. s
  local cur = redis.call('GET', key)
  if cur and cur ~= id and redis.call('EXISTS', pre .. 'node:' .. cur) == 1 then
    out[#out + 1] = 0
  else
    redis.call('SET', key, id, 'PX', ttl)
    redis.call('SADD', set, p)
    redis.call('PEXPIRE', set, ttl)
    out[#out + 1] = 1
  end
end
for i = 6 + 2 * n, #ARGV, 2 do
  local key = pre .. 'subs:' .. ARGV[i]
  redis.call('HSET', key, id, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return out
`)

// nodesScript returns the JSON of every live node, by id, and drops the ids
// whose key expired from the set.
var nodesScript = redis.NewScript(`
local ids = redis.call('SMEMBERS', KEYS[1])
table.sort(ids)
local out = {}
for _, id in ipairs(ids) do
  local js = redis.call('GET', ARGV[1] .. id)
  if js then out[#out + 1] = js else redis.call('SREM', KEYS[1], id) end
end
return out
`)

// Node returns live node id; false when it is not alive.
func (c *Cluster) Node(ctx context.Context, id string) (Node, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	js, err := c.rdb.Get(ctx, nodeKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, unavailable("node "+id, err)
	}
	var n Node
	if err := json.Unmarshal(js, &n); err != nil {
		return Node{}, false, fmt.Errorf("cluster: node %s: bad record: %w", id, err)
	}
	return n, true, nil
}

// Redis exposes the client for cluster-wide stores built elsewhere (the
// catalog). Its calls are bounded by the timeouts set here (about a second).
func (c *Cluster) Redis() *redis.Client { return c.rdb }
