package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/auth"
	"lectern/catalog"
	"lectern/cluster"
	"lectern/cluster/relay"
	"lectern/floor"
	"lectern/sfu"
)

// clusterNode is what a clustered node runs beside a single node's parts (issue
// 13): the coordinator, the relays in both directions, the bridge of the session
// events between nodes. A single node has none (app.cl is nil), and every method
// here is then a no-op returning nil.
type clusterNode struct {
	c      *cluster.Cluster
	relays *relay.Manager // publications of other nodes pulled here
	origin *relay.Handler // this node's publications served to other nodes
	load   *loadSampler
	bridge *eventBridge
}

// openCatalog opens the session catalogue: the file in the data dir for a single
// node; for a cluster node, the coordinator first (its Redis client is the
// catalogue's), then the catalogue shared in Redis, seeded from the data dir's
// sessions when the cluster's is empty (a single node turning into the first node
// of a cluster keeps its sessions).
func (a *app) openCatalog() (*catalog.Catalog, error) {
	cfg := a.cfg
	if cfg.RedisURL == "" {
		return catalog.Open(cfg.DataDir) // the catalogue holds nothing open: each change is written whole
	}
	cl := &clusterNode{load: newLoadSampler(cfg.NodeMaxSubscribers)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Config{RedisURL: cfg.RedisURL, NodeID: cfg.NodeID, Region: cfg.Region,
		PublicURL: cfg.PublicURL, Load: cl.load.Load, Logger: a.log})
	if err != nil {
		return nil, err
	}
	cl.c = c
	a.cl = cl
	// Pushed first of the cluster's parts, so closed last: the claims are released
	// once every publication here has ended.
	a.cleanup.push("cluster", func(context.Context) error { return c.Close() })
	cat, err := catalog.OpenRedis(catalog.RedisConfig{Client: c.Redis(), Seed: cfg.DataDir, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("shared catalogue: %w", err)
	}
	a.log.Info("clustered", "node", cfg.NodeID, "region", cfg.Region, "url", cfg.PublicURL, "redis_healthy", c.Healthy())
	return cat, nil
}

// openRelays starts what needs the registry and the WebRTC edge: the relays
// (pushed after the sessions, so they end before the sessions close) and the
// events bridge. Nothing for a single node.
func (a *app) openRelays(issuer *auth.Issuer, metrics *prometheus.Registry) {
	cl := a.cl
	if cl == nil {
		return
	}
	cl.load.reg.Store(a.registry)
	cl.origin = relay.NewHandler(relay.ServerConfig{Registry: a.registry, Edge: a.edge, Issuer: issuer, Logger: a.log})
	cl.relays = relay.New(relay.Config{Registry: a.registry, Edge: a.edge, Issuer: issuer, NodeID: a.cfg.NodeID, Logger: a.log})
	a.cleanup.push("relays", func(context.Context) error {
		// Edges pulling from here first (their peers see the end and re-pull
		// elsewhere), then the pulls.
		return errors.Join(cl.origin.Close(), cl.relays.Close())
	})
	metrics.MustRegister(relay.NewCollector(cl.origin, cl.relays))
	cl.bridge = newEventBridge(cl.c, a.broker.Publish, a.log)
	reg := a.registry
	cl.bridge.relayedHere = func(session, name string) bool {
		s, ok := reg.Lookup(session)
		if !ok {
			return false
		}
		p, ok := s.Publication(name)
		return ok && p.Relayed()
	}
	a.cleanup.push("cluster events", func(context.Context) error { cl.bridge.close(); return nil })
}

// The fields web.Config takes from a cluster node; nil for a single node.

func (cl *clusterNode) cluster() *cluster.Cluster {
	if cl == nil {
		return nil
	}
	return cl.c
}

func (cl *clusterNode) manager() *relay.Manager {
	if cl == nil {
		return nil
	}
	return cl.relays
}

func (cl *clusterNode) originHandler() *relay.Handler {
	if cl == nil {
		return nil
	}
	return cl.origin
}

// newFloor is web.Config.NewFloor: the floor kept in Redis, whose every change
// every node's hook sees; nil (the in-memory floor) for a single node.
func (cl *clusterNode) newFloor() func(hook func(floor.Event)) floor.Floor {
	if cl == nil {
		return nil
	}
	return func(hook func(floor.Event)) floor.Floor { return cluster.NewFloor(cl.c, hook) }
}

// nodeLoad is web.Config.NodeLoad.
func (cl *clusterNode) nodeLoad() func() cluster.Load {
	if cl == nil {
		return nil
	}
	return cl.load.Load
}

// sessionEvent takes a session event of the local registry (app.onEvent) and says
// whether it goes to this node's pages: the events of a relayed publication do not
// (the pages had them from the origin, and a relay ending after its linger is not
// the trainer leaving), nor the local subscriber counts (the web layer announces
// the cluster-wide sum). The events of this node's own publications are sent to
// the other nodes. One exception: a relayed publication that ends when no live
// node sources it any more (its origin died and nobody took over) did end, and
// nobody else can say so: the bridge checks and then tells this node's pages.
func (cl *clusterNode) sessionEvent(reg *sfu.Registry, session, typ string, data any) (local bool) {
	if cl == nil {
		return true
	}
	if cl.bridge == nil { // before openRelays: nothing is live yet
		return true
	}
	relayed := false
	switch typ {
	case sfu.EventSubscribers:
		return false
	case sfu.EventPublicationAdded, sfu.EventPublicationPaused, sfu.EventPublicationResumed, sfu.EventPublicationRemoved:
		if info, ok := data.(sfu.PublicationInfo); ok {
			relayed = info.Relayed
			if info.Name == sfu.TrainerPublication && typ == sfu.EventPublicationRemoved {
				cl.bridge.trainerRemoved(session, relayed)
			}
		}
	case sfu.EventSessionLive:
		if s, ok := reg.Lookup(session); ok {
			if p, ok := s.Publication(sfu.TrainerPublication); ok {
				relayed = p.Relayed()
			}
		}
	case sfu.EventSessionEnded:
		relayed = cl.bridge.trainerEnded(session)
	default:
		return true
	}
	if relayed {
		if typ == sfu.EventPublicationRemoved || typ == sfu.EventSessionEnded {
			cl.bridge.enqueue(bridged{session: session, typ: typ, data: data, orphan: true})
		}
		return false
	}
	cl.bridge.enqueue(bridged{session: session, typ: typ, data: data})
	return true
}

// programmeHere says whether this node makes session's programme: a single node
// does; a cluster node only when the trainer publishes here, not when its
// publication is a relay (the origin makes the programme, and this node relays
// it like any publication: made here too, it would stand in the relay's way).
func (cl *clusterNode) programmeHere(s *sfu.Session) bool {
	if cl == nil {
		return true
	}
	p, ok := s.Publication(sfu.TrainerPublication)
	return ok && !p.Relayed()
}

// trainerHereAgain says whether an event is the trainer's publication, relayed
// here until now, taken over by a publisher connected here (the trainer moved to
// this node when its origin failed): what follows a publication's arrival (the
// programme, the recording) starts again here. Never for a single node.
func (cl *clusterNode) trainerHereAgain(typ string, data any) bool {
	if cl == nil || typ != sfu.EventPublicationResumed {
		return false
	}
	info, ok := data.(sfu.PublicationInfo)
	return ok && info.Name == sfu.TrainerPublication && !info.Relayed
}

// bridgedTypes are the session events nodes send each other: the publications'
// life, which every node's pages show whichever node carries the media.
var bridgedTypes = map[string]bool{
	sfu.EventPublicationAdded: true, sfu.EventPublicationPaused: true, sfu.EventPublicationResumed: true,
	sfu.EventPublicationRemoved: true, sfu.EventSessionLive: true, sfu.EventSessionEnded: true,
}

// eventBridge sends this node's session events to the other nodes and hands
// theirs to the local broker. Sending is Redis I/O, which must not hold up the
// sfu goroutine emitting the event: events wait in a bounded queue for one
// sender goroutine; a full queue (Redis slow or down) drops, counted and logged.
type eventBridge struct {
	c       *cluster.Cluster
	local   func(session, typ string, data any) // this node's pages (the broker)
	log     *slog.Logger
	queue   chan bridged
	done    chan struct{}
	wg      sync.WaitGroup
	unwatch func()
	dropped atomic.Uint64
	pending atomic.Int64 // events queued or being sent (the tests wait for 0)
	// relayedHere says whether a publication is relayed to this node (set once,
	// before any event; nil: taken as relayed).
	relayedHere func(session, name string) bool

	mu            sync.Mutex
	relayedEnding map[string]bool // session -> its trainer publication just removed was relayed
	// endHeard: the pages here were told by a publication's source node that it
	// ended (session/name), while this node still had a relayed copy of it. The
	// copy ends later (its relay sees the origin stop, then the grace runs out)
	// and must not tell the pages a second time. An entry goes when the copy's
	// end is seen, or when the publication comes back.
	endHeard map[string]bool
}

type bridged struct {
	session, typ string
	data         any
	// orphan: the end of a relayed publication, told to this node's pages only if
	// no live node sources the publication any more.
	orphan bool
}

// bridgeQueue bounds the events waiting for Redis: a few seconds of a busy node.
const bridgeQueue = 1024

func newEventBridge(c *cluster.Cluster, publish func(session, typ string, data any), log *slog.Logger) *eventBridge {
	b := &eventBridge{c: c, local: publish, log: log, queue: make(chan bridged, bridgeQueue), done: make(chan struct{}),
		relayedEnding: map[string]bool{}, endHeard: map[string]bool{}}
	b.unwatch = c.OnEvent(func(session, typ string, data json.RawMessage, _ string) {
		// Other nodes' events of the publications' life, and nothing else (the
		// web layer's own cluster events go to its handlers, not to pages).
		if bridgedTypes[typ] {
			b.heard(session, typ, data)
			publish(session, typ, data)
		}
	})
	b.wg.Add(1)
	go b.run()
	return b
}

func (b *eventBridge) enqueue(e bridged) {
	b.pending.Add(1)
	select {
	case b.queue <- e:
	default:
		b.pending.Add(-1)
		if n := b.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th ... drop
			b.log.Warn("cluster: session events not sent to other nodes (Redis slow or down)", "dropped", n)
		}
	}
}

