package rtsp

import (
	"time"

	"lectern/sfu"
)

// programmeSetup bounds the wait for a session's programme (awaitProgramme): it
// is claimed at the trainer's first track and gets its video and audio within
// milliseconds as the trainer's come (audio in another codec than Opus: once the
// transcoder made its Opus variant), so a programme still without them after
// this long is one that did not start, and a server that makes none would
// otherwise keep every reader waiting.
const programmeSetup = 3 * time.Second

// awaitProgramme holds a DESCRIBE of /{session} while the programme is being made
// (programmePending), so that the reader gets the programme rather than the
// trainer's tracks in its place, which it would keep until it DESCRIBEs again (a
// stream does not change its tracks under its readers). It returns when the
// programme has its tracks, at the bound, or when the server closes.
func (s *Server) awaitProgramme(hub *sfu.Session) {
	until, pending := s.programmePending(hub)
	if !pending {
		return
	}
	s.programmeWaits.Add(1)
	defer s.programmeWaits.Add(-1)
	changed := make(chan struct{}, 1)
	stop := hub.Watch(func(*sfu.Track) { // every new track: look again
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		select {
		case <-changed:
		case <-timer.C:
			return
		case <-s.ctx.Done():
			return
		}
		next, pending := s.programmePending(hub)
		if !pending {
			return
		}
		if !next.Equal(until) { // the programme started meanwhile: its own bound
			until = next
			timer.Reset(time.Until(until))
		}
	}
}

// programmePending reports whether the session's programme is expected to get a
// track that a reader of /{session} would get, and until when it is waited for:
// the programme is live but has no video (or audio) while the trainer has some,
// for programmeSetup after it started; or, on a server that makes programmes
// (Config.Programme), the trainer has tracks and the programme is not live yet,
// for programmeSetup after the trainer started.
func (s *Server) programmePending(hub *sfu.Session) (until time.Time, pending bool) {
	trainer, ok := hub.Publication(sfu.TrainerPublication)
	if !ok {
		return time.Time{}, false
	}
	var since time.Time
	if prog, live := hub.Publication(ProgrammePublication); live {
		missing := false
		for _, local := range []string{"video", "audio"} {
			missing = missing || hasTrack(trainer, local) && !hasTrack(prog, local)
		}
		if !missing {
			return time.Time{}, false
		}
		since = prog.Info().Started
	} else {
		if !s.cfg.Programme || !hasTrack(trainer, "video") && !hasTrack(trainer, "audio") {
			return time.Time{}, false
		}
		since = trainer.Info().Started
	}
	until = since.Add(s.cfg.programmeSetup)
	return until, time.Now().Before(until)
}

// hasTrack reports whether publication p has a live track of that local name.
func hasTrack(p *sfu.Publication, local string) bool {
	name := p.Name() + "/" + local
	for _, t := range p.Tracks() {
		if t.Name() == name && !t.Closed() {
			return true
		}
	}
	return false
}
