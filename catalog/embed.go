package catalog

import (
	"fmt"
	"time"
)

// MaxEmbedsPerRecording bounds the embed tokens a recording may have at once, so the
// catalog file cannot be grown without bound by one trainer.
const MaxEmbedsPerRecording = 100

// ErrEmbedNotFound: no embed token with that id (it never existed, was revoked or
// expired). It matches ErrNotFound too.
var ErrEmbedNotFound = fmt.Errorf("%w: no such embed token", ErrNotFound)

// Embed records an embed token: a read-only credential for one recording's replay,
// for a player embedded in another site. A token is honoured only while its record
// is here: deleting the record revokes the token.
type Embed struct {
	// ID is the token's id (its jti claim).
	ID string `json:"id"`
	// Session and Recording are what the token reads.
	Session   string `json:"session"`
	Recording string `json:"recording"`
	// Label says where the embed is used ("Cổng đào tạo tỉnh"), for the list; optional.
	Label string `json:"label,omitempty"`
	// CreatedBy is who minted it ("admin", or the trainer's participant name).
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// check validates an embed record (from a caller or the file) and normalises it.
func (e *Embed) check() error {
	switch {
	case e.ID == "" || len(e.ID) > 64:
		return invalid("embed id", "must be 1-64 characters")
	case !ValidID(e.Session):
		return invalid("embed session", "is not a session id")
	case e.Recording == "" || len(e.Recording) > 128:
		return invalid("embed recording", "must be 1-128 characters")
	case e.ExpiresAt.IsZero() || e.CreatedAt.IsZero():
		return invalid("embed times", "are missing")
	}
	label, err := cleanText("label", e.Label, MaxTitleRunes, false)
	if err != nil {
		return err
	}
	e.Label = label
	e.CreatedAt, e.ExpiresAt = e.CreatedAt.UTC().Round(0), e.ExpiresAt.UTC().Round(0)
	return nil
}

// AddEmbed stores an embed token's record. Expired records are dropped on the way.
// An invalid record is ErrInvalid; an unknown session ErrNotFound; more than
// MaxEmbedsPerRecording for one recording is ErrInvalid.
func (c *Catalog) AddEmbed(e Embed) (Embed, error) {
	if err := e.check(); err != nil {
		return Embed{}, err
	}
	err := c.mutate(func(ct *contents, now time.Time) error {
		if _, ok := ct.sessions[e.Session]; !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, e.Session)
		}
		return addGrant(ct.embeds, e.ID, e, now,
			func(old Embed) bool { return old.Recording == e.Recording }, MaxEmbedsPerRecording,
			invalid("embeds", "at most %d per recording: revoke one first", MaxEmbedsPerRecording),
			invalid("embed id", "is taken"))
	})
	if err != nil {
		return Embed{}, err
	}
	return e, nil
}

// Embed returns the record of the embed token id, if it is stored and unexpired.
func (c *Catalog) Embed(id string) (Embed, bool) {
	ct, err := c.view()
	if err != nil {
		return Embed{}, false
	}
	e, ok := ct.embeds[id]
	if !ok || !e.ExpiresAt.After(c.now()) {
		return Embed{}, false
	}
	return e, true
}

// Embeds lists the unexpired embed tokens of a recording, oldest first.
func (c *Catalog) Embeds(recording string) []Embed {
	ct, err := c.view()
	if err != nil {
		return nil
	}
	return liveGrants(ct.embeds, c.now(), func(e Embed) bool { return e.Recording == recording })
}

// DeleteEmbed revokes the embed token id of recording: its record is removed, and
// the token stops working. An unknown id (or one of another recording) is
// ErrEmbedNotFound.
func (c *Catalog) DeleteEmbed(recording, id string) error {
	return c.mutate(func(ct *contents, _ time.Time) error {
		e, ok := ct.embeds[id]
		if !ok || e.Recording != recording {
			return fmt.Errorf("%w: %q", ErrEmbedNotFound, id)
		}
		delete(ct.embeds, id)
		return nil
	})
}

// DeleteEmbeds revokes every embed token of recording (the recording was deleted:
// they could play nothing) and returns how many records were removed. None is not
// an error.
func (c *Catalog) DeleteEmbeds(recording string) (int, error) {
	// Most recordings have none: no write for them.
	if ct, err := c.view(); err == nil && !embedsOf(ct, recording) {
		return 0, nil
	}
	n := 0
	err := c.mutate(func(ct *contents, _ time.Time) error {
		n = 0 // with Redis, fn runs again after another node's change
		for id, e := range ct.embeds {
			if e.Recording == recording {
				delete(ct.embeds, id)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// embedsOf says whether ct holds an embed record of recording.
func embedsOf(ct *contents, recording string) bool {
	for _, e := range ct.embeds {
		if e.Recording == recording {
			return true
		}
	}
	return false
}