func (b *eventBridge) run() {
	defer b.wg.Done()
	for {
		select {
		case <-b.done:
			return
		case e := <-b.queue:
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if e.orphan {
				b.orphaned(ctx, e)
			} else if err := b.c.Publish(ctx, e.session, e.typ, e.data); err != nil {
				b.log.Debug("cluster: session event not sent", "session", e.session, "type", e.typ, "err", err)
			}
			cancel()
			b.pending.Add(-1)
		}
	}
}

// orphaned tells this node's pages that a relayed publication ended when no live
// node sources it (Redis unreachable: nothing is said; the relay may only have
// lingered out).
func (b *eventBridge) orphaned(ctx context.Context, e bridged) {
	name := sfu.TrainerPublication // session.ended is the trainer's
	if info, ok := e.data.(sfu.PublicationInfo); ok {
		name = info.Name
	}
	key := e.session + "/" + name
	b.mu.Lock()
	heard := b.endHeard[key]
	if heard && (e.typ == sfu.EventSessionEnded || name != sfu.TrainerPublication) {
		delete(b.endHeard, key) // the trainer's entry also covers the session.ended after it
	}
	b.mu.Unlock()
	if heard {
		return // its source said so already
	}
	pubs, err := b.c.Publications(ctx, e.session)
	if err != nil {
		return
	}
	if _, live := pubs[name]; !live {
		b.local(e.session, e.typ, e.data)
	}
}

