// Package catalog keeps the definitions of sessions (lectures) so that they survive a restart.
//
// A Catalog is a small in-memory map backed by one JSON file, <dir>/sessions.json, rewritten
// atomically (temporary file, fsync, rename, fsync of the directory) on every change. Changes
// are rare (an admin creating or deleting a lecture), so each one rewrites the whole file while
// holding the catalog's mutex; reads never touch the disk.
//
// A cluster of nodes shares one catalogue in Redis instead (OpenRedis, redis.go): every node
// reads the others' changes at once, and concurrent changes from two nodes never lose one.
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
	"sync/atomic"
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
	red *redisStore      // nil: the file in dir is the store

	// mu serialises changes (and, with Redis, reloads); it is held across the
	// store's I/O, which only changes and reloads pay. Reads take cur, an
	// immutable snapshot replaced whole by each change, without locking.
	mu  sync.Mutex
	cur atomic.Pointer[contents]
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
	c := &Catalog{dir: dir, now: time.Now}
	c.cur.Store(&f)
	return c, nil
}

// mutate applies fn to a copy of the current contents and stores the result: the
// file is rewritten, or (Redis) the changes are written in one transaction, and fn
// runs again on fresh contents if another node changed the catalogue meanwhile. An
// error from fn is returned as it is, and nothing changes; so does a failed write.
func (c *Catalog) mutate(fn func(ct *contents, now time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.red != nil {
		return c.red.mutate(c, fn)
	}
	next := c.cur.Load().clone()
	if err := fn(next, c.now()); err != nil {
		return err
	}
	if err := saveFile(c.dir, next); err != nil {
		return err
	}
	c.cur.Store(next)
	return nil
}

// view returns the current contents, which the caller must not change. With
// Redis it is the shared catalogue as of now, or the last one read when Redis
// cannot be reached (an error matching ErrUnavailable only before any was read).
func (c *Catalog) view() (*contents, error) {
	if c.red != nil {
		return c.red.view(c)
	}
	return c.cur.Load(), nil
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

	err := c.mutate(func(ct *contents, now time.Time) error {
		id, err := freshID(ct.sessions)
		if err != nil {
			return err
		}
		s.ID = id
		s.CreatedAt = now.UTC().Round(0)
		ct.sessions[id] = s
		return nil
	})
	if err != nil {
		return Session{}, err
	}
	return s.clone(), nil
}

// freshID draws ids until one is not in sessions.
func freshID(sessions map[string]Session) (string, error) {
	for range maxIDAttempts {
		id, err := newID()
		if err != nil {
			return "", err
		}
		if _, taken := sessions[id]; !taken {
			return id, nil
		}
	}
	return "", fmt.Errorf("catalog: no free id after %d attempts", maxIDAttempts)
}

// Get returns the session with the given id, or an error matching ErrNotFound (or,
// with Redis, ErrUnavailable when the catalogue could never be read).
func (c *Catalog) Get(id string) (Session, error) {
	ct, err := c.view()
	if err != nil {
		return Session{}, err
	}
	s, ok := ct.sessions[id]
	if !ok {
		return Session{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return s.clone(), nil
}

// List returns all sessions ordered by start: ScheduledAt if set, else CreatedAt, ascending,
// ties broken by id. The slice is the caller's. With Redis, a catalogue that could
// never be read lists nothing (and says so in the log).
func (c *Catalog) List() []Session {
	ct, err := c.view()
	if err != nil {
		return []Session{}
	}
	out := make([]Session, 0, len(ct.sessions))
	for _, s := range ct.sessions {
		out = append(out, s.clone())
	}
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
	return c.mutate(func(ct *contents, _ time.Time) error {
		if _, ok := ct.sessions[id]; !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		delete(ct.sessions, id)
		for k, e := range ct.embeds { // a session's embed tokens go with it
			if e.Session == id {
				delete(ct.embeds, k)
			}
		}
		for k, code := range ct.codes { // and its device codes
			if code.Session == id {
				delete(ct.codes, k)
			}
		}
		return nil
	})
}

// Update changes the session with the given id: fn receives a copy to modify, and the result
// is validated and stored as with Create. If fn returns an error, nothing changes and Update
// returns that error unwrapped. ID and CreatedAt cannot change (ErrInvalid). An unknown id is
// ErrNotFound.
//
// fn runs on the caller's goroutine with the catalog locked: it must be quick and must not call
// the Catalog. With Redis it runs again on the fresh session when another node changed the
// catalogue meanwhile, so it must change nothing but its *Session.
func (c *Catalog) Update(id string, fn func(*Session) error) (Session, error) {
	var out Session
	err := c.mutate(func(ct *contents, _ time.Time) error {
		old, ok := ct.sessions[id]
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		s := old.clone()
		if err := fn(&s); err != nil {
			return err
		}
		if s.ID != old.ID {
			return invalid("id", "cannot be changed")
		}
		if !s.CreatedAt.Equal(old.CreatedAt) {
			return invalid("created_at", "cannot be changed")
		}
		s.CreatedAt = old.CreatedAt
		if err := s.normalize(); err != nil { // also copies ScheduledAt away from fn's pointer
			return err
		}
		ct.sessions[id] = s
		out = s
		return nil
	})
	if err != nil {
		return Session{}, err
	}
	return out.clone(), nil
}

// Dir returns the directory the catalog is stored in.
func (c *Catalog) Dir() string { return c.dir }
