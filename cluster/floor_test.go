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

// describe renders events fully, to compare two nodes' sequences.
func describe(evs []floor.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s %s %q %s hands=%v speakers=%v", e.Session, e.Change, e.Participant, e.Display,
			e.At.Format("15:04:05.000000000"), e.Hands, e.Speakers))
	}
	return out
}

// TestFloor walks the floor in Redis as floor's TestMemoryFloor walks the one
// in memory (testenv.WalkFloor): a session through hands, a grant and a
// revoke, checking the state and the events after each step, and that
// another session is apart, the reads and some changes through the other
// node. The other node's hook sees the same events, in the same order.
func TestFloor(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var rec, recB testenv.FloorRecorder
	f := NewFloor(a.Cluster, rec.Hook)
	fb := NewFloor(b.Cluster, recB.Hook)
	testenv.WalkFloor(t, f, fb, &rec)

	// b's hook saw every change, a's and its own, in the same order.
	want := describe(rec.Seen())
	eventually(t, "b's hook sees every change", func() bool { return len(recB.Seen()) >= len(want) })
	if got := describe(recB.Seen()); !slices.Equal(got, want) {
		t.Fatalf("b's hook saw\n%v\nwant\n%v", got, want)
	}
}

// TestFloorEventOrder: concurrent changes from two nodes reach both nodes'
// hooks in one order, so the last event's list is the floor's state.
func TestFloorEventOrder(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var ra, rb testenv.FloorRecorder
	fa, fb := NewFloor(a.Cluster, ra.Hook), NewFloor(b.Cluster, rb.Hook)
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
	eventually(t, "every change reaches both hooks", func() bool { return len(ra.Seen()) >= want && len(rb.Seen()) >= want })
	hands, speakers, _ := fa.Snapshot(ctx, "s")
	for _, evs := range [][]floor.Event{ra.Seen(), rb.Seen()} {
		testenv.CheckFloorEmptied(t, hands, speakers, evs)
		if len(evs) != want {
			t.Fatalf("%d events, want %d", len(evs), want)
		}
	}
	if !slices.Equal(describe(ra.Seen()), describe(rb.Seen())) {
		t.Fatal("the two nodes' hooks saw different sequences")
	}
}

// TestFloorAfterRedisRestart: changes made while a node's subscription was
// down reach its hook (from the log) before later ones, in order.
func TestFloorAfterRedisRestart(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, b := open(t, r, "a", ""), open(t, r, "b", "")
	var ra, rb testenv.FloorRecorder
	fa := NewFloor(a.Cluster, ra.Hook)
	NewFloor(b.Cluster, rb.Hook)
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
	want := describe(ra.Seen())
	if len(want) != 6 {
		t.Fatalf("a saw %v", want)
	}
	eventually(t, "b sees every change", func() bool { return len(rb.Seen()) >= len(want) })
	if got := describe(rb.Seen()); !slices.Equal(got, want) {
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
