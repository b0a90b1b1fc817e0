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

// Mark adds an entry to the timeline of the session's main recording in progress:
// the programme's, or the trainer publication's while there is no programme
// recording (a server without the programme, or the moment before it begins).
// e.At is set from at, in seconds from the recording's start. It does nothing when
// there is no such recording, or when the recording already holds maxTimeline
// entries. An entry that comes while the recording waits for its first keyframe
// is placed at its start (0).
//
// Each entry is journaled (a crash keeps it) and stored in meta.json, also while
// the recording is live. It writes to the spool: call it for human-paced events
// (the floor, slides), never per packet.
func (r *Recorder) Mark(session string, at time.Time, e TimelineEntry) {
	r.mu.Lock()
	rec := r.mainLocked(session)
	r.mu.Unlock()
	if rec != nil {
		rec.mark(at, e)
	}
}

// mainLocked returns the session's main recording in progress (see Mark), or nil.
// r.mu is held.
func (r *Recorder) mainLocked(session string) *recording {
	var trainer *recording
	for k, c := range r.active {
		if c.session != session || c.ending.Load() {
			continue
		}
		switch k.pub {
		case ProgrammePublication:
			return c
		case sfu.TrainerPublication:
			trainer = c
		}
	}
	return trainer
}

// markTrack marks the slides (the screen share) starting or ending, on the main
// recording only: the programme's screen track, or the trainer's while the
// session has no programme recording.
func (rec *recording) markTrack(local string, started bool) {
	if local != "screen" || rec.pub != ProgrammePublication && rec.pub != sfu.TrainerPublication {
		return
	}
	if rec.pub == sfu.TrainerPublication {
		rec.r.mu.Lock()
		main := rec.r.mainLocked(rec.session)
		rec.r.mu.Unlock()
		if main != nil && main != rec {
			return // the programme's recording marks its own screen track
		}
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
