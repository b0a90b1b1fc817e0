package cluster

import (
	"context"
	"encoding/json"
	"testing"

	"lectern/floor"
	"lectern/internal/testenv"
)

// BenchmarkClaimPublication: one claim (the Lua script, a round trip) of a
// publication already ours, as a WHIP reconnect does.
func BenchmarkClaimPublication(b *testing.B) {
	ctx := context.Background()
	r := testenv.StartRedis(b)
	a := openB(b, r, "a")
	for b.Loop() {
		if err := a.ClaimPublication(ctx, "s", "trainer"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventDelivery: an event published on one node until another
// node's handler has it (the cross-node latency of an SSE event).
func BenchmarkEventDelivery(b *testing.B) {
	ctx := context.Background()
	r := testenv.StartRedis(b)
	a, o := openB(b, r, "a"), openB(b, r, "b")
	got := make(chan struct{}, 1)
	o.OnEvent(func(string, string, json.RawMessage, string) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	for b.Loop() {
		if err := a.Publish(ctx, "s", "count", 1); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

// BenchmarkFloorRaiseLower: a hand raised and lowered (two scripts, two
// events through the hook) with a second node listening.
func BenchmarkFloorRaiseLower(b *testing.B) {
	ctx := context.Background()
	r := testenv.StartRedis(b)
	a, o := openB(b, r, "a"), openB(b, r, "b")
	f := NewFloor(a, func(floor.Event) {})
	NewFloor(o, func(floor.Event) {})
	for b.Loop() {
		if err := f.Raise(ctx, "s", "hue", "Huế"); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Lower(ctx, "s", "hue"); err != nil {
			b.Fatal(err)
		}
	}
}

func openB(b *testing.B, r *testenv.Redis, id string) *Cluster {
	b.Helper()
	c, err := Open(context.Background(), Config{RedisURL: r.URL(), NodeID: id, PublicURL: "http://" + id + ".test:8080"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}
