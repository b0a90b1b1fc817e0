package catalog

import (
	"encoding/hex"
	"fmt"
	"time"
)

// MaxCodesPerSession bounds the device codes a session may have at once, so one
// trainer cannot grow the catalogue file without bound.
const MaxCodesPerSession = 100

// ErrCodeNotFound: no device code with that id in the session (it never existed,
// was revoked, or expired and was dropped). It matches ErrNotFound too.
var ErrCodeNotFound = fmt.Errorf("%w: no such device code", ErrNotFound)

// Code records a device access code: a short credential an RTSP device (a hall
// decoder, a studio encoder) holds instead of a long token. The code itself is never
// stored, only its SHA-256 (see auth.HashCode): whoever reads this file cannot use
// the codes. Deleting the record revokes the code.
type Code struct {
	// ID names the code in the API (not secret: it is not the code).
	ID string `json:"id"`
	// Hash is the hex SHA-256 of the code's canonical form; it finds the code.
	Hash string `json:"hash"`
	// Session, Role and Name are what the code admits as: a participant of the
	// session with that role and name, as a token would.
	Session string `json:"session"`
	Role    string `json:"role"`
	Name    string `json:"name"`
	// Display is the device's human name ("Đầu thu hội trường A"); optional.
	Display string `json:"display,omitempty"`
	// CreatedBy is who minted it ("admin", or the trainer's participant name).
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// check validates a code record (from a caller or the file) and normalises it.
func (c *Code) check() error {
	raw, err := hex.DecodeString(c.Hash)
	switch {
	case c.ID == "" || len(c.ID) > 64:
		return invalid("code id", "must be 1-64 characters")
	case err != nil || len(raw) != 32:
		return invalid("code hash", "must be a hex SHA-256")
	case !ValidID(c.Session):
		return invalid("code session", "is not a session id")
	case c.Role == "" || len(c.Role) > 16:
		return invalid("code role", "must be 1-16 characters")
	case c.Name == "" || len(c.Name) > 63:
		return invalid("code name", "must be 1-63 characters")
	case c.ExpiresAt.IsZero() || c.CreatedAt.IsZero():
		return invalid("code times", "are missing")
	}
	display, err := cleanText("display", c.Display, MaxTitleRunes, false)
	if err != nil {
		return err
	}
	c.Display = display
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC().Round(0), c.ExpiresAt.UTC().Round(0)
	return nil
}

// AddCode stores a device code's record. Expired records are dropped on the way.
// An invalid record is ErrInvalid; an unknown session ErrNotFound; more than
// MaxCodesPerSession unexpired codes for one session, or a hash or id already
// stored, is ErrInvalid.
func (c *Catalog) AddCode(code Code) (Code, error) {
	if err := code.check(); err != nil {
		return Code{}, err
	}
	err := c.mutate(func(ct *contents, now time.Time) error {
		if _, ok := ct.sessions[code.Session]; !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, code.Session)
		}
		for _, old := range ct.codes { // by hash: the id is looked for
			if old.ID == code.ID {
				return invalid("code id", "is taken")
			}
		}
		return addGrant(ct.codes, code.Hash, code, now,
			func(old Code) bool { return old.Session == code.Session }, MaxCodesPerSession,
			invalid("codes", "at most %d per session: revoke one first", MaxCodesPerSession),
			invalid("code hash", "is taken"))
	})
	if err != nil {
		return Code{}, err
	}
	return code, nil
}

// CodeByHash returns the record of the code whose hex SHA-256 is hash, expired or
// not (the caller tells "expired" from "unknown").
func (c *Catalog) CodeByHash(hash string) (Code, bool) {
	ct, err := c.view()
	if err != nil {
		return Code{}, false
	}
	code, ok := ct.codes[hash]
	return code, ok
}

// Codes lists the unexpired device codes of a session, oldest first.
func (c *Catalog) Codes(session string) []Code {
	ct, err := c.view()
	if err != nil {
		return nil
	}
	return liveGrants(ct.codes, c.now(), func(code Code) bool { return code.Session == session })
}

// DeleteCode revokes the device code id of session: its record is removed, and the
// code stops working. An unknown id (or one of another session) is ErrCodeNotFound.
func (c *Catalog) DeleteCode(session, id string) error {
	return c.mutate(func(ct *contents, _ time.Time) error {
		for k, code := range ct.codes {
			if code.ID == id && code.Session == session {
				delete(ct.codes, k)
				return nil
			}
		}
		return fmt.Errorf("%w: %q", ErrCodeNotFound, id)
	})
}