// heard records what another node said of its publication (see endHeard).
func (b *eventBridge) heard(session, typ string, data json.RawMessage) {
	if typ != sfu.EventPublicationRemoved && typ != sfu.EventPublicationAdded && typ != sfu.EventPublicationResumed {
		return
	}
	var info struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(data, &info) != nil || info.Name == "" {
		return
	}
	key := session + "/" + info.Name
	if typ == sfu.EventPublicationRemoved {
		if b.relayedHere == nil || b.relayedHere(session, info.Name) { // else no copy here will end later
			b.mu.Lock()
			b.endHeard[key] = true
			b.mu.Unlock()
		}
		return
	}
	b.mu.Lock()
	delete(b.endHeard, key)
	b.mu.Unlock()
}

// trainerRemoved and trainerEnded carry "relayed" from the trainer's
// publication.removed to the session.ended the sfu emits right after it, which
// has no data.
func (b *eventBridge) trainerRemoved(session string, relayed bool) {
	b.mu.Lock()
	b.relayedEnding[session] = relayed
	b.mu.Unlock()
}

func (b *eventBridge) trainerEnded(session string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	relayed := b.relayedEnding[session]
	delete(b.relayedEnding, session)
	return relayed
}

func (b *eventBridge) close() {
	b.unwatch()
	close(b.done)
	b.wg.Wait()
}

// loadSampler measures this node's load for the heartbeat, placement and
// /api/nodes: subscribers and sessions from the registry, the process's CPU share
// of the machine from its CPU time (getrusage) between two samples.
type loadSampler struct {
	max int
	reg atomic.Pointer[sfu.Registry] // set once the registry exists

	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
	cpu      float64
}

// minCPUWindow: samples closer than this reuse the last CPU share (a share over a
// few milliseconds says nothing).
const minCPUWindow = 500 * time.Millisecond

func newLoadSampler(maxSubscribers int) *loadSampler {
	return &loadSampler{max: maxSubscribers, lastCPU: processCPU(), lastWall: time.Now()}
}

// Load samples the node's load; quick, and safe from any goroutine.
func (l *loadSampler) Load() cluster.Load {
	out := cluster.Load{MaxSubscribers: l.max, CPU: l.cpuShare(), Sessions: []string{}}
	reg := l.reg.Load()
	if reg == nil {
		return out
	}
	for _, id := range reg.IDs() {
		s, ok := reg.Lookup(id)
		if !ok {
			continue
		}
		n := s.Subscribers()
		out.Subscribers += n
		if n > 0 || s.Connecting() > 0 || len(s.Publications()) > 0 {
			out.Sessions = append(out.Sessions, id)
		}
	}
	return out
}

func (l *loadSampler) cpuShare() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	wall := now.Sub(l.lastWall)
	if wall < minCPUWindow {
		return l.cpu
	}
	used := processCPU()
	share := float64(used-l.lastCPU) / float64(wall) / float64(runtime.NumCPU())
	l.cpu = min(max(share, 0), 1)
	l.lastCPU, l.lastWall = used, now
	return l.cpu
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
