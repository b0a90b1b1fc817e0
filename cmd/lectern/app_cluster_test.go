package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"lectern/cluster"
	"lectern/internal/testenv"
	"lectern/sfu"
)

// The events bridge between two nodes on a real Redis: this node's publications'
// events go to its pages and to the other node; the other node's come to this
// node's pages; local subscriber counts and relayed publications' events stay off
// the pages, except the end of a relayed publication no live node sources any more.
func TestClusterEventsBridge(t *testing.T) {
	rds := testenv.StartRedis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(id string) *cluster.Cluster {
		c, err := cluster.Open(context.Background(), cluster.Config{RedisURL: rds.URL(), NodeID: id, Region: "north",
			PublicURL: "http://127.0.0.1:1", Heartbeat: 200 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, b := open("node-a"), open("node-b")
	type ev struct{ session, typ string }
	atA := make(chan ev, 16) // what node A hears from B
	defer a.OnEvent(func(session, typ string, _ json.RawMessage, _ string) { atA <- ev{session, typ} })()
	pagesB := make(chan ev, 16) // what node B's pages are told by the bridge
	bridge := newEventBridge(b, func(session, typ string, _ any) { pagesB <- ev{session, typ} }, log)
	defer bridge.close()
	cl := &clusterNode{c: b, bridge: bridge}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Logger: log})
	defer reg.CloseAll()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := func(ch chan ev, where string) ev {
		t.Helper()
		select {
		case e := <-ch:
			return e
		case <-ctx.Done():
			t.Fatalf("nothing reached %s", where)
			return ev{}
		}
	}

	if cl.sessionEvent(reg, "s1", sfu.EventSubscribers, 3) {
		t.Error("a local subscriber count went to the pages (the web layer announces the cluster's sum)")
	}
	// Relayed publications' events: not to the pages, not to the other node. A
	// local event after them arrives first at A (the bridge keeps the order).
	trainer := sfu.PublicationInfo{Name: sfu.TrainerPublication}
	relayed := sfu.PublicationInfo{Name: sfu.TrainerPublication, Relayed: true}
	if cl.sessionEvent(reg, "s1", sfu.EventPublicationAdded, relayed) {
		t.Error("a relayed publication's event went to the pages")
	}
	if !cl.sessionEvent(reg, "s1", sfu.EventPublicationAdded, trainer) || !cl.sessionEvent(reg, "s1", sfu.EventSessionLive, nil) {
		t.Error("a local publication's events did not go to the pages")
	}
	if e := next(atA, "node A"); e != (ev{"s1", sfu.EventPublicationAdded}) {
		t.Fatalf("node A heard %v first, want s1's publication.added", e)
	}
	if e := next(atA, "node A"); e != (ev{"s1", sfu.EventSessionLive}) {
		t.Fatalf("node A heard %v, want s1's session.live", e)
	}

	// The other way: A's publications' events reach B's pages; other types do not.
	if err := a.Publish(ctx, "s2", "cluster.claimed", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "s2", sfu.EventPublicationRemoved, trainer); err != nil {
		t.Fatal(err)
	}
	if e := next(pagesB, "node B's pages"); e != (ev{"s2", sfu.EventPublicationRemoved}) {
		t.Fatalf("node B's pages got %v, want s2's publication.removed only", e)
	}

	// A relayed trainer ends on B while A still sources it (a relay lingering
	// out): the pages are told nothing. Once no node sources it (its origin
	// died), they are told.
	// until is what reached B's pages before a sentinel (the end of a relayed
	// publication of a session nobody sources): the bridge keeps the order.
	until := func(sentinel string) []ev {
		cl.sessionEvent(reg, sentinel, sfu.EventPublicationRemoved, relayed)
		var got []ev
		for e := next(pagesB, "node B's pages"); e.session != sentinel; e = next(pagesB, "node B's pages") {
			got = append(got, e)
		}
		return got
	}
	if err := a.ClaimPublication(ctx, "s3", sfu.TrainerPublication); err != nil {
		t.Fatal(err)
	}
	cl.sessionEvent(reg, "s3", sfu.EventPublicationRemoved, relayed)
	cl.sessionEvent(reg, "s3", sfu.EventSessionEnded, nil)
	if got := until("s4"); len(got) != 0 {
		t.Fatalf("node B's pages got %v while node A sources the trainer", got)
	}
	if err := a.ReleasePublication(ctx, "s3", sfu.TrainerPublication); err != nil {
		t.Fatal(err)
	}
	cl.sessionEvent(reg, "s3", sfu.EventPublicationRemoved, relayed)
	cl.sessionEvent(reg, "s3", sfu.EventSessionEnded, nil)
	if got, want := until("s5"), []ev{{"s3", sfu.EventPublicationRemoved}, {"s3", sfu.EventSessionEnded}}; !slices.Equal(got, want) {
		t.Fatalf("node B's pages got %v once nobody sources the trainer, want %v", got, want)
	}

	// The trainer leaves on A, which says so; B's relayed copy ends after its
	// grace, once A no longer sources it: B's pages were told already, and are
	// not told again. The next lecture's end is told again.
	data, _ := json.Marshal(trainer)
	if err := a.ClaimPublication(ctx, "s6", sfu.TrainerPublication); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "s6", sfu.EventPublicationRemoved, json.RawMessage(data)); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "s6", sfu.EventSessionEnded, nil); err != nil {
		t.Fatal(err)
	}
	if e := next(pagesB, "node B's pages"); e != (ev{"s6", sfu.EventPublicationRemoved}) {
		t.Fatalf("node B's pages got %v, want s6's publication.removed from A", e)
	}
	if e := next(pagesB, "node B's pages"); e != (ev{"s6", sfu.EventSessionEnded}) {
		t.Fatalf("node B's pages got %v, want s6's session.ended from A", e)
	}
	if err := a.ReleasePublication(ctx, "s6", sfu.TrainerPublication); err != nil {
		t.Fatal(err)
	}
	cl.sessionEvent(reg, "s6", sfu.EventPublicationRemoved, relayed)
	cl.sessionEvent(reg, "s6", sfu.EventSessionEnded, nil)
	if got := until("s7"); len(got) != 0 {
		t.Fatalf("node B's pages were told again %v when B's relayed copy ended after A said so", got)
	}
	cl.sessionEvent(reg, "s6", sfu.EventPublicationRemoved, relayed)
	cl.sessionEvent(reg, "s6", sfu.EventSessionEnded, nil)
	if got, want := until("s8"), []ev{{"s6", sfu.EventPublicationRemoved}, {"s6", sfu.EventSessionEnded}}; !slices.Equal(got, want) {
		t.Fatalf("node B's pages got %v at a later unannounced end, want %v", got, want)
	}
}

