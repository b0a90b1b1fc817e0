package recorder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// journalName is the file, in a recording's spool directory, that makes the
// recording recoverable after a crash.
const journalName = "journal.jsonl"

// Journal operations, one JSON object per line.
const (
	opStart   = "start"   // Meta: the recording's identity
	opInit    = "init"    // Rendition, Init: a rendition's init segment is in the spool
	opSegment = "segment" // Rendition, Segment: a segment is (about to be) in the spool
	opStored  = "stored"  // Rendition, File: the object is in the store; its spool file may go
	opLost    = "lost"    // Name, Segment: a segment lost before the spool (its place in the timeline)
	opEnd     = "end"     // Time, Gaps: the recording ended normally
	opMark    = "mark"    // Mark: an entry of the lecture's timeline
)

// journalEntry is one line of the journal.
type journalEntry struct {
	Op        string         `json:"op"`
	Meta      *Meta          `json:"meta,omitempty"`
	Rendition *RenditionInfo `json:"rendition,omitempty"` // init: header without segments
	Init      int            `json:"init,omitempty"`      // init: which (0: init.mp4, k: init-k.mp4)
	Name      string         `json:"name,omitempty"`      // rendition name
	Segment   *segmentRecord `json:"segment,omitempty"`
	File      string         `json:"file,omitempty"`
	Time      time.Time      `json:"time,omitzero"`
	Gaps      []gap          `json:"gaps,omitempty"`
	Mark      *TimelineEntry `json:"mark,omitempty"`
}

// journal appends entries to a recording's journal, each written and fsynced before
// append returns, so that what it says survives a crash. Safe for concurrent use
// (the mux and the uploader both append).
type journal struct {
	mu sync.Mutex
	f  *os.File
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journal{f: f}, nil
}

func (j *journal) append(e journalEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal: closed")
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		_ = j.f.Close()
		j.f = nil
	}
}

// readJournal returns the entries of a journal. A torn last line (the crash hit
// while it was written) is ignored.
func readJournal(path string) ([]journalEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []journalEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			break
		}
		out = append(out, e)
	}
	if len(out) == 0 || out[0].Op != opStart || out[0].Meta == nil {
		return nil, fmt.Errorf("journal %s: no start entry", path)
	}
	return out, nil
}
