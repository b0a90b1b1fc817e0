package web

import (
	"lectern/events"
	"lectern/floor"
	"lectern/recorder"
)

// Hand and Speaker are the floor's (package floor), served as they are.
type (
	Hand    = floor.Hand
	Speaker = floor.Speaker
)

// sitePublication is the publication name of a classroom with the floor.
func sitePublication(participant string) string { return floor.SitePublication(participant) }

// floorChanged is the floor's hook: the pages learn the new hands or speakers
// (SSE), the session's main recording, if one is being made, keeps the change in
// its timeline (the replay's chapters), and Config.OnFloor (the programme) learns it.
func (s *Server) floorChanged(e floor.Event) {
	switch e.Change {
	case floor.HandRaised, floor.HandLowered:
		s.cfg.Events.Publish(e.Session, events.TypeHands, e.Hands)
	case floor.Granted, floor.Revoked:
		s.cfg.Events.Publish(e.Session, events.TypeSpeakers, e.Speakers)
	}
	s.cluster.floorChanged(e) // cluster.go: the floor taken back on another node ends the talk-back here
	if s.cfg.Replays != nil && s.cfg.Replays.Recorder != nil {
		s.cfg.Replays.Recorder.Mark(e.Session, e.At, recorder.TimelineEntry{Type: string(e.Change), Participant: e.Participant, Name: e.Display})
	}
	if s.cfg.OnFloor != nil {
		s.cfg.OnFloor(e)
	}
}
