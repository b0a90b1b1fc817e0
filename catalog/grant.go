package catalog

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// grant is a stored credential record, an embed token or a device code: a map of
// them is bounded per owner (a recording, a session), an expired one is dropped
// when another is added, and lists show the unexpired ones oldest first.
type grant interface {
	Embed | Code
	// meta returns the record's id and times.
	meta() (id string, created, expires time.Time)
}

func (e Embed) meta() (string, time.Time, time.Time) { return e.ID, e.CreatedAt, e.ExpiresAt }
func (c Code) meta() (string, time.Time, time.Time)  { return c.ID, c.CreatedAt, c.ExpiresAt }

// live reports whether g has not expired at now.
func live[G grant](g G, now time.Time) bool {
	_, _, expires := g.meta()
	return expires.After(now)
}

// addGrant stores g in m under key, dropping m's expired records on the way. It
// fails (ErrInvalid) with tooMany when sameOwner takes max unexpired records of m
// already, and with taken when key is stored (expired or not).
func addGrant[G grant](m map[string]G, key string, g G, now time.Time, sameOwner func(G) bool, max int, tooMany, taken error) error {
	n := 0
	for _, old := range m {
		if sameOwner(old) && live(old, now) {
			n++
		}
	}
	if n >= max {
		return tooMany
	}
	if _, dup := m[key]; dup {
		return taken
	}
	maps.DeleteFunc(m, func(_ string, old G) bool { return !live(old, now) })
	m[key] = g
	return nil
}

// liveGrants returns the unexpired records of m that keep takes, oldest first
// (records made in the same instant by id).
func liveGrants[G grant](m map[string]G, now time.Time, keep func(G) bool) []G {
	var out []G
	for _, g := range m {
		if keep(g) && live(g, now) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b G) int {
		aID, aCreated, _ := a.meta()
		bID, bCreated, _ := b.meta()
		return cmp.Or(aCreated.Compare(bCreated), cmp.Compare(aID, bID))
	})
	return out
}
