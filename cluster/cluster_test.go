package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lectern/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// beat is the tests' heartbeat: keys expire after 3 of them.
const beat = 100 * time.Millisecond

// node is a Cluster under test with a load the test sets.
type node struct {
	*Cluster
	load atomic.Pointer[Load]
}

func (n *node) setLoad(l Load) { n.load.Store(&l) }

// open joins node id of region to the cluster on r; it is closed at cleanup.
func open(t *testing.T, r *testenv.Redis, id, region string) *node {
	t.Helper()
	n := &node{}
	n.setLoad(Load{})
	c, err := Open(context.Background(), Config{
		RedisURL: r.URL(), NodeID: id, Region: region, PublicURL: "http://" + id + ".test:8080",
		Load: func() Load { return *n.load.Load() }, Heartbeat: beat,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Cluster = c
	t.Cleanup(func() { _ = c.Close() })
	return n
}

// crash stops the node as a dying process would: nothing is removed from
// Redis, so its keys expire by themselves.
func (c *Cluster) crash() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.psMu.Lock()
		_ = c.ps.Close()
		c.psMu.Unlock()
		c.wg.Wait()
		_ = c.rdb.Close()
	})
}

// eventually polls cond until it holds; it fails the test after a generous
// deadline (this is not a speed assertion: it only keeps a broken test from
// hanging).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

func nodeIDs(t *testing.T, c *node) []string {
	t.Helper()
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids(nodes)
}

func TestOpenValidates(t *testing.T) {
	for _, cfg := range []Config{
		{RedisURL: "http://x", NodeID: "a", PublicURL: "http://a:1"},
		{RedisURL: "redis://127.0.0.1:1/0", NodeID: "A b", PublicURL: "http://a:1"},
		{RedisURL: "redis://127.0.0.1:1/0", NodeID: "", PublicURL: "http://a:1"},
		{RedisURL: "redis://127.0.0.1:1/0", NodeID: "a", Region: "North!", PublicURL: "http://a:1"},
		{RedisURL: "redis://127.0.0.1:1/0", NodeID: "a", PublicURL: "a:1"},
		{RedisURL: "redis://127.0.0.1:1/0", NodeID: "a", PublicURL: "http://a:1", Heartbeat: -time.Second},
	} {
		if c, err := Open(context.Background(), cfg); err == nil {
			_ = c.Close()
			t.Errorf("Open(%+v) accepted", cfg)
		}
	}
}

// TestOpenWithoutRedis: a node starts while Redis is down, is not healthy,
// fails its operations with ErrUnavailable, and joins when Redis comes up.
func TestOpenWithoutRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	a := open(t, r, "a", "north")
	if a.Healthy() {
		t.Fatal("healthy without Redis")
	}
	if _, err := a.Nodes(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Nodes without Redis: %v", err)
	}
	r.Restart()
	eventually(t, "healthy once Redis is up", a.Healthy)
	if got := nodeIDs(t, a); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("nodes %v", got)
	}
}

