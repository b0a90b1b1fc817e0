package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"lectern/floor"
	"lectern/internal/testenv"
)

// floorRec keeps the events a floor hook receives.
type floorRec struct {
	mu     sync.Mutex
	events []floor.Event
	all    []floor.Event // never taken
}

func (r *floorRec) hook(e floor.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.all = append(r.all, e)
	r.mu.Unlock()
}

func (r *floorRec) take() []floor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func (r *floorRec) seen() []floor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

func changes(evs []floor.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Session+":"+string(e.Change)+":"+e.Participant)
	}
	return out
}

// describe renders events fully, to compare two nodes' sequences.
func describe(evs []floor.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s %s %q %s hands=%v speakers=%v", e.Session, e.Change, e.Participant, e.Display,
			e.At.Format("15:04:05.000000000"), e.Hands, e.Speakers))
	}
	return out
}

// TestFloor walks floor/floor_test.go's TestMemoryFloor through the floor in
// Redis: a session through hands, a grant and a revoke, checking the state
// and the events after each step, and that another session is apart. The
// other node's hook sees the same events, in the same order.
func TestFloor(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var rec, recB floorRec
	f := NewFloor(a.Cluster, rec.hook)
	fb := NewFloor(b.Cluster, recB.hook)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Raise(ctx, "s1", "hue", "Huế"))
	must(f.Raise(ctx, "s1", "da-nang", "Đà Nẵng"))
	must(f.Raise(ctx, "s1", "hue", "Huế")) // again: nothing
	must(fb.Raise(ctx, "s1", "hue", "Huế"))
	must(f.Raise(ctx, "s2", "hue", "Huế"))
	evs := rec.take()
	if got, want := changes(evs), []string{"s1:hand:hue", "s1:hand:da-nang", "s2:hand:hue"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if h := evs[1].Hands; len(h) != 2 || h[0].Participant != "hue" || h[1].Participant != "da-nang" || evs[1].Display != "Đà Nẵng" || h[1].Display != "Đà Nẵng" || h[0].RaisedAt.IsZero() {
		t.Fatalf("the second hand's event: %+v", evs[1])
	}
	if evs[0].At.IsZero() || evs[0].Speakers != nil {
		t.Fatalf("the first event: %+v", evs[0])
	}
	hands, speakers, err := fb.Snapshot(ctx, "s1")
	must(err)
	if len(hands) != 2 || hands[0].Participant != "hue" || speakers == nil || len(speakers) != 0 {
		t.Fatalf("snapshot: hands %+v speakers %#v", hands, speakers)
	}

	sp, err := f.Grant(ctx, "s1", "hue")
	must(err)
	if sp.Participant != "hue" || sp.Display != "Huế" || sp.Publication != "site-hue" || sp.Since.IsZero() {
		t.Fatalf("speaker %+v", sp)
	}
	again, err := fb.Grant(ctx, "s1", "hue")
	must(err)
	if again != sp {
		t.Fatalf("granting again: %+v, want %+v", again, sp)
	}
	evs = rec.take()
	if got, want := changes(evs), []string{"s1:floor:hue", "s1:hand_down:hue"}; !slices.Equal(got, want) {
		t.Fatalf("grant events %v, want %v", got, want)
	}
	if len(evs[0].Speakers) != 1 || evs[0].Display != "Huế" || evs[0].Speakers[0] != sp || len(evs[1].Hands) != 1 || evs[1].Hands[0].Participant != "da-nang" {
		t.Fatalf("grant events %+v", evs)
	}
	for _, c := range []struct {
		session, participant string
		want                 bool
	}{{"s1", "hue", true}, {"s1", "da-nang", false}, {"s2", "hue", false}} {
		if holds, err := fb.Holds(ctx, c.session, c.participant); err != nil || holds != c.want {
			t.Fatalf("Holds(%s, %s) = %v, %v; want %v", c.session, c.participant, holds, err, c.want)
		}
	}

	if ok, err := f.Revoke(ctx, "s1", "da-nang"); ok || err != nil {
		t.Fatalf("revoking who has no floor: %v %v", ok, err)
	}
	if ok, err := f.Revoke(ctx, "s1", "hue"); !ok || err != nil {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	if ok, err := f.Lower(ctx, "s1", "hue"); ok || err != nil {
		t.Fatalf("lowering a hand the grant lowered: %v %v", ok, err)
	}
	if ok, err := f.Lower(ctx, "s1", "da-nang"); !ok || err != nil {
		t.Fatalf("lower: %v %v", ok, err)
	}
	evs = rec.take()
	if got, want := changes(evs), []string{"s1:floor_end:hue", "s1:hand_down:da-nang"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[0].Speakers == nil || len(evs[0].Speakers) != 0 || evs[0].Display != "Huế" || evs[1].Hands == nil || len(evs[1].Hands) != 0 {
		t.Fatalf("the last events carry empty, non-nil lists: %+v", evs)
	}

	must(fb.Forget(ctx, "s2"))
	if hands, speakers, _ := f.Snapshot(ctx, "s2"); len(hands) != 0 || len(speakers) != 0 || len(rec.take()) != 0 {
		t.Fatalf("a forgotten session: %+v %+v", hands, speakers)
	}

	// b's hook saw every change, a's and its own, in the same order.
	want := describe(rec.seen())
	eventually(t, "b's hook sees every change", func() bool { return len(recB.seen()) >= len(want) })
	if got := describe(recB.seen()); !slices.Equal(got, want) {
		t.Fatalf("b's hook saw\n%v\nwant\n%v", got, want)
	}
}

// TestFloorEventOrder: concurrent changes from two nodes reach both nodes'
// hooks in one order, so the last event's list is the floor's state.
func TestFloorEventOrder(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var ra, rb floorRec
	fa, fb := NewFloor(a.Cluster, ra.hook), NewFloor(b.Cluster, rb.hook)
	var wg sync.WaitGroup
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	const rounds = 25
	for i, n := range names {
		f := fa
		if i%2 == 1 {
			f = fb
		}
		wg.Go(func() {
			for range rounds {
				if err := f.Raise(ctx, "s", n, ""); err != nil {
					t.Error(err)
					return
				}
				_, _ = f.Grant(ctx, "s", n)
				_, _ = f.Revoke(ctx, "s", n)
			}
		})
	}
	wg.Wait()
	want := len(names) * rounds * 4 // raise, grant, hand down, revoke each
	eventually(t, "every change reaches both hooks", func() bool { return len(ra.seen()) >= want && len(rb.seen()) >= want })
	hands, speakers, _ := fa.Snapshot(ctx, "s")
	for _, evs := range [][]floor.Event{ra.seen(), rb.seen()} {
		var lastHands []floor.Hand
		var lastSpeakers []floor.Speaker
		for _, e := range evs {
			switch e.Change {
			case floor.HandRaised, floor.HandLowered:
				lastHands = e.Hands
			case floor.Granted, floor.Revoked:
				lastSpeakers = e.Speakers
			}
		}
		if len(hands) != 0 || len(speakers) != 0 || len(lastHands) != 0 || len(lastSpeakers) != 0 {
			t.Fatalf("after every hand was granted and revoked: state %+v %+v, last events %+v %+v", hands, speakers, lastHands, lastSpeakers)
		}
		if len(evs) != want {
			t.Fatalf("%d events, want %d", len(evs), want)
		}
	}
	if !slices.Equal(describe(ra.seen()), describe(rb.seen())) {
		t.Fatal("the two nodes' hooks saw different sequences")
	}
}

// TestFloorAfterRedisRestart: changes made while a node's subscription was
// down reach its hook (from the log) before later ones, in order.
func TestFloorAfterRedisRestart(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var ra, rb floorRec
	fa := NewFloor(a.Cluster, ra.hook)
	NewFloor(b.Cluster, rb.hook)
	if err := fa.Raise(ctx, "s", "hue", ""); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	// a changes the floor as soon as Redis answers; b may not be subscribed
	// again yet: it fetches what it missed.
	eventually(t, "Redis answers a", func() bool { return fa.Raise(ctx, "s", "vinh", "") == nil })
	for _, p := range []string{"hue", "vinh"} {
		if _, err := fa.Grant(ctx, "s", p); err != nil {
			t.Fatal(err)
		}
	}
	want := describe(ra.seen())
	if len(want) != 6 {
		t.Fatalf("a saw %v", want)
	}
	eventually(t, "b sees every change", func() bool { return len(rb.seen()) >= len(want) })
	if got := describe(rb.seen()); !slices.Equal(got, want) {
		t.Fatalf("b saw\n%v\nwant\n%v", got, want)
	}
	r.Stop()
	if err := fa.Raise(ctx, "s", "x", ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("raise without Redis: %v", err)
	}
	if _, err := fa.Holds(ctx, "s", "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("holds without Redis: %v", err)
	}
}
