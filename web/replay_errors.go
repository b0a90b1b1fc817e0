package web

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"lectern/recorder"
	"lectern/storage"
)

// replayStatus maps the errors of recordings and stored objects to HTTP status
// codes; statusOf consults it first.
func replayStatus(err error) (int, bool) {
	switch {
	case errors.Is(err, recorder.ErrNotFound), errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrInvalidKey):
		return http.StatusNotFound, true
	case errors.Is(err, errRangeNotSatisfiable), errors.Is(err, storage.ErrInvalidRange):
		return http.StatusRequestedRangeNotSatisfiable, true
	case errors.Is(err, recorder.ErrInProgress):
		return http.StatusConflict, true
	case errors.Is(err, recorder.ErrBadCursor):
		return http.StatusBadRequest, true
	case errors.Is(err, errTooManyDownloads):
		return http.StatusTooManyRequests, true
	case errors.Is(err, errPreconditionFailed):
		return http.StatusPreconditionFailed, true
	}
	return 0, false
}

// fail answers with err: the replay errors here, everything else through the
// server's httpError (the one place that maps the other packages' errors).
func (p *replays) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, ok := replayStatus(err)
	if !ok {
		p.s.httpError(w, r, err)
		return
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	p.s.log.Log(r.Context(), level, "request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	writeJSON(w, status, errorBody{Error: publicMessage(err, status), Status: status})
}

// publicMessage is what a client is told of a replay error. The store's errors
// name its keys (recordings/{session}/{id}/...), which are internal: an error
// that comes from the store is told by its class only; the full error is logged.
func publicMessage(err error, status int) string {
	for _, e := range []error{storage.ErrNotFound, storage.ErrInvalidKey, storage.ErrInvalidRange, storage.ErrNotSupported} {
		if errors.Is(err, e) {
			if status == http.StatusRequestedRangeNotSatisfiable {
				return errRangeNotSatisfiable.Error()
			}
			return strings.ToLower(http.StatusText(status))
		}
	}
	return err.Error()
}
