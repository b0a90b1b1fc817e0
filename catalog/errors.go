package catalog

import (
	"errors"
	"fmt"
)

// Errors returned by this package. They are wrapped with context; match them with errors.Is.
//
// The web layer maps them to HTTP status codes in one place: ErrNotFound is 404, ErrInvalid is
// 400 (or 422). Any other error (a failed disk write, for example) is a 500.
var (
	// ErrNotFound: no session has the requested id.
	ErrNotFound = errors.New("catalog: session not found")

	// ErrInvalid: a session definition breaks a rule (missing title, too long, control
	// characters, …). The error is a *ValidationError that names the field.
	ErrInvalid = errors.New("catalog: invalid session")
)

// ValidationError says which field of a session definition is invalid and why. It matches
// ErrInvalid with errors.Is; use errors.As to show the field to the user.
type ValidationError struct {
	Field  string // JSON name of the field, e.g. "title"
	Reason string // human-readable, e.g. "must not be empty"
}

// Error returns e.g. "catalog: invalid session: title is required".
func (e *ValidationError) Error() string {
	return fmt.Sprintf("%v: %s %s", ErrInvalid, e.Field, e.Reason)
}

// Unwrap returns ErrInvalid so that errors.Is(err, ErrInvalid) holds.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
