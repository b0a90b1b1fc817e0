// Package floor is the talk-back state of live sessions: the hands classrooms
// raise, in order, and the classrooms that hold the floor (may publish). The
// pages need it (web serves it over HTTP and SSE), and so do the programme and the
// recording's timeline, which is why it lives outside web.
//
// [Floor] is the small interface a cluster-wide implementation (Redis, see
// DESIGN.md §8) can satisfy; [Memory] is the default, for one node. Every change
// is reported as an [Event] to the hook given to the implementation.
package floor

import (
	"context"
	"time"
)

// Hand is a raised hand: a classroom asking for the floor.
type Hand struct {
	Participant string    `json:"participant"`
	Display     string    `json:"display,omitempty"`
	RaisedAt    time.Time `json:"raised_at"`
}

// Speaker is a classroom that holds the floor: it may publish.
type Speaker struct {
	Participant string    `json:"participant"`
	Display     string    `json:"display,omitempty"`
	Publication string    `json:"publication"`
	Since       time.Time `json:"since"`
}

// SitePublication is the publication name of a classroom with the floor.
func SitePublication(participant string) string { return "site-" + participant }

// Change says what an [Event] reports.
type Change string

// Changes. Their values are the recording timeline's entry types.
const (
	HandRaised  Change = "hand"      // a classroom raised its hand
	HandLowered Change = "hand_down" // a raised hand was lowered (by the classroom, or by a grant)
	Granted     Change = "floor"     // a classroom was given the floor
	Revoked     Change = "floor_end" // the floor was taken back
)

// Event is one change of a session's floor, with the session's state after it.
type Event struct {
	Session     string
	Change      Change
	Participant string
	Display     string
	At          time.Time
	// Hands is the session's raised hands after the change (HandRaised,
	// HandLowered); Speakers the classrooms with the floor (Granted, Revoked).
	// Never nil for the list the change is about.
	Hands    []Hand
	Speakers []Speaker
}

// Floor is the talk-back state of every session. Implementations are safe for
// concurrent use and report every change, after it is made, to their hook, in the
// order of the changes of a session. The errors are the backend's (a Redis
// implementation's network); the in-memory one never fails.
type Floor interface {
	// Raise adds participant's hand at the end of the queue; raising it again does
	// nothing.
	Raise(ctx context.Context, session, participant, display string) error
	// Lower removes participant's hand; false when it was not raised.
	Lower(ctx context.Context, session, participant string) (bool, error)
	// Grant gives participant the floor and lowers its hand (its display name is
	// taken from the hand). Granting it again returns the speaker as it is.
	Grant(ctx context.Context, session, participant string) (Speaker, error)
	// Revoke takes the floor back; false when participant did not hold it.
	Revoke(ctx context.Context, session, participant string) (bool, error)
	// Holds reports whether participant holds the floor.
	Holds(ctx context.Context, session, participant string) (bool, error)
	// Snapshot returns the session's hands, in the order they were raised, and
	// speakers, in the order they were granted; both non-nil.
	Snapshot(ctx context.Context, session string) ([]Hand, []Speaker, error)
	// Forget drops the session's state (the session ended), without events.
	Forget(ctx context.Context, session string) error
}
