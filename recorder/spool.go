package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
)

// Spool fill levels at which a warning is logged, and below which it is re-armed.
const (
	spoolWarnLevel  = 0.8
	spoolRearmLevel = 0.6
)

// spool is the local directory holding recordings' journals and the segments not
// yet stored. Its size is bounded: a segment that would exceed the bound is
// dropped (the live stream is unaffected) and counted.
type spool struct {
	dir    string
	max    int64
	m      *metrics
	log    *slog.Logger
	warned atomic.Bool
}

// reserve accounts n more bytes, or fails with ErrSpoolFull.
func (s *spool) reserve(n int64) error {
	for {
		cur := s.m.spoolBytes.Load()
		if cur+n > s.max {
			s.checkLevel(cur + n)
			return fmt.Errorf("%w: %d of %d bytes used, segment of %d bytes dropped", ErrSpoolFull, cur, s.max, n)
		}
		if s.m.spoolBytes.CompareAndSwap(cur, cur+n) {
			s.checkLevel(cur + n)
			return nil
		}
	}
}

// release accounts n bytes removed.
func (s *spool) release(n int64) {
	s.checkLevel(s.m.spoolBytes.Add(-n))
}

func (s *spool) checkLevel(cur int64) {
	level := float64(cur) / float64(s.max)
	switch {
	case level >= spoolWarnLevel && s.warned.CompareAndSwap(false, true):
		s.log.Warn("recording spool filling up: the object store is unreachable or too slow",
			"used_bytes", cur, "limit_bytes", s.max, "percent", int(level*100))
	case level < spoolRearmLevel && s.warned.CompareAndSwap(true, false):
		s.log.Info("recording spool drained", "used_bytes", cur, "limit_bytes", s.max)
	}
}

// writeFile writes data to path durably: a temporary file, fsync, then commit
// (called between the fsync and the rename, e.g. to journal the file), rename and
// fsync of the directory. On error nothing is left at path.
func writeFile(path string, data []byte, commit func() error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// usage returns the bytes of media files below dir (temporary files are not
// counted: they are removed at start).
func usage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && filepath.Base(path) != journalName {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
