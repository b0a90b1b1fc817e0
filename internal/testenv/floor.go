package testenv

// A walk through a talk-back floor that the in-memory floor's tests
// (floor) and the cluster's floor in Redis (cluster) share: both must answer
// the same changes with the same events and state.

import (
	"context"
	"slices"
	"sync"
	"testing"

	"lectern/floor"
)

// FloorRecorder keeps the events a floor's hook receives.
type FloorRecorder struct {
	mu     sync.Mutex
	events []floor.Event
	all    []floor.Event // never taken
}

// Hook is the floor's hook.
func (r *FloorRecorder) Hook(e floor.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.all = append(r.all, e)
	r.mu.Unlock()
}

// Take returns the events received since the last Take.
func (r *FloorRecorder) Take() []floor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// Seen returns every event received.
func (r *FloorRecorder) Seen() []floor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// FloorChanges renders events as "session:change:participant".
func FloorChanges(evs []floor.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Session+":"+string(e.Change)+":"+e.Participant)
	}
	return out
}

// WalkFloor walks a session through hands, a grant and a revoke, checking the
// state and the events after each step, and that another session is apart.
// f makes most changes and other (f itself, or the same floor through another
// node) the rest and the reads; rec is f's hook's recorder, empty at the start.
func WalkFloor(t testing.TB, f, other floor.Floor, rec *FloorRecorder) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Raise(ctx, "s1", "hue", "Huế"))
	must(f.Raise(ctx, "s1", "da-nang", "Đà Nẵng"))
	must(f.Raise(ctx, "s1", "hue", "Huế")) // again: nothing
	must(other.Raise(ctx, "s1", "hue", "Huế"))
	must(f.Raise(ctx, "s2", "hue", "Huế"))
	evs := rec.Take()
	if got, want := FloorChanges(evs), []string{"s1:hand:hue", "s1:hand:da-nang", "s2:hand:hue"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if h := evs[1].Hands; len(h) != 2 || h[0].Participant != "hue" || h[1].Participant != "da-nang" || evs[1].Display != "Đà Nẵng" || h[1].Display != "Đà Nẵng" || h[0].RaisedAt.IsZero() {
		t.Fatalf("the second hand's event: %+v", evs[1])
	}
	if evs[0].At.IsZero() || evs[0].Speakers != nil {
		t.Fatalf("the first event: %+v", evs[0])
	}
	hands, speakers, err := other.Snapshot(ctx, "s1")
	must(err)
	if len(hands) != 2 || hands[0].Participant != "hue" || speakers == nil || len(speakers) != 0 {
		t.Fatalf("snapshot: hands %+v speakers %#v", hands, speakers)
	}

	sp, err := f.Grant(ctx, "s1", "hue")
	must(err)
	if sp.Participant != "hue" || sp.Display != "Huế" || sp.Publication != "site-hue" || sp.Since.IsZero() {
		t.Fatalf("speaker %+v", sp)
	}
	again, err := other.Grant(ctx, "s1", "hue")
	must(err)
	if again != sp {
		t.Fatalf("granting again: %+v, want %+v", again, sp)
	}
	evs = rec.Take()
	if got, want := FloorChanges(evs), []string{"s1:floor:hue", "s1:hand_down:hue"}; !slices.Equal(got, want) {
		t.Fatalf("grant events %v, want %v", got, want)
	}
	if len(evs[0].Speakers) != 1 || evs[0].Display != "Huế" || evs[0].Speakers[0] != sp || len(evs[1].Hands) != 1 || evs[1].Hands[0].Participant != "da-nang" {
		t.Fatalf("grant events %+v", evs)
	}
	for _, c := range []struct {
		session, participant string
		want                 bool
	}{{"s1", "hue", true}, {"s1", "da-nang", false}, {"s2", "hue", false}} {
		if holds, err := other.Holds(ctx, c.session, c.participant); err != nil || holds != c.want {
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
	evs = rec.Take()
	if got, want := FloorChanges(evs), []string{"s1:floor_end:hue", "s1:hand_down:da-nang"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[0].Speakers == nil || len(evs[0].Speakers) != 0 || evs[0].Display != "Huế" || evs[1].Hands == nil || len(evs[1].Hands) != 0 {
		t.Fatalf("the last events carry empty, non-nil lists: %+v", evs)
	}

	must(other.Forget(ctx, "s2"))
	if hands, speakers, _ := f.Snapshot(ctx, "s2"); len(hands) != 0 || len(speakers) != 0 || len(rec.Take()) != 0 {
		t.Fatalf("a forgotten session: %+v %+v", hands, speakers)
	}
}

// CheckFloorEmptied fails unless a floor whose every hand was granted and
// revoked has no hand and no speaker (hands, speakers: its snapshot), and the
// last hand and floor events it reported (evs, in order) say so too.
func CheckFloorEmptied(t testing.TB, hands []floor.Hand, speakers []floor.Speaker, evs []floor.Event) {
	t.Helper()
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
}
