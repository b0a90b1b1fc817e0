package recorder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
)

// TestReplayJournalKeepsLostPlaces: after a crash, the lost segments the
// journal recorded keep their places among the stored segments and those still
// to store, and the playlist rebuilt from the store reads them back as gaps.
func TestReplayJournalKeepsLostPlaces(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	meta := &Meta{ID: "r1", StartedAt: start, Status: StatusRecording}
	rend := &RenditionInfo{Name: MainRendition, Timescale: 90000}
	seg := func(n int, lost bool) *segmentRecord {
		return &segmentRecord{N: n, Start: int64(n-1) * 360000, Duration: 360000, Size: 1000, Lost: lost}
	}
	// Segment 3 is in the spool, not stored yet; 2 and 4 were lost.
	if err := os.WriteFile(filepath.Join(dir, segmentFile(3)), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries := []journalEntry{
		{Op: opStart, Meta: meta},
		{Op: opInit, Rendition: rend},
		{Op: opStored, File: initFile},
		{Op: opSegment, Name: MainRendition, Segment: seg(1, false)},
		{Op: opStored, File: segmentFile(1)},
		{Op: opLost, Name: MainRendition, Segment: seg(2, true)},
		{Op: opSegment, Name: MainRendition, Segment: seg(3, false)},
		{Op: opLost, Name: MainRendition, Segment: seg(4, true)},
	}
	m, items := replayJournal(dir, entries)
	ri, _ := m.rendition(MainRendition)
	var got []string
	for _, s := range ri.SegmentList {
		got = append(got, fmt.Sprintf("stored %d lost %v", s.N, s.Lost))
	}
	for _, it := range items {
		got = append(got, fmt.Sprintf("queued kind %d segment %d", it.kind, it.seg.N))
	}
	want := []string{"stored 1 lost false", "stored 2 lost true", fmt.Sprintf("queued kind %d segment 3", upSegment),
		fmt.Sprintf("queued kind %d segment 4", upLost), fmt.Sprintf("queued kind %d segment 0", upFinal)}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("replayed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The playlist with its gaps reads back the same (finalising from the store).
	ri.SegmentList = append(ri.SegmentList, *seg(3, false), *seg(4, true))
	pl := string(playlist(start, ri, true))
	back := parsePlaylist(pl, start, 90000, func(string) int64 { return 1000 })
	if len(back) != 4 || !back[1].Lost || !back[3].Lost || back[0].Lost || back[2].Lost || back[1].Size != 0 ||
		back[3].Start != 3*360000 || back[3].Duration != 360000 {
		t.Fatalf("parsed back %+v from\n%s", back, pl)
	}
}

// TestSpoolUnwritable: while the spool cannot be written (its recording
// directory replaced by a file, as a full or failing disk refuses writes),
// Degraded says why and the segments lost keep their places; once it can be
// written again, Degraded is nil and the recording goes on.
func TestSpoolUnwritable(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	spool := t.TempDir()
	r, sess, ctx := recordSession(t, store, "unwritable", -1, 2*time.Minute, func(cfg *Config) { cfg.SpoolDir = spool })
	p := newPublisher(t, sess, sfu.TrainerPublication)
	var recDir string
	var during error
	p.feed(t, ctx, c, feedOptions{speed: 2, between: func(sec int) {
		switch sec {
		case 5:
			page, err := r.List(Query{})
			if err != nil || len(page.Recordings) != 1 {
				t.Errorf("no recording in progress: %v", err)
				return
			}
			recDir = filepath.Join(spool, page.Recordings[0].ID)
			if err := os.RemoveAll(recDir); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(recDir, []byte("not a directory"), 0o644); err != nil {
				t.Error(err)
			}
		case 14:
			during = r.Degraded()
			if err := os.Remove(recDir); err != nil {
				t.Error(err)
			}
		}
	}})
	p.lease.End()
	if during == nil || errors.Is(during, ErrSpoolFull) || !strings.Contains(during.Error(), "unwritable") {
		t.Errorf("Degraded while the spool could not be written: %v", during)
	}
	m := waitComplete(t, r, 1, time.Minute)[0]
	if err := r.Degraded(); err != nil {
		t.Errorf("Degraded once the spool works again: %v", err)
	}
	if m.LostMedia == nil || m.LostMedia.Segments < 1 || m.Segments < 2 || !near(m.Duration, c.Duration.Seconds(), 0.5) {
		t.Fatalf("recording: %d segments, %v s, lost %+v", m.Segments, m.Duration, m.LostMedia)
	}
	pl := readStored(t, store, m.Prefix+playlistFile)
	entries := 0
	for _, line := range strings.Split(pl, "\n") {
		if strings.HasPrefix(line, "seg-") {
			entries++
			if line != segmentFile(entries) {
				t.Fatalf("playlist entry %d is %s: a hole in the timeline\n%s", entries, line, pl)
			}
		}
	}
	if entries != m.Segments+m.LostMedia.Segments || strings.Count(pl, "#EXT-X-GAP") != m.LostMedia.Segments {
		t.Errorf("playlist of %d entries for %d stored and %d lost:\n%s", entries, m.Segments, m.LostMedia.Segments, pl)
	}
}

// TestDegradedClearsWhenNothingRecords: a failed spool write makes Degraded
// report it while recordings are in progress; with none, nothing is being
// lost, and Degraded is nil (readiness must not wait for a write that only a
// new lecture would make).
func TestDegradedClearsWhenNothingRecords(t *testing.T) {
	r := newRecorder(t, testrec.DirStore(t), t.TempDir(), nil)
	defer closeRecorder(t, r)
	r.metrics.active.Add(1) // a recording in progress
	r.noteSpoolError(1000, errors.New("no space left on device (test)"))
	if err := r.Degraded(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Degraded while recording after a failed write: %v", err)
	}
	r.metrics.active.Add(-1)
	if err := r.Degraded(); err != nil {
		t.Fatalf("Degraded with nothing recording: %v", err)
	}
}
