package recorder

import (
	"fmt"
	"os"
)

// SpoolWritable checks that the spool can take a segment now: it creates a file
// there, writes a byte, syncs it (a full disk often fails only then) and removes
// it. Readiness probes call it, a few seconds apart at most; nothing else does.
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
	return nil
}
