package main

import (
	"sync/atomic"
	"time"
)

// histogram counts durations in fixed buckets, lock-free, for percentiles: 10 µs
// wide up to 100 ms, then 1 ms wide up to 10 s; anything longer counts as 10 s.
type histogram struct {
	fine   [10000]atomic.Uint32 // 10 µs each
	coarse [9900]atomic.Uint32  // 1 ms each, from 100 ms
	count  atomic.Uint64
}

func (h *histogram) add(d time.Duration) {
	h.count.Add(1)
	switch {
	case d < 0:
		h.fine[0].Add(1)
	case d < 100*time.Millisecond:
		h.fine[d/(10*time.Microsecond)].Add(1)
	default:
		i := int((d - 100*time.Millisecond) / time.Millisecond)
		h.coarse[min(i, len(h.coarse)-1)].Add(1)
	}
}

// reset empties the histogram (between measurement windows; not concurrently with
// a percentile read).
func (h *histogram) reset() {
	for i := range h.fine {
		h.fine[i].Store(0)
	}
	for i := range h.coarse {
		h.coarse[i].Store(0)
	}
	h.count.Store(0)
}

// percentile returns the upper bound of the bucket holding the p-th percentile
// (0 < p ≤ 100), or 0 when empty.
func (h *histogram) percentile(p float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(p/100*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.fine {
		if seen += uint64(h.fine[i].Load()); seen >= rank {
			return time.Duration(i+1) * 10 * time.Microsecond
		}
	}
	for i := range h.coarse {
		if seen += uint64(h.coarse[i].Load()); seen >= rank {
			return 100*time.Millisecond + time.Duration(i+1)*time.Millisecond
		}
	}
	return 10 * time.Second
}

// samples returns how many durations were added.
func (h *histogram) samples() uint64 { return h.count.Load() }