// TestNodesAndClaims: nodes list each other; the first claim wins and the
// second learns the owner; a released claim, or a dead owner's, can be taken.
func TestNodesAndClaims(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a := open(t, r, "a", "north")
	b := open(t, r, "b", "south")
	c := open(t, r, "c", "south")
	if got := nodeIDs(t, b); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("nodes %v", got)
	}
	if n, ok, err := b.Node(ctx, "a"); err != nil || !ok || n.URL != "http://a.test:8080" || n.Region != "north" || n.Started.IsZero() {
		t.Fatalf("Node(a) = %+v %v %v", n, ok, err)
	}
	if _, ok, err := b.Node(ctx, "zz"); ok || err != nil {
		t.Fatalf("Node(zz) = %v %v", ok, err)
	}

	if err := a.ClaimPublication(ctx, "s1", "trainer"); err != nil {
		t.Fatal(err)
	}
	var claimed *ClaimedError
	if err := b.ClaimPublication(ctx, "s1", "trainer"); !errors.As(err, &claimed) || claimed.Owner.ID != "a" || claimed.Owner.URL != "http://a.test:8080" {
		t.Fatalf("second claim: %v", err)
	} else if claimed.Error() != "publication is live on node a" {
		t.Fatalf("message %q", claimed.Error())
	}
	if err := a.ClaimPublication(ctx, "s1", "trainer"); err != nil {
		t.Fatalf("claiming again what is ours: %v", err)
	}
	if err := b.ClaimPublication(ctx, "s1", "site-hue"); err != nil {
		t.Fatal(err)
	}
	if err := c.ClaimPublication(ctx, "s2", "trainer"); err != nil {
		t.Fatal(err)
	}
	pubs, err := c.Publications(ctx, "s1")
	if err != nil || len(pubs) != 2 || pubs["trainer"].ID != "a" || pubs["site-hue"].ID != "b" {
		t.Fatalf("publications of s1: %v %v", pubs, err)
	}

	// Claims outlive many heartbeats while their node lives.
	seen := a.Self().Seen
	eventually(t, "a few heartbeats", func() bool { return a.Self().Seen.Sub(seen) > 4*beat })
	if err := c.ClaimPublication(ctx, "s1", "trainer"); !errors.As(err, &claimed) || claimed.Owner.ID != "a" {
		t.Fatalf("claim after some heartbeats: %v", err)
	}

	// Released: another takes it; releasing what is not ours does nothing.
	if err := b.ReleasePublication(ctx, "s1", "trainer"); err != nil {
		t.Fatal(err)
	}
	if pubs, _ := c.Publications(ctx, "s1"); pubs["trainer"].ID != "a" {
		t.Fatalf("a claim released by a node that did not own it: %v", pubs)
	}
	if err := a.ReleasePublication(ctx, "s1", "trainer"); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimPublication(ctx, "s1", "trainer"); err != nil {
		t.Fatalf("claiming a released publication: %v", err)
	}

	// b dies: its node and claims vanish after three heartbeats, and a
	// takes over; Publications lists only live claims.
	b.crash()
	if err := a.ClaimPublication(ctx, "s1", "trainer"); err == nil {
		// b's key may have expired already on a very slow machine; that is fine.
		t.Log("b's node key had expired already")
	}
	eventually(t, "a dead node leaves the list", func() bool { return slices.Equal(nodeIDs(t, a), []string{"a", "c"}) })
	if pubs, err := c.Publications(ctx, "s1"); err != nil || len(pubs) != 0 {
		t.Fatalf("publications of a dead node listed: %v %v", pubs, err)
	}
	if err := a.ClaimPublication(ctx, "s1", "trainer"); err != nil {
		t.Fatalf("claiming a dead node's publication: %v", err)
	}
	if err := c.ClaimPublication(ctx, "s1", "site-hue"); err != nil {
		t.Fatalf("claiming a dead node's publication: %v", err)
	}
	if pubs, _ := a.Publications(ctx, "s1"); len(pubs) != 2 || pubs["trainer"].ID != "a" || pubs["site-hue"].ID != "c" {
		t.Fatalf("publications after the take-over: %v", pubs)
	}

	// c closes: it leaves at once, its claims with it.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(t, a); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("nodes after c closed: %v", got)
	}
	if pubs, _ := a.Publications(ctx, "s2"); len(pubs) != 0 {
		t.Fatalf("a closed node's claims: %v", pubs)
	}
}

// TestClaimRace: nodes claiming one publication at once: exactly one wins,
// every other learns that one as the owner.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	nodes := []*node{open(t, r, "a", ""), open(t, r, "b", ""), open(t, r, "c", ""), open(t, r, "d", "")}
	for round := range 20 {
		pub := fmt.Sprint("p", round)
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() { errs[i] = n.ClaimPublication(ctx, "s", pub) })
		}
		wg.Wait()
		winner := ""
		for i, err := range errs {
			if err == nil {
				if winner != "" {
					t.Fatalf("round %d: two winners %s and %s", round, winner, nodes[i].Self().ID)
				}
				winner = nodes[i].Self().ID
			}
		}
		if winner == "" {
			t.Fatalf("round %d: no winner: %v", round, errs)
		}
		for _, err := range errs {
			var claimed *ClaimedError
			if err != nil && (!errors.As(err, &claimed) || claimed.Owner.ID != winner) {
				t.Fatalf("round %d: loser's error %v, want owner %s", round, err, winner)
			}
		}
	}
}

// recorder keeps the events a node's handler receives.
type recorder struct {
	mu   sync.Mutex
	got  []string
	from []string
}

func (r *recorder) handle(session, typ string, data json.RawMessage, from string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, session+"/"+typ+"/"+string(data))
	r.from = append(r.from, from)
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) has(e string) func() bool {
	return func() bool { return slices.Contains(r.events(), e) }
}

