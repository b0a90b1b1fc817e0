package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCountersLiveHeap: the live heap is read back from the GC's next goal, GOGC
// and the stacks the way the runtime sets the goal, and a server without those
// gauges gives 0 (no per-subscriber figure) rather than a wrong one.
func TestCountersLiveHeap(t *testing.T) {
	const live, stacks, gogc = 30 << 20, 2 << 20, 50.0
	nextGC := live + (live+stacks)*gogc/100
	metrics := fmt.Sprintf("# TYPE go_memstats_next_gc_bytes gauge\ngo_memstats_next_gc_bytes %g\ngo_gc_gogc_percent %g\n"+
		"go_memstats_stack_inuse_bytes %d\ngo_memstats_heap_inuse_bytes %d\ngo_goroutines 7\n", float64(nextGC), gogc, stacks, 50<<20)
	for _, tc := range []struct {
		name, body string
		want       float64
	}{
		{"gauges", metrics, live},
		{"no next goal", "go_gc_gogc_percent 50\n", 0},
		{"GOGC off", "go_memstats_next_gc_bytes 1e+08\ngo_gc_gogc_percent -1\n", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, tc.body)
		}))
		c, err := newAPIClient(srv.URL, "token").counters(context.Background())
		srv.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if math.Abs(c.LiveHeap-tc.want) > 1 {
			t.Errorf("%s: live heap %.0f, want %.0f", tc.name, c.LiveHeap, tc.want)
		}
	}
}
