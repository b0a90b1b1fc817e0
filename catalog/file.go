package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FileName is the name of the catalog file inside the directory given to Open.
const FileName = "sessions.json"

// fileVersion is the format version written to the file. Open refuses other versions rather
// than guess, so an older binary never rewrites (and truncates) a newer file.
const fileVersion = 1

// tempPattern names the temporary files save writes before renaming them over FileName.
const tempPattern = "." + FileName + ".*.tmp"

// fileFormat is the on-disk layout of FileName.
type fileFormat struct {
	Version  int       `json:"version"`
	Sessions []Session `json:"sessions"`
	// Embeds are the embed tokens not revoked (added later in version 1: an older
	// file has none).
	Embeds []Embed `json:"embeds,omitempty"`
	// Codes are the device access codes not revoked, by hash only (added later in
	// version 1: an older file has none).
	Codes []Code `json:"codes,omitempty"`
}

// contents is what a catalogue holds, as maps. A *contents a Catalog has published
// (Catalog.cur) is never changed again: changes are made to a clone.
type contents struct {
	sessions map[string]Session
	embeds   map[string]Embed // by id (the token's jti)
	codes    map[string]Code  // device codes, by hash
	version  int64            // Redis: the catalogue's change counter when read; 0 for the file
}

// clone returns a copy whose maps can be changed. Entries are replaced whole, never
// changed in place, so the maps' values are shared.
func (ct *contents) clone() *contents {
	return &contents{sessions: maps.Clone(ct.sessions), embeds: maps.Clone(ct.embeds), codes: maps.Clone(ct.codes),
		version: ct.version}
}

// load reads the sessions stored in path. A missing file is an empty catalog; anything else
// that cannot be read in full is an error naming the file, so that no session is lost silently.
func load(path string) (contents, error) {
	out := contents{sessions: map[string]Session{}, embeds: map[string]Embed{}, codes: map[string]Code{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return contents{}, fmt.Errorf("catalog: reading %s: %w", path, err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return contents{}, fmt.Errorf("catalog: %s is corrupt: %w", path, err)
	}
	if f.Version != fileVersion {
		return contents{}, fmt.Errorf("catalog: %s has format version %d, this build reads version %d",
			path, f.Version, fileVersion)
	}
	for i, s := range f.Sessions {
		if err := checkStored(&s, out.sessions); err != nil {
			return contents{}, fmt.Errorf("catalog: %s is corrupt: session #%d (%q): %w", path, i, s.ID, err)
		}
		out.sessions[s.ID] = s
	}
	for i, e := range f.Embeds {
		if err := e.check(); err != nil {
			return contents{}, fmt.Errorf("catalog: %s is corrupt: embed #%d (%q): %w", path, i, e.ID, err)
		}
		out.embeds[e.ID] = e
	}
	for i, c := range f.Codes {
		if err := c.check(); err != nil {
			return contents{}, fmt.Errorf("catalog: %s is corrupt: device code #%d (%q): %w", path, i, c.ID, err)
		}
		if _, dup := out.codes[c.Hash]; dup {
			return contents{}, fmt.Errorf("catalog: %s is corrupt: device code #%d (%q): its hash appears twice", path, i, c.ID)
		}
		out.codes[c.Hash] = c
	}
	return out, nil
}

// checkStored validates one session read from the file: the same rules as Create, plus a
// well-formed, unique id and a creation time.
func checkStored(s *Session, seen map[string]Session) error {
	if !ValidID(s.ID) {
		return invalid("id", "is not %d characters from [a-z0-9]", IDLength)
	}
	if _, dup := seen[s.ID]; dup {
		return invalid("id", "appears twice")
	}
	if s.CreatedAt.IsZero() {
		return invalid("created_at", "is missing")
	}
	s.CreatedAt = s.CreatedAt.UTC()
	return s.normalize()
}

// saveFile writes ct to dir/FileName atomically: a temporary file in the same
// directory is written and fsynced, renamed over the old file, and the directory is fsynced,
// so that after a crash the file holds either the old or the new catalog, never a mix.
// The Catalog's mu must be held.
func saveFile(dir string, ct *contents) error {
	f := fileFormat{Version: fileVersion, Sessions: make([]Session, 0, len(ct.sessions))}
	for _, s := range ct.sessions {
		f.Sessions = append(f.Sessions, s)
	}
	slices.SortFunc(f.Sessions, func(a, b Session) int { return strings.Compare(a.ID, b.ID) })
	for _, e := range ct.embeds {
		f.Embeds = append(f.Embeds, e)
	}
	slices.SortFunc(f.Embeds, func(a, b Embed) int { return strings.Compare(a.ID, b.ID) })
	for _, code := range ct.codes {
		f.Codes = append(f.Codes, code)
	}
	slices.SortFunc(f.Codes, func(a, b Code) int { return strings.Compare(a.ID, b.ID) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("catalog: encoding sessions: %w", err)
	}
	data = append(data, '\n')
	if err := writeAtomic(dir, FileName, data); err != nil {
		return fmt.Errorf("catalog: saving %s: %w", filepath.Join(dir, FileName), err)
	}
	return nil
}

// writeAtomic replaces dir/name with data: temp file, fsync, rename, fsync of the directory.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that a rename inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// removeTemps deletes temporary files left in dir by a save that crashed before its rename.
// They never hold data that is not also in FileName or was not yet acknowledged to a caller.
func removeTemps(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, tempPattern))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
