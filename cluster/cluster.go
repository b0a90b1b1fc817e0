// Package cluster coordinates Lectern nodes through Redis (issue 13): which
// nodes are alive and how loaded, which node is the source of each live
// publication, events between nodes, subscriber counts across nodes, where a
// new client should go, and the talk-back floor kept cluster-wide.
//
// Without a Redis URL nothing here runs: a single node stays as it was.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"lectern/floor"
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
	// Load is sampled at each heartbeat; may be nil.
	Load func() Load
	// Heartbeat is the period of the node's refresh (default 1 s); node and
	// claim keys expire after 3 heartbeats.
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// ErrUnavailable is wrapped by every error caused by Redis being unreachable.
var ErrUnavailable = errors.New("cluster coordinator (Redis) unavailable")

// ClaimedError says a publication is live on another node.
type ClaimedError struct{ Owner Node }

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("publication is live on node %s", e.Owner.ID)
}

// Cluster is this node's membership of the cluster.
type Cluster struct {
	cfg  Config
	rdb  *redis.Client
	self Node
}

// Open validates cfg and joins the cluster. It does not fail when Redis is
// down: the cluster is then not Healthy and keeps retrying.
func Open(ctx context.Context, cfg Config) (*Cluster, error) {
	return nil, errors.New("cluster: not implemented yet")
}

// Close leaves the cluster: stops the heartbeat and event goroutines and
// releases the node's claims.
func (c *Cluster) Close() error { return nil }

// Self returns this node as last registered.
func (c *Cluster) Self() Node { return c.self }

// Healthy reports whether the last contact with Redis succeeded.
func (c *Cluster) Healthy() bool { return false }

// Nodes returns the live nodes, sorted by id.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) { return nil, ErrUnavailable }

// Node returns live node id; false when it is not alive.
func (c *Cluster) Node(ctx context.Context, id string) (Node, bool, error) {
	return Node{}, false, ErrUnavailable
}

// ClaimPublication makes this node the source of session's publication.
func (c *Cluster) ClaimPublication(ctx context.Context, session, publication string) error {
	return ErrUnavailable
}

// ReleasePublication gives up this node's claim.
func (c *Cluster) ReleasePublication(ctx context.Context, session, publication string) error {
	return ErrUnavailable
}

// Publications returns session's live publications and their source nodes.
func (c *Cluster) Publications(ctx context.Context, session string) (map[string]Node, error) {
	return nil, ErrUnavailable
}

// Publish sends an event to every other node's handlers.
func (c *Cluster) Publish(ctx context.Context, session, typ string, data any) error {
	return ErrUnavailable
}

// OnEvent adds a handler of other nodes' events.
func (c *Cluster) OnEvent(fn func(session, typ string, data json.RawMessage, from string)) (cancel func()) {
	return func() {}
}

// SetSubscribers records this node's subscriber count of session.
func (c *Cluster) SetSubscribers(session string, n int) {}

// Subscribers sums session's subscribers over live nodes.
func (c *Cluster) Subscribers(ctx context.Context, session string) (int, error) {
	return 0, ErrUnavailable
}

// Place returns the node a new client of region should use.
func (c *Cluster) Place(ctx context.Context, region string) (n Node, redirect bool, err error) {
	return c.self, false, nil
}

// Redis exposes the client for cluster-wide stores built elsewhere.
func (c *Cluster) Redis() *redis.Client { return c.rdb }

// NewFloor returns the floor kept in Redis.
func NewFloor(c *Cluster, hook func(floor.Event)) floor.Floor { return floor.NewMemory(hook) }
