package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultKeepalive is the interval between keepalive comments when ServeSSE is given 0.
const DefaultKeepalive = 15 * time.Second

// minWriteTimeout is the least time ServeSSE lets one write to the client take. (A
// variable so that tests can shorten it.)
var minWriteTimeout = 10 * time.Second

// ServeSSE streams events to the client of r as Server-Sent Events until the request's context
// is done (the client went away or the server is shutting down) or events is closed (the
// subscriber was too slow or the broker closed). It runs on the handler's goroutine, starts no
// goroutine, and returns when it is done; the caller then cancels its subscription.
//
// It writes the headers (Content-Type: text/event-stream, Cache-Control: no-cache,
// X-Accel-Buffering: no so that nginx does not buffer), then a first event of type
// TypeSnapshot, without an id, whose Data is snapshot() (called once, on this goroutine, after
// the headers are sent; nil snapshot means no data). Then each event as
//
//	id: <seq>
//	event: <type>
//	data: <the Event as JSON>
//
// and a ": ping" comment every keepalive (DefaultKeepalive if 0) so that proxies keep the
// connection open. Every write is flushed. Each write must complete within
// max(2×keepalive, 10 s), which also lifts any http.Server WriteTimeout for this stream, so a
// client that stops reading is dropped instead of holding the goroutine. (The last deadline
// also bounds the end of the response; net/http clears it before reusing the connection.)
//
// Subscribe before calling ServeSSE (and so before snapshot runs): every event published after
// Subscribe is then written after the snapshot, so none falls between the two. The snapshot may
// already reflect some of them, so pages must apply events idempotently.
//
// It returns nil when the context is done or events is closed, and an error if the response
// cannot be flushed (streaming unsupported), an event cannot be encoded, or a write fails.
func ServeSSE(w http.ResponseWriter, r *http.Request, events <-chan Event, snapshot func() any,
	keepalive time.Duration) error {
	if keepalive <= 0 {
		keepalive = DefaultKeepalive
	}
	ctx := r.Context()
	s := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: max(2*keepalive, minWriteTimeout)}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := s.flush(); err != nil {
		return err
	}

	snap := Event{Type: TypeSnapshot, Time: time.Now()}
	if snapshot != nil {
		snap.Data = snapshot()
	}
	if err := s.event(snap, false); err != nil {
		return ignoreIfDone(ctx.Err(), err)
	}

	ticker := time.NewTicker(keepalive)
	defer ticker.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			err = s.event(ev, true)
		case <-ticker.C:
			err = s.write([]byte(": ping\n\n"))
		}
		if err != nil {
			return ignoreIfDone(ctx.Err(), err)
		}
	}
}

// ignoreIfDone drops a write error caused by the client going away.
func ignoreIfDone(ctxErr, err error) error {
	if ctxErr != nil {
		return nil
	}
	return err
}

// sseWriter writes SSE frames to one response, each under a write deadline and flushed.
type sseWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

// event writes ev as one SSE frame; withID adds the "id:" line.
func (s *sseWriter) event(ev Event, withID bool) error {
	if strings.ContainsAny(ev.Type, "\r\n") {
		return fmt.Errorf("events: event type %q contains a line break", ev.Type)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events: encoding %s event (seq %d): %w", ev.Type, ev.Seq, err)
	}
	s.buf = s.buf[:0]
	if withID {
		s.buf = fmt.Appendf(s.buf, "id: %d\n", ev.Seq)
	}
	s.buf = fmt.Appendf(s.buf, "event: %s\ndata: ", ev.Type)
	s.buf = append(s.buf, data...) // json.Marshal output has no raw line breaks
	s.buf = append(s.buf, "\n\n"...)
	return s.write(s.buf)
}

// write writes p and flushes it, within s.timeout.
func (s *sseWriter) write(p []byte) error {
	err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("events: setting write deadline: %w", err)
	}
	if _, err := s.w.Write(p); err != nil {
		return fmt.Errorf("events: writing to client: %w", err)
	}
	return s.flush()
}

func (s *sseWriter) flush() error {
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("events: flushing to client: %w", err)
	}
	return nil
}