// TestEvents: events reach the other nodes in order and not the sender, and
// keep flowing after Redis restarts.
func TestEvents(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b, c := open(t, r, "a", ""), open(t, r, "b", ""), open(t, r, "c", "")
	var ra, rb, rc recorder
	a.OnEvent(ra.handle)
	b.OnEvent(rb.handle)
	cancelC := c.OnEvent(rc.handle)

	var want []string
	for i := range 100 {
		if err := a.Publish(ctx, "s1", "count", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf(`s1/count/{"n":%d}`, i))
	}
	// b's marker reaches a after a's own events (one channel, one order), so
	// once a has it, a has seen (and dropped) everything it sent.
	if err := b.Publish(ctx, "s1", "marker", "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a receives b's marker", ra.has(`s1/marker/"b"`))
	eventually(t, "c receives b's marker", rc.has(`s1/marker/"b"`))
	if got := ra.events(); len(got) != 1 {
		t.Fatalf("a received its own events: %v", got)
	}
	eventually(t, "b receives a's events", func() bool { return len(rb.events()) == 100 })
	if got := rb.events(); !slices.Equal(got, want) {
		t.Fatalf("b received %v", got)
	}
	if got := rc.events(); !slices.Equal(got[:100], want) {
		t.Fatalf("c received %v", got)
	}
	if rb.from[0] != "a" {
		t.Fatalf("from %q", rb.from[0])
	}

	// A cancelled handler hears nothing more.
	cancelC()
	// Redis restarts: subscriptions come back by themselves.
	r.Restart()
	n := 0
	eventually(t, "b hears a again after Redis restarted", func() bool {
		n++
		_ = a.Publish(ctx, "s1", "ping", n)
		return slices.ContainsFunc(rb.events(), func(e string) bool { return len(e) > 8 && e[:8] == "s1/ping/" })
	})
	eventually(t, "a healthy again", a.Healthy)
	before := len(rb.events())
	want = want[:0]
	for i := range 50 {
		if err := a.Publish(ctx, "s2", "after", i); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("s2/after/%d", i))
	}
	// Pings published while waiting for Redis may still arrive among these:
	// count the events after the restart alone.
	after := func() []string {
		return slices.DeleteFunc(rb.events()[before:], func(e string) bool { return e[:8] == "s1/ping/" })
	}
	eventually(t, "b receives the events after the restart", func() bool { return len(after()) >= 50 })
	got := after()
	if !slices.Equal(got, want) {
		t.Fatalf("after the restart b received %v", got)
	}
	if len(rc.events()) != 101 {
		t.Fatalf("a cancelled handler still receives: %d events", len(rc.events()))
	}
}

// TestRedisDown: while Redis is down the node is not healthy and every
// operation fails with ErrUnavailable; when it is back (even with its data
// lost), the node, its claims and counts are registered again.
func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a := open(t, r, "a", "north")
	b := open(t, r, "b", "north")
	if err := a.ClaimPublication(ctx, "s1", "trainer"); err != nil {
		t.Fatal(err)
	}
	a.SetSubscribers("s1", 3)
	b.SetSubscribers("s1", 2)
	f := NewFloor(a.Cluster, nil)
	if !a.Healthy() {
		t.Fatal("not healthy")
	}

	r.Stop()
	eventually(t, "unhealthy without Redis", func() bool { return !a.Healthy() && !b.Healthy() })
	checks := map[string]error{}
	_, checks["Nodes"] = a.Nodes(ctx)
	_, _, checks["Node"] = a.Node(ctx, "b")
	checks["Claim"] = b.ClaimPublication(ctx, "s1", "site-hue")
	checks["Release"] = a.ReleasePublication(ctx, "s9", "x")
	_, checks["Publications"] = a.Publications(ctx, "s1")
	checks["Publish"] = a.Publish(ctx, "s1", "x", 1)
	_, checks["Subscribers"] = a.Subscribers(ctx, "s1")
	_, _, checks["Place"] = a.Place(ctx, "north")
	checks["Raise"] = f.Raise(ctx, "s1", "hue", "")
	_, checks["Grant"] = f.Grant(ctx, "s1", "hue")
	_, _, checks["Snapshot"] = f.Snapshot(ctx, "s1")
	for op, err := range checks {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s without Redis: %v", op, err)
		}
	}
	a.SetSubscribers("s1", 4) // kept, written when Redis is back

	r.Restart()
	eventually(t, "healthy again", func() bool { return a.Healthy() && b.Healthy() })
	if pubs, err := b.Publications(ctx, "s1"); err != nil || pubs["trainer"].ID != "a" {
		t.Fatalf("claim after the restart: %v %v", pubs, err)
	}
	eventually(t, "counts rewritten", func() bool { n, _ := b.Subscribers(ctx, "s1"); return n == 6 })

	// Redis comes back empty: the heartbeat registers everything again.
	if err := a.Redis().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node keys re-registered", func() bool { return slices.Equal(nodeIDs(t, a), []string{"a", "b"}) })
	eventually(t, "claim re-registered", func() bool { p, _ := b.Publications(ctx, "s1"); return p["trainer"].ID == "a" })
	eventually(t, "counts re-registered", func() bool { n, _ := b.Subscribers(ctx, "s1"); return n == 6 })
	var claimed *ClaimedError
	if err := b.ClaimPublication(ctx, "s1", "trainer"); !errors.As(err, &claimed) {
		t.Fatalf("claiming a's publication after the flush: %v", err)
	}
}

