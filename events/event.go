// Package events carries the live state of sessions to web pages: a Broker fans out small
// per-session events (a session went live, a publication appeared, hands changed, …) to
// subscribers, and ServeSSE streams one subscription to a browser as Server-Sent Events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html).
//
// Publishers are the SFU, its edges and the REST API; they must never wait for a browser. So
// Publish never blocks: each subscriber has a bounded buffer, and a subscriber whose buffer is
// full is disconnected (its channel closed). Its page reconnects, as EventSource does on its
// own, and starts again from a fresh snapshot. Events are therefore hints on top of snapshots:
// a page must be able to rebuild its state from the snapshot alone.
//
// The package imports no project package.
package events

import "time"

// Event types published by Lectern. The Data of each is defined by its publisher; the web
// pages read it. Other types may be added: a page ignores the ones it does not know.
const (
	// TypeSnapshot is the first event ServeSSE writes on every stream: the full current state.
	TypeSnapshot = "snapshot"

	TypeSessionLive        = "session.live"        // the session has a publisher
	TypeSessionEnded       = "session.ended"       // the last publisher left, or the session was closed
	TypePublicationAdded   = "publication.added"   // a publication (trainer, site-<name>, camera) appeared
	TypePublicationRemoved = "publication.removed" // a publication went away
	TypeHands              = "hands"               // the list of raised hands changed
	TypeSpeakers           = "speakers"            // the list of classrooms given the floor changed
	TypeSubscribers        = "subscribers"         // viewer counts changed
)

// Event is one change in the live state of a session, as published to a Broker and written to
// a browser (encoded as JSON in the SSE data field).
type Event struct {
	// Session is the id of the session the event belongs to. It is empty in the snapshot
	// that ServeSSE writes first (the page knows which session it asked for).
	Session string `json:"session"`
	// Type says what changed; see the Type constants. It is also the SSE event name.
	Type string `json:"type"`
	// Data is the payload, encoded with encoding/json. It is shared by all subscribers and
	// encoded on their goroutines, so it must not be modified after Publish.
	Data any `json:"data,omitempty"`
	// Seq is assigned by the Broker: 1 for its first event, then increasing by one for every
	// event it publishes (in any session). ServeSSE uses it as the SSE id.
	Seq uint64 `json:"seq"`
	// Time is when the event was published.
	Time time.Time `json:"time"`
}
