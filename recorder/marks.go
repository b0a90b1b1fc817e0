package recorder

import (
	"math"
	"slices"
	"time"

	"lectern/sfu"
)

// pendingMark is a timeline entry that came before its recording began (the
// recording waits for a keyframe): it is placed at the start.
type pendingMark struct {
	at time.Time
	e  TimelineEntry
}

// Mark adds an entry to the timeline of the session's main recording (the
// trainer publication's) in progress: e.At is set from at, in seconds from the
// recording's start. It does nothing when there is no such recording, or when the
// recording already holds maxTimeline entries. An entry that comes while the
// recording waits for its first keyframe is placed at its start (0).
//
// Each entry is journaled (a crash keeps it) and stored in meta.json, also while
// the recording is live. It writes to the spool: call it for human-paced events
// (the floor, slides), never per packet.
func (r *Recorder) Mark(session string, at time.Time, e TimelineEntry) {
	r.mu.Lock()
	var rec *recording
	for k, c := range r.active {
		if k.pub == sfu.TrainerPublication && c.session == session && !c.ending.Load() {
			rec = c
			break
		}
	}
	r.mu.Unlock()
	if rec != nil {
		rec.mark(at, e)
	}
}

// markTrack marks the trainer's slides (its screen share) starting or ending.
func (rec *recording) markTrack(local string, started bool) {
	if rec.pub != sfu.TrainerPublication || local != "screen" {
		return
	}
	typ := TimelineSlidesEnd
	if started {
		typ = TimelineSlides
	}
	rec.mark(time.Now(), TimelineEntry{Type: typ})
}

func (rec *recording) mark(at time.Time, e TimelineEntry) {
	rec.markMu.Lock()
	defer rec.markMu.Unlock()
	switch {
	case rec.markDone || rec.marks >= maxTimeline || rec.r.hard.Err() != nil: // a hard stop writes nothing more
		return
	case rec.markUp == nil:
		rec.markPending = append(rec.markPending, pendingMark{at, e})
		rec.marks++
		return
	}
	rec.marks++
	rec.storeMark(at, e)
}

// storeMark runs with markMu held, once the recording began.
func (rec *recording) storeMark(at time.Time, e TimelineEntry) {
	e.At = math.Round(max(0, at.Sub(rec.markStart).Seconds())*1000) / 1000
	if err := rec.markJour.append(journalEntry{Op: opMark, Mark: &e}); err != nil {
		rec.log.Warn("journal", "err", err)
	}
	rec.markUp.enqueue(upItem{kind: upMark, mark: e}) // the uploader alone changes its meta
}

// beginMarks runs on the mux goroutine when the recording begins (its uploader
// exists): the entries held so far are stored, at its start.
func (rec *recording) beginMarks(start time.Time) {
	rec.markMu.Lock()
	defer rec.markMu.Unlock()
	rec.markUp, rec.markJour, rec.markStart = rec.up, rec.jour, start
	for _, p := range rec.markPending {
		rec.storeMark(p.at, p.e)
	}
	rec.markPending = nil
}

// endMarks runs before the recording's end is journaled: later entries are dropped.
func (rec *recording) endMarks() {
	rec.markMu.Lock()
	rec.markDone = true
	rec.markMu.Unlock()
}

// addMark inserts e into list in time order (after the entries at the same time),
// within maxTimeline.
func addMark(list []TimelineEntry, e TimelineEntry) []TimelineEntry {
	if len(list) >= maxTimeline {
		return list
	}
	i := len(list)
	for i > 0 && list[i-1].At > e.At {
		i--
	}
	return slices.Insert(slices.Clip(list), i, e) // a copy: summaries handed out share the old array
}