// A cluster node makes a session's programme only when the trainer publishes
// there: not from a relayed trainer (the origin's programme is relayed instead),
// and again once a publisher connected here takes the trainer's publication over.
func TestClusterProgrammeOnlyWhereTheTrainerIs(t *testing.T) {
	var events []sfu.PublicationInfo
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(_, typ string, data any) {
			if info, ok := data.(sfu.PublicationInfo); ok && typ == sfu.EventPublicationResumed {
				events = append(events, info)
			}
		}})
	defer reg.CloseAll()
	s := reg.Session("abcdefghij")
	var single *clusterNode
	cl := &clusterNode{}
	if !single.programmeHere(s) || single.trainerHereAgain(sfu.EventPublicationResumed, sfu.PublicationInfo{Name: sfu.TrainerPublication}) {
		t.Fatal("a single node: the programme is always made here, as before")
	}
	if cl.programmeHere(s) {
		t.Fatal("no trainer yet: no programme")
	}
	relay, err := s.ClaimRelay(sfu.TrainerPublication, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if cl.programmeHere(s) {
		t.Fatal("a relayed trainer: the programme must be the origin's, relayed")
	}
	relay.Release() // its origin died: the publication pauses, within the grace
	if _, err := s.Claim(sfu.TrainerPublication, func() {}); err != nil {
		t.Fatal(err)
	}
	if !cl.programmeHere(s) {
		t.Fatal("the trainer now publishes here: the programme is made here")
	}
	if len(events) != 1 || !cl.trainerHereAgain(sfu.EventPublicationResumed, events[0]) {
		t.Fatalf("the takeover's events %+v: want one publication.resumed, not relayed", events)
	}
	if cl.trainerHereAgain(sfu.EventPublicationResumed, sfu.PublicationInfo{Name: sfu.TrainerPublication, Relayed: true}) ||
		cl.trainerHereAgain(sfu.EventPublicationAdded, events[0]) {
		t.Fatal("only a resumed trainer publishing here starts the programme again")
	}
}
