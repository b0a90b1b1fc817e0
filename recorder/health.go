package recorder

import (
	"errors"
	"fmt"
	"sync"
)

// health remembers why the recorder is losing media, for [Recorder.Degraded]:
// the spool refused a segment (full) or a spool write failed (disk full, I/O
// error). Both clear once the spool accepts media again.
type health struct {
	mu sync.Mutex
	// refused is the size of the last segment the full spool refused; 0 when the
	// spool is not full. The spool counts as full until that much room is free.
	refused int64
	// writeErr is the last spool write error, until a spool write succeeds.
	writeErr error
}

func (h *health) spoolRefused(n int64) {
	h.mu.Lock()
	h.refused = max(n, 1)
	h.mu.Unlock()
}

func (h *health) spoolWriteFailed(err error) {
	h.mu.Lock()
	h.writeErr = err
	h.mu.Unlock()
}

// spoolWrote records a successful spool write: the spool works again.
func (h *health) spoolWrote() {
	h.mu.Lock()
	h.refused, h.writeErr = 0, nil
	h.mu.Unlock()
}

// Degraded returns why recordings are losing media right now: the spool is
// full (the object store is unreachable or too slow) or the spool cannot be
// written (disk full). It returns nil when recording works: once the spool has
// drained enough to take the segment it last refused, once a spool write
// succeeds again, or when no recording is in progress after a failed write. Readiness
// probes report it (a server that loses recordings should not take new
// lectures); the live streams are unaffected either way.
func (r *Recorder) Degraded() error {
	h := &r.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.writeErr != nil && r.metrics.active.Load() == 0 {
		// Nothing is being recorded, so nothing is being lost: a server that
		// waits for a successful write to be ready again would never get one.
		// The next recording tries the spool again (and readiness probes
		// check that it is writable).
		h.writeErr = nil
	}
	if h.writeErr != nil {
		return fmt.Errorf("recording spool unwritable, segments are being lost: %w", h.writeErr)
	}
	if h.refused > 0 {
		used := r.metrics.spoolBytes.Load()
		if used+h.refused <= r.cfg.MaxSpoolBytes {
			h.refused = 0 // drained: the next segment fits
			return nil
		}
		return fmt.Errorf("%w: %d of %d bytes used, segments are being lost until the object store catches up",
			ErrSpoolFull, used, r.cfg.MaxSpoolBytes)
	}
	return nil
}

// noteSpoolError classifies a failed spool write for Degraded.
func (r *Recorder) noteSpoolError(n int64, err error) {
	if errors.Is(err, ErrSpoolFull) {
		r.health.spoolRefused(n)
		return
	}
	r.health.spoolWriteFailed(err)
}
