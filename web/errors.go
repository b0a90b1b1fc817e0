package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"lectern/auth"
	"lectern/catalog"
	"lectern/internal/limit"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/sfu/rtsp"
)

// Errors of the web layer itself.
var (
	errForbidden          = errors.New("forbidden")
	errNoFloor            = errors.New("this classroom does not have the floor: raise a hand and wait for the trainer")
	errBadRequest         = errors.New("bad request")
	errUnsupportedMedia   = errors.New("unsupported content type")
	errTooLarge           = errors.New("request body too large")
	errRequestTimeout     = errors.New("request timeout")
	errNotLive            = errors.New("publication is not live")
	errUnknownParticipant = errors.New("participant not found")
	errNotFound           = errors.New("not found")
)

// statusOf maps an error to its HTTP status. This is the only place that does.
func statusOf(err error) int {
	if status, ok := replayStatus(err); ok {
		return status
	}
	switch {
	case errors.Is(err, auth.ErrTooManyFailures), errors.Is(err, errTooManyStreams), errors.Is(err, errTooManyConnecting):
		return http.StatusTooManyRequests
	case errors.Is(err, auth.ErrMissingToken), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrExpiredToken):
		return http.StatusUnauthorized
	case errors.Is(err, auth.ErrWrongSession), errors.Is(err, auth.ErrWrongRole),
		errors.Is(err, errForbidden), errors.Is(err, errNoFloor):
		return http.StatusForbidden
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, peer.ErrResourceNotFound),
		errors.Is(err, errNotLive), errors.Is(err, errUnknownParticipant), errors.Is(err, sfu.ErrNoSession),
		errors.Is(err, errNotFound), errors.Is(err, rtsp.ErrSourceNotFound):
		return http.StatusNotFound
	case errors.Is(err, rtsp.ErrSourceExists):
		return http.StatusConflict
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errRequestTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, peer.ErrETagMismatch):
		return http.StatusPreconditionFailed
	case errors.Is(err, peer.ErrUnsupportedCodec):
		return http.StatusUnprocessableEntity
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, auth.ErrInvalidClaims), errors.Is(err, peer.ErrBadOffer),
		errors.Is(err, peer.ErrBadFragment), errors.Is(err, errBadRequest), errors.Is(err, rtsp.ErrInvalidSource),
		errors.Is(err, peer.ErrBadLayer):
		return http.StatusBadRequest
	case errors.Is(err, sfu.ErrTooManySubscribers), errors.Is(err, peer.ErrClosed), errors.Is(err, sfu.ErrSessionClosed),
		errors.Is(err, rtsp.ErrClosed), errors.Is(err, catalog.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, errClusterUnavailable): // cluster.go: another node or Redis out of reach
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// httpError writes err as a JSON error response and logs it.
func (s *Server) httpError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	level := slog.LevelInfo
	msg := err.Error()
	if status >= 500 {
		level = slog.LevelError
		if status == http.StatusInternalServerError {
			msg = "internal error" // details stay in the log
		}
	}
	s.log.Log(r.Context(), level, "request refused", "method", r.Method, "path", r.URL.Path, "status", status,
		"client", limit.ClientAddr(r), "err", err)
	var retry interface{ RetryAfter() time.Duration }
	if errors.As(err, &retry) { // e.g. too many failed authentications: when to try again
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.RetryAfter().Round(time.Second)/time.Second)))
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lectern"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON request body of at most maxBody bytes into v.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r, "application/json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: body is not valid JSON: %v", errBadRequest, err)
	}
	return nil
}
