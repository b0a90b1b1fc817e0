package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// recoverSpool resumes what a previous run left in the spool: for every recording
// directory it replays the journal, queues the objects that were not stored (the
// segment being written at the crash, which never got its final name, is lost) and
// the finalisation. Stray temporary files are removed.
func (r *Recorder) recoverSpool() error {
	entries, err := os.ReadDir(r.cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("recorder: spool: %w", err)
	}
	if err := removeTemps(r.cfg.SpoolDir); err != nil {
		return fmt.Errorf("recorder: spool: %w", err)
	}
	used, err := usage(r.cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("recorder: spool: %w", err)
	}
	r.metrics.spoolBytes.Store(used)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(r.cfg.SpoolDir, e.Name())
		if err := r.recoverRecording(dir); err != nil {
			r.log.Error("cannot recover a spooled recording; left in place", "dir", dir, "err", err)
		}
	}
	return nil
}

// recoverRecording queues the remaining work of one spooled recording.
func (r *Recorder) recoverRecording(dir string) error {
	entries, err := readJournal(filepath.Join(dir, journalName))
	if err != nil {
		return err
	}
	meta, items := replayJournal(dir, entries)
	j, err := openJournal(filepath.Join(dir, journalName))
	if err != nil {
		return err
	}
	up := newUploader(r, dir, j, meta)
	up.updateSummary()
	for _, it := range items {
		up.enqueue(it)
	}
	r.log.Info("resuming a spooled recording", "recording", meta.ID, "objects_to_store", len(items)-1, "interrupted", meta.Interrupted)
	r.index.put(meta.summary())
	r.startUploader(meta.ID, up)
	return nil
}

// replayJournal rebuilds what a recording had stored (meta) and what is left to
// do: the spooled objects not stored yet, in order, then the finalisation. A
// journaled segment without its spool file was being written at the crash: lost.
func replayJournal(dir string, entries []journalEntry) (Meta, []upItem) {
	meta := *entries[0].Meta
	meta.Renditions = nil
	stored := map[string]bool{}
	for _, e := range entries[1:] {
		if e.Op == opStored {
			stored[e.File] = true
		}
	}
	var items []upItem
	final := upItem{kind: upFinal}
	ended := false
	byName := map[string]*RenditionInfo{}
	queued := map[string]bool{} // renditions with objects still to store
	for _, e := range entries[1:] {
		switch {
		case e.Op == opInit && e.Rendition != nil:
			if byName[e.Rendition.Name] == nil {
				byName[e.Rendition.Name] = e.Rendition
			}
			file := e.Rendition.Dir + initName(e.Init)
			if stored[file] {
				meta.addInit(e.Rendition, e.Init)
			} else if exists(dir, file) {
				items = append(items, upItem{kind: upInit, rend: e.Rendition, init: e.Init})
				queued[e.Rendition.Name] = true
			}
		case e.Op == opSegment && e.Segment != nil && byName[e.Name] != nil:
			file := byName[e.Name].Dir + segmentFile(e.Segment.N)
			if ri, ok := meta.rendition(e.Name); ok && stored[file] {
				ri.SegmentList = append(ri.SegmentList, *e.Segment)
			} else if !stored[file] && exists(dir, file) {
				items = append(items, upItem{kind: upSegment, name: e.Name, seg: *e.Segment})
				queued[e.Name] = true
			}
		case e.Op == opLost && e.Segment != nil && byName[e.Name] != nil:
			// Its place comes after the segments queued before it.
			if ri, ok := meta.rendition(e.Name); ok && !queued[e.Name] {
				ri.SegmentList = append(ri.SegmentList, *e.Segment)
			} else {
				items = append(items, upItem{kind: upLost, name: e.Name, seg: *e.Segment})
			}
		case e.Op == opMark && e.Mark != nil:
			meta.Timeline = addMark(meta.Timeline, *e.Mark)
		case e.Op == opEnd:
			final.end, final.gaps, ended = e.Time, e.Gaps, true
		}
	}
	meta.Interrupted = !ended
	return meta, append(items, final)
}

func exists(dir, rel string) bool {
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
	return err == nil
}

// removeTemps deletes the temporary files of interrupted spool writes.
func removeTemps(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), ".tmp-") {
			return os.Remove(path)
		}
		return nil
	})
}