// TestSubscribersAndPlace: counts are summed over live nodes; placement
// prefers the client's region, then the least loaded node.
func TestSubscribersAndPlace(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a := open(t, r, "a", "north")
	b := open(t, r, "b", "north")
	c := open(t, r, "c", "south")
	a.SetSubscribers("s1", 3)
	b.SetSubscribers("s1", 4)
	c.SetSubscribers("s2", 9)
	if n, err := c.Subscribers(ctx, "s1"); err != nil || n != 7 {
		t.Fatalf("subscribers of s1: %d %v", n, err)
	}
	a.SetSubscribers("s1", 0)
	if n, _ := c.Subscribers(ctx, "s1"); n != 4 {
		t.Fatalf("subscribers of s1 after a's left: %d", n)
	}
	if n, _ := c.Subscribers(ctx, "nothing"); n != 0 {
		t.Fatalf("subscribers of an unknown session: %d", n)
	}

	a.setLoad(Load{Subscribers: 50, MaxSubscribers: 100})
	b.setLoad(Load{Subscribers: 10, MaxSubscribers: 100})
	c.setLoad(Load{Subscribers: 0, MaxSubscribers: 100})
	eventually(t, "loads published", func() bool {
		nodes, _ := a.Nodes(ctx)
		return len(nodes) == 3 && nodes[0].Load.Subscribers == 50 && nodes[1].Load.Subscribers == 10
	})
	place := func(from *node, region, want string, redirect bool) {
		t.Helper()
		n, red, err := from.Place(ctx, region)
		if err != nil || n.ID != want || red != redirect {
			t.Fatalf("Place from %s for %q = %s %v %v; want %s %v", from.Self().ID, region, n.ID, red, err, want, redirect)
		}
	}
	place(a, "north", "b", true)  // same region, less loaded
	place(b, "north", "b", false) // self is the best
	place(a, "south", "c", true)  // region first
	place(c, "north", "b", true)  // c is idle, but not in the region
	place(a, "", "c", true)       // no region: the least loaded
	place(a, "east", "c", true)   // no node there: the least loaded
	place(c, "", "c", false)

	// Within the margin, self serves.
	a.setLoad(Load{Subscribers: 15, MaxSubscribers: 100})
	place(a, "north", "a", false)
	// A full node sends clients away even within its region; when every
	// node is full, it serves (and the caller answers 503).
	a.setLoad(Load{Subscribers: 100, MaxSubscribers: 100})
	place(a, "north", "b", true)
	b.setLoad(Load{Subscribers: 100, MaxSubscribers: 100})
	c.setLoad(Load{Subscribers: 100, MaxSubscribers: 100})
	eventually(t, "loads published", func() bool {
		nodes, _ := a.Nodes(ctx)
		return nodes[1].Load.Subscribers == 100 && nodes[2].Load.Subscribers == 100
	})
	place(a, "north", "a", false)
	// Without a maximum, CPU decides.
	a.setLoad(Load{CPU: 0.9})
	b.setLoad(Load{CPU: 0.2})
	eventually(t, "loads published", func() bool {
		nodes, _ := a.Nodes(ctx)
		return nodes[1].Load.CPU == 0.2
	})
	place(a, "north", "b", true)

	// A dead node's counts no longer add up.
	b.crash()
	eventually(t, "a dead node's count dropped", func() bool { n, _ := a.Subscribers(ctx, "s1"); return n == 0 })
	if n, _ := a.Subscribers(ctx, "s2"); n != 9 {
		t.Fatalf("subscribers of s2: %d", n)
	}
}

// TestSilentRedis: a Redis that accepts connections but never answers (a
// hung server, a half-dead link) makes operations fail with ErrUnavailable
// instead of hanging, and Close still returns.
func TestSilentRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})

	c, err := Open(context.Background(), Config{RedisURL: "redis://" + ln.Addr().String() + "/0", NodeID: "a",
		PublicURL: "http://a.test:8080", Heartbeat: beat})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Healthy() {
		t.Fatal("healthy with a silent Redis")
	}
	if _, err := c.Nodes(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Nodes: %v", err)
	}
	if err := c.ClaimPublication(context.Background(), "s", "p"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Claim: %v", err)
	}
}
