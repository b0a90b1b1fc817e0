package floor_test

import (
	"context"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"lectern/floor"
	"lectern/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMemoryFloor walks a session through hands, a grant and a revoke, checking
// the state and the events after each step, and that another session is apart
// (testenv.WalkFloor, which the cluster's floor in Redis walks too).
func TestMemoryFloor(t *testing.T) {
	var rec testenv.FloorRecorder
	f := floor.NewMemory(rec.Hook)
	testenv.WalkFloor(t, f, f, &rec)
}

// TestMemorySnapshotsAreCopies: lists handed out (snapshots, events) do not
// change when the floor does.
func TestMemorySnapshotsAreCopies(t *testing.T) {
	ctx := context.Background()
	var rec testenv.FloorRecorder
	f := floor.NewMemory(rec.Hook)
	_ = f.Raise(ctx, "s", "a", "")
	_ = f.Raise(ctx, "s", "b", "")
	hands, _, _ := f.Snapshot(ctx, "s")
	evs := rec.Take()
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
	var rec testenv.FloorRecorder
	f := floor.NewMemory(rec.Hook)
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
	evs := rec.Take()
	testenv.CheckFloorEmptied(t, hands, speakers, evs)
	if want := len(names) * 50 * 4; len(evs) != want {
		t.Fatalf("%d events, want %d (raise, grant, hand down, revoke each)", len(evs), want)
	}
}
