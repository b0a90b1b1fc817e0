package floor

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorded keeps the events a floor reports.
type recorded struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorded) hook(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorded) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func changes(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Session+":"+string(e.Change)+":"+e.Participant)
	}
	return out
}

// TestMemoryFloor walks a session through hands, a grant and a revoke, checking
// the state and the events after each step, and that another session is apart.
func TestMemoryFloor(t *testing.T) {
	ctx := context.Background()
	var rec recorded
	f := NewMemory(rec.hook)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Raise(ctx, "s1", "hue", "Huế"))
	must(f.Raise(ctx, "s1", "da-nang", "Đà Nẵng"))
	must(f.Raise(ctx, "s1", "hue", "Huế")) // again: nothing
	must(f.Raise(ctx, "s2", "hue", "Huế"))
	evs := rec.take()
	if got, want := changes(evs), []string{"s1:hand:hue", "s1:hand:da-nang", "s2:hand:hue"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if h := evs[1].Hands; len(h) != 2 || h[0].Participant != "hue" || h[1].Participant != "da-nang" || evs[1].Display != "Đà Nẵng" {
		t.Fatalf("the second hand's event: %+v", evs[1])
	}
	hands, speakers, err := f.Snapshot(ctx, "s1")
	must(err)
	if len(hands) != 2 || hands[0].Participant != "hue" || speakers == nil || len(speakers) != 0 {
		t.Fatalf("snapshot: hands %+v speakers %#v", hands, speakers)
	}

	sp, err := f.Grant(ctx, "s1", "hue")
	must(err)
	if sp.Participant != "hue" || sp.Display != "Huế" || sp.Publication != "site-hue" || sp.Since.IsZero() {
		t.Fatalf("speaker %+v", sp)
	}
	again, err := f.Grant(ctx, "s1", "hue")
	must(err)
	if again != sp {
		t.Fatalf("granting again: %+v, want %+v", again, sp)
	}
	evs = rec.take()
	if got, want := changes(evs), []string{"s1:floor:hue", "s1:hand_down:hue"}; !slices.Equal(got, want) {
		t.Fatalf("grant events %v, want %v", got, want)
	}
	if len(evs[0].Speakers) != 1 || evs[0].Display != "Huế" || len(evs[1].Hands) != 1 || evs[1].Hands[0].Participant != "da-nang" {
		t.Fatalf("grant events %+v", evs)
	}
	for _, c := range []struct {
		session, participant string
		want                 bool
	}{{"s1", "hue", true}, {"s1", "da-nang", false}, {"s2", "hue", false}} {
		if holds, err := f.Holds(ctx, c.session, c.participant); err != nil || holds != c.want {
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

	must(f.Forget(ctx, "s2"))
	if hands, speakers, _ := f.Snapshot(ctx, "s2"); len(hands) != 0 || len(speakers) != 0 || len(rec.take()) != 0 {
		t.Fatalf("a forgotten session: %+v %+v", hands, speakers)
	}
}

// TestMemorySnapshotsAreCopies: lists handed out (snapshots, events) do not
// change when the floor does.
func TestMemorySnapshotsAreCopies(t *testing.T) {
	ctx := context.Background()
	var rec recorded
	f := NewMemory(rec.hook)
	_ = f.Raise(ctx, "s", "a", "")
	_ = f.Raise(ctx, "s", "b", "")
	hands, _, _ := f.Snapshot(ctx, "s")
	evs := rec.take()
	_, _ = f.Lower(ctx, "s", "a")
	_ = f.Raise(ctx, "s", "c", "")
	if len(hands) != 2 || hands[0].Participant != "a" || hands[1].Participant != "b" {
		t.Fatalf("a snapshot changed: %+v", hands)
	}
	if h := evs[1].Hands; len(h) != 2 || h[0].Participant != "a" || h[1].Participant != "b" {
		t.Fatalf("an event's list changed: %+v", h)
	}
}

// TestMemoryEventOrder: concurrent changes reach the hook in the order they
// were made, so the last event's list is the floor's state.
func TestMemoryEventOrder(t *testing.T) {
	ctx := context.Background()
	var rec recorded
	f := NewMemory(rec.hook)
	var wg sync.WaitGroup
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				_ = f.Raise(ctx, "s", n, "")
				_, _ = f.Grant(ctx, "s", n)
				_, _ = f.Revoke(ctx, "s", n)
			}
		}()
	}
	wg.Wait()
	hands, speakers, _ := f.Snapshot(ctx, "s")
	evs := rec.take()
	var lastHands []Hand
	var lastSpeakers []Speaker
	for _, e := range evs {
		switch e.Change {
		case HandRaised, HandLowered:
			lastHands = e.Hands
		case Granted, Revoked:
			lastSpeakers = e.Speakers
		}
	}
	if len(hands) != 0 || len(speakers) != 0 || len(lastHands) != 0 || len(lastSpeakers) != 0 {
		t.Fatalf("after every hand was granted and revoked: state %+v %+v, last events %+v %+v", hands, speakers, lastHands, lastSpeakers)
	}
	if want := len(names) * 50 * 4; len(evs) != want {
		t.Fatalf("%d events, want %d (raise, grant, hand down, revoke each)", len(evs), want)
	}
}
