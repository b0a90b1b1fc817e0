package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

const (
	// readyFor is how long a storage probe's answer is reused: /readyz is polled
	// (load balancers, orchestrators, every few seconds each) and a probe writes
	// to the object store.
	readyFor = 2 * time.Second
	// readyProbeTimeout bounds one store probe: an S3 client retries a dead
	// endpoint with backoff, and a probe must answer while the poller still waits.
	readyProbeTimeout = 3 * time.Second
	// readyProbeKey is the object the store probe writes and deletes. It lives
	// outside recordings/, so no listing of recordings ever sees it.
	readyProbeKey = "lectern-readyz"
)

// readiness holds what /readyz remembers between polls.
type readiness struct {
	mu      sync.Mutex // held during a check: concurrent polls wait for one probe
	probed  time.Time  // when the storage was last probed
	storage error      // its answer, reused for readyFor
	down    string     // the reasons last reported, "" when ready: only changes are logged
}

// ready is /readyz: nil when this server can take a lecture now. Not ready, with
// the reasons: its listeners are not all up (starting, or shutting down), the
// recording store cannot be written, the spool cannot be written, or the
// recorder is losing media (spool full). The reasons are short phrases, the same
// for everyone; the details (paths, store errors) go to the log.
func (a *app) ready() error {
	r := &a.readiness
	r.mu.Lock()
	defer r.mu.Unlock()
	var reasons []string
	var details []any
	if !a.serving.Load() {
		reasons = append(reasons, "not serving: the listeners are starting or stopping")
	}
	if a.recorder != nil {
		if time.Since(r.probed) >= readyFor {
			r.storage = a.probeStorage()
			r.probed = time.Now()
		}
		if r.storage != nil {
			reasons = append(reasons, reasonOf(r.storage))
			details = append(details, "storage_err", r.storage)
		}
		if err := a.recorder.Degraded(); err != nil {
			reasons = append(reasons, "recordings are losing media: the spool is full or failing")
			details = append(details, "recorder_err", err)
		}
	}
	down := strings.Join(reasons, "; ")
	switch {
	case down != "" && down != r.down:
		a.log.Warn("not ready", append([]any{"reason", down}, details...)...)
	case down == "" && r.down != "":
		a.log.Info("ready again")
	}
	r.down = down
	if down != "" {
		return errors.New(down)
	}
	return nil
}

// storageError is a failed storage probe: a short reason and what went wrong.
type storageError struct {
	reason string
	err    error
}

func (e *storageError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

func reasonOf(err error) string {
	var se *storageError
	if errors.As(err, &se) {
		return se.reason
	}
	return "recording storage failing"
}

// probeStorage checks what recording needs: the object store takes a write (a
// tiny object, deleted at once: reachable, credentials and bucket right, disk not
// full) and the spool takes a file.
func (a *app) probeStorage() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyProbeTimeout)
	defer cancel()
	err := a.store.Put(ctx, readyProbeKey, bytes.NewReader([]byte("ok")), 2, "text/plain")
	if err == nil {
		err = a.store.Delete(ctx, readyProbeKey)
	}
	if err != nil {
		return &storageError{reason: "recording store unreachable or not writable", err: err}
	}
	if err := a.recorder.SpoolWritable(); err != nil {
		return &storageError{reason: "recording spool not writable", err: err}
	}
	return nil
}
