// Package catalog keeps the definitions of sessions (lectures) so that they survive a restart.
//
// A Catalog is a small in-memory map backed by one JSON file, <dir>/sessions.json, rewritten
// atomically (temporary file, fsync, rename, fsync of the directory) on every change. Changes
// are rare (an admin creating or deleting a lecture), so each one rewrites the whole file while
// holding the catalog's mutex; reads never touch the disk.
//
// The catalog knows nothing of live state (publishers, hands, recordings): it is the list the
// web layer shows and the edges check a session id against. It imports no project package.
//
// One process owns a directory: two processes opening the same directory overwrite each other.
package catalog

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// maxIDAttempts bounds the retries when a freshly drawn id is already taken (with 36^10 ids
// this is astronomically rare; the bound only guards against a broken random source).
const maxIDAttempts = 8

// Catalog is the set of sessions stored in one directory. Its methods are safe for concurrent
// use; each change is on disk when the method returns.
type Catalog struct {
	dir string
	now func() time.Time // tests replace it

	mu       sync.Mutex
	sessions map[string]Session
	embeds   map[string]Embed // by id (the token's jti)
	codes    map[string]Code  // device codes, by hash
}

// Open loads the catalog stored in dir (creating dir if needed). A missing sessions.json is an
// empty catalog; a file that cannot be parsed or holds an invalid session is an error that
// names the file, and the file is left as it is. Temporary files left by a crash during a save
// are removed.
func Open(dir string) (*Catalog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("catalog: creating %s: %w", dir, err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, fmt.Errorf("catalog: cleaning %s: %w", dir, err)
	}
	f, err := load(filepath.Join(dir, FileName))
	if err != nil {
		return nil, err
	}
	return &Catalog{dir: dir, now: time.Now, sessions: f.sessions, embeds: f.embeds, codes: f.codes}, nil
}

// Create validates n, gives it a fresh id and creation time, stores it and returns it. An
// invalid n is an error matching ErrInvalid (a *ValidationError naming the field); a failed
// write leaves the catalog unchanged.
func (c *Catalog) Create(n NewSession) (Session, error) {
	s := Session{
		Title:         n.Title,
		Description:   n.Description,
		ScheduledAt:   n.ScheduledAt,
		PublicReplays: n.PublicReplays,
		Listed:        n.Listed,
		// "" stays "": the default (the trainer) is read by VideoMode, so a
		// session created before the setting existed reads the same.
		ProgrammeVideo: n.ProgrammeVideo,
	}
	if err := s.normalize(); err != nil {
		return Session{}, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	id, err := c.freshIDLocked()
	if err != nil {
		return Session{}, err
	}
	s.ID = id
	s.CreatedAt = c.now().UTC().Round(0)
	c.sessions[id] = s
	if err := c.saveLocked(); err != nil {
		delete(c.sessions, id)
		return Session{}, err
	}
	return s.clone(), nil
}

// freshIDLocked draws ids until one is not taken. c.mu must be held.
func (c *Catalog) freshIDLocked() (string, error) {
	for range maxIDAttempts {
		id, err := newID()
		if err != nil {
			return "", err
		}
		if _, taken := c.sessions[id]; !taken {
			return id, nil
		}
	}
	return "", fmt.Errorf("catalog: no free id after %d attempts", maxIDAttempts)
}

// Get returns the session with the given id, or an error matching ErrNotFound.
func (c *Catalog) Get(id string) (Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[id]
	if !ok {
		return Session{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return s.clone(), nil
}

// List returns all sessions ordered by start: ScheduledAt if set, else CreatedAt, ascending,
// ties broken by id. The slice is the caller's.
func (c *Catalog) List() []Session {
	c.mu.Lock()
	out := make([]Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		out = append(out, s.clone())
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Session) int {
		if d := a.sortKey().Compare(b.sortKey()); d != 0 {
			return d
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Delete removes the session with the given id, its embed tokens and device codes, or returns an error matching ErrNotFound. A
// failed write leaves the catalog unchanged.
func (c *Catalog) Delete(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	delete(c.sessions, id)
	var gone []Embed // a session's embed tokens go with it
	for k, e := range c.embeds {
		if e.Session == id {
			gone = append(gone, e)
			delete(c.embeds, k)
		}
	}
	goneCodes := map[string]Code{} // and its device codes
	for k, code := range c.codes {
		if code.Session == id {
			goneCodes[k] = code
			delete(c.codes, k)
		}
	}
	if err := c.saveLocked(); err != nil {
		c.sessions[id] = s
		for _, e := range gone {
			c.embeds[e.ID] = e
		}
		for k, code := range goneCodes {
			c.codes[k] = code
		}
		return err
	}
	return nil
}

// Update changes the session with the given id: fn receives a copy to modify, and the result
// is validated and stored as with Create. If fn returns an error, nothing changes and Update
// returns that error unwrapped. ID and CreatedAt cannot change (ErrInvalid). An unknown id is
// ErrNotFound.
//
// fn runs on the caller's goroutine with the catalog locked: it must be quick and must not call
// the Catalog.
func (c *Catalog) Update(id string, fn func(*Session) error) (Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.sessions[id]
	if !ok {
		return Session{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	s := old.clone()
	if err := fn(&s); err != nil {
		return Session{}, err
	}
	if s.ID != old.ID {
		return Session{}, invalid("id", "cannot be changed")
	}
	if !s.CreatedAt.Equal(old.CreatedAt) {
		return Session{}, invalid("created_at", "cannot be changed")
	}
	s.CreatedAt = old.CreatedAt
	if err := s.normalize(); err != nil { // also copies ScheduledAt away from fn's pointer
		return Session{}, err
	}
	c.sessions[id] = s
	if err := c.saveLocked(); err != nil {
		c.sessions[id] = old
		return Session{}, err
	}
	return s.clone(), nil
}

// Dir returns the directory the catalog is stored in.
func (c *Catalog) Dir() string { return c.dir }
