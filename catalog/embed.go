package catalog

import (
	"cmp"
	"fmt"
	"slices"
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sessions[e.Session]; !ok {
		return Embed{}, fmt.Errorf("%w: %q", ErrNotFound, e.Session)
	}
	now := c.now()
	n := 0
	for _, old := range c.embeds {
		if old.Recording == e.Recording && old.ExpiresAt.After(now) {
			n++
		}
	}
	if n >= MaxEmbedsPerRecording {
		return Embed{}, invalid("embeds", "at most %d per recording: revoke one first", MaxEmbedsPerRecording)
	}
	if _, dup := c.embeds[e.ID]; dup {
		return Embed{}, invalid("embed id", "is taken")
	}
	expired := map[string]Embed{}
	for k, old := range c.embeds {
		if !old.ExpiresAt.After(now) {
			expired[k] = old
			delete(c.embeds, k)
		}
	}
	c.embeds[e.ID] = e
	if err := c.saveLocked(); err != nil {
		delete(c.embeds, e.ID)
		for k, old := range expired {
			c.embeds[k] = old
		}
		return Embed{}, err
	}
	return e, nil
}

// Embed returns the record of the embed token id, if it is stored and unexpired.
func (c *Catalog) Embed(id string) (Embed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.embeds[id]
	if !ok || !e.ExpiresAt.After(c.now()) {
		return Embed{}, false
	}
	return e, true
}

// Embeds lists the unexpired embed tokens of a recording, oldest first.
func (c *Catalog) Embeds(recording string) []Embed {
	c.mu.Lock()
	now := c.now()
	var out []Embed
	for _, e := range c.embeds {
		if e.Recording == recording && e.ExpiresAt.After(now) {
			out = append(out, e)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Embed) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// DeleteEmbed revokes the embed token id of recording: its record is removed, and
// the token stops working. An unknown id (or one of another recording) is
// ErrEmbedNotFound.
func (c *Catalog) DeleteEmbed(recording, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.embeds[id]
	if !ok || e.Recording != recording {
		return fmt.Errorf("%w: %q", ErrEmbedNotFound, id)
	}
	delete(c.embeds, id)
	if err := c.saveLocked(); err != nil {
		c.embeds[id] = e
		return err
	}
	return nil
}
