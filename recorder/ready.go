package recorder

import (
	"fmt"
	"os"
)

// SpoolWritable checks that the spool can take a segment now: it creates a file
// there, writes a byte, syncs it (a full disk often fails only then) and removes
// it. Readiness probes call it, a few seconds apart at most; nothing else does.
// Call Degraded after it: a success clears a spool write error.
// The probe's name starts like the spool's temporary files, so one left by a
// crash is removed at the next start.
func (r *Recorder) SpoolWritable() error {
	f, err := os.CreateTemp(r.cfg.SpoolDir, ".tmp-ready-*")
	if err != nil {
		return fmt.Errorf("recording spool %s is not writable: %w", r.cfg.SpoolDir, err)
	}
	name := f.Name()
	_, err = f.Write([]byte{0})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("recording spool %s is not writable: %w", r.cfg.SpoolDir, err)
	}
	// A spool write succeeded: a write error reported earlier is over, as when a
	// segment is written (Degraded). Without this, one from a recording that
	// could not even start (it writes nothing more) would be reported until some
	// other recording wrote a segment. A full spool is left to its accounting.
	r.health.mu.Lock()
	r.health.writeErr = nil
	r.health.mu.Unlock()
	return nil
}
