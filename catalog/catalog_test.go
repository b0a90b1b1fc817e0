package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func mustCreate(t *testing.T, c *Catalog, n NewSession) Session {
	t.Helper()
	s, err := c.Create(n)
	if err != nil {
		t.Fatalf("Create(%+v): %v", n, err)
	}
	return s
}

func TestCreateGetListDelete(t *testing.T) {
	c := openTemp(t)
	if got := c.List(); len(got) != 0 {
		t.Fatalf("List of a new catalog = %v, want empty", got)
	}
	a := mustCreate(t, c, NewSession{Title: "A", Description: "first", PublicReplays: true})
	b := mustCreate(t, c, NewSession{Title: "B"})
	if a.ID == b.ID {
		t.Fatalf("two sessions share id %q", a.ID)
	}

	got, err := c.Get(a.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("Get = %+v, want %+v", got, a)
	}
	if n := len(c.List()); n != 2 {
		t.Fatalf("List has %d sessions, want 2", n)
	}

	if err := c.Delete(a.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := c.Delete(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if list := c.List(); len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("List after Delete = %+v, want only %s", list, b.ID)
	}
}

func TestNotFound(t *testing.T) {
	c := openTemp(t)
	for _, id := range []string{"", "abcdefghij", "../x"} {
		if _, err := c.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
		if err := c.Delete(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q): %v, want ErrNotFound", id, err)
		}
		_, err := c.Update(id, func(*Session) error { t.Error("fn called"); return nil })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Update(%q): %v, want ErrNotFound", id, err)
		}
	}
}

func TestReturnedSessionsAreCopies(t *testing.T) {
	c := openTemp(t)
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	s := mustCreate(t, c, NewSession{Title: "T", ScheduledAt: &at})
	*s.ScheduledAt = s.ScheduledAt.Add(time.Hour)
	at = at.Add(2 * time.Hour)
	s.Title = "changed"
	got, _ := c.Get(s.ID)
	if got.Title != "T" || !got.ScheduledAt.Equal(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("catalog changed through a returned value: %+v", got)
	}
	got.ScheduledAt = nil
	if again, _ := c.Get(s.ID); again.ScheduledAt == nil {
		t.Fatal("catalog changed through a value returned by Get")
	}
}

func TestListOrder(t *testing.T) {
	c := openTemp(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := base
	c.now = func() time.Time { tick = tick.Add(time.Hour); return tick } // created 01:00, 02:00, …
	at := func(h int) *time.Time { t := base.Add(time.Duration(h) * time.Hour); return &t }

	created1 := mustCreate(t, c, NewSession{Title: "created 01:00"})
	sched5 := mustCreate(t, c, NewSession{Title: "scheduled 05:00", ScheduledAt: at(5)})
	sched0 := mustCreate(t, c, NewSession{Title: "scheduled 00:30", ScheduledAt: at(0)})
	created4 := mustCreate(t, c, NewSession{Title: "created 04:00"})
	// Two sessions scheduled at the same time are ordered by id.
	tieA := mustCreate(t, c, NewSession{Title: "tie", ScheduledAt: at(3)})
	tieB := mustCreate(t, c, NewSession{Title: "tie", ScheduledAt: at(3)})
	if tieB.ID < tieA.ID {
		tieA, tieB = tieB, tieA
	}

	want := []string{sched0.ID, created1.ID, tieA.ID, tieB.ID, created4.ID, sched5.ID}
	var got []string
	for _, s := range c.List() {
		got = append(got, s.ID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List order = %v, want %v", got, want)
	}
}

func TestPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	c, err := Open(dir)
	if err != nil {
		t.Fatalf("Open of a missing directory: %v", err)
	}
	at := time.Date(2026, 9, 5, 7, 30, 0, 123456789, time.FixedZone("ICT", 7*3600))
	a := mustCreate(t, c, NewSession{Title: "Hóa học hữu cơ", Description: "Chương 1\nChương 2",
		ScheduledAt: &at, PublicReplays: true})
	b := mustCreate(t, c, NewSession{Title: "Vật lý"})
	gone := mustCreate(t, c, NewSession{Title: "deleted"})
	if err := c.Delete(gone.ID); err != nil {
		t.Fatal(err)
	}
	b, err = c.Update(b.ID, func(s *Session) error { s.PublicReplays = true; return nil })
	if err != nil {
		t.Fatal(err)
	}

	c2, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if got, want := c2.List(), c.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen List = %+v\nwant %+v", got, want)
	}
	if got, _ := c2.Get(a.ID); !reflect.DeepEqual(got, a) {
		t.Fatalf("after reopen Get = %+v, want %+v", got, a)
	}
	if _, err := c2.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted session came back: %v", err)
	}
	if got, _ := c2.Get(b.ID); !got.PublicReplays {
		t.Fatal("update was not persisted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Fatalf("directory holds %v, want only %s", entries, FileName)
	}
}

func TestOpenCorruptFile(t *testing.T) {
	valid := `{"id":"abcdefghij","title":"ok","public_replays":false,"created_at":"2026-01-01T00:00:00Z"}`
	tests := []struct {
		name    string
		content string
	}{
		{"garbage", "not json at all"},
		{"empty file", ""},
		{"truncated", `{"version":1,"sessions":[` + valid},
		{"trailing data", `{"version":1,"sessions":[]} {}`},
		{"no version", `{"sessions":[` + valid + `]}`},
		{"newer version", `{"version":2,"sessions":[]}`},
		{"wrong type", `{"version":1,"sessions":{"a":1}}`},
		{"bad id", `{"version":1,"sessions":[{"id":"ABC","title":"x","created_at":"2026-01-01T00:00:00Z"}]}`},
		{"duplicate id", `{"version":1,"sessions":[` + valid + `,` + valid + `]}`},
		{"missing title", `{"version":1,"sessions":[{"id":"abcdefghij","created_at":"2026-01-01T00:00:00Z"}]}`},
		{"missing created_at", `{"version":1,"sessions":[{"id":"abcdefghij","title":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir)
			if err == nil {
				t.Fatal("Open succeeded on a corrupt file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			if data, _ := os.ReadFile(path); string(data) != tt.content {
				t.Fatal("Open modified the corrupt file")
			}
		})
	}
}

func TestOpenValidFile(t *testing.T) {
	dir := t.TempDir()
	content := `{"version":1,"sessions":[{"id":"abcdefghij","title":"ok","public_replays":true,` +
		`"created_at":"2026-01-01T07:00:00+07:00","future_field":1}]}`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Get("abcdefghij")
	if err != nil {
		t.Fatal(err)
	}
	want := Session{ID: "abcdefghij", Title: "ok", PublicReplays: true,
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Get = %+v, want %+v", s, want)
	}
}

func TestOpenRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "."+FileName+".12345.tmp")
	other := filepath.Join(dir, "notes.txt")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
}

// breakSaves makes every later save fail: the rename target becomes a non-empty directory.
func breakSaves(t *testing.T, c *Catalog) {
	t.Helper()
	path := filepath.Join(c.Dir(), FileName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "block"), 0o750); err != nil {
		t.Fatal(err)
	}
}

func TestFailedSaveLeavesCatalogUnchanged(t *testing.T) {
	c := openTemp(t)
	keep := mustCreate(t, c, NewSession{Title: "keep"})
	before := c.List()
	breakSaves(t, c)

	if _, err := c.Create(NewSession{Title: "new"}); err == nil {
		t.Error("Create succeeded although the file cannot be written")
	}
	if err := c.Delete(keep.ID); err == nil {
		t.Error("Delete succeeded although the file cannot be written")
	}
	_, err := c.Update(keep.ID, func(s *Session) error { s.Title = "renamed"; return nil })
	if err == nil {
		t.Error("Update succeeded although the file cannot be written")
	}
	if after := c.List(); !reflect.DeepEqual(after, before) {
		t.Fatalf("catalog changed by failed writes: %+v, want %+v", after, before)
	}
	entries, _ := os.ReadDir(c.Dir())
	if len(entries) != 1 {
		t.Fatalf("failed saves left files behind: %v", entries)
	}
}

func TestUpdate(t *testing.T) {
	c := openTemp(t)
	s := mustCreate(t, c, NewSession{Title: "Original"})

	t.Run("changes fields", func(t *testing.T) {
		at := time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC)
		got, err := c.Update(s.ID, func(s *Session) error {
			s.PublicReplays = true
			s.Title = "  Renamed  "
			s.ScheduledAt = &at
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !got.PublicReplays || got.Title != "Renamed" || !got.ScheduledAt.Equal(at) {
			t.Fatalf("Update returned %+v", got)
		}
		at = at.Add(time.Hour) // must not reach the catalog
		if stored, _ := c.Get(s.ID); !reflect.DeepEqual(stored, got) {
			t.Fatalf("Get = %+v, want %+v", stored, got)
		}
	})

	boom := errors.New("boom")
	rejected := []struct {
		name string
		fn   func(*Session) error
		want error
	}{
		{"fn error passes through", func(s *Session) error { s.Title = "x"; return boom }, boom},
		{"invalid title", func(s *Session) error { s.Title = ""; return nil }, ErrInvalid},
		{"id change", func(s *Session) error { s.ID = "zzzzzzzzzz"; return nil }, ErrInvalid},
		{"created_at change", func(s *Session) error { s.CreatedAt = s.CreatedAt.Add(1); return nil }, ErrInvalid},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := c.Get(s.ID)
			if _, err := c.Update(s.ID, tt.fn); !errors.Is(err, tt.want) {
				t.Fatalf("Update error = %v, want %v", err, tt.want)
			}
			if after, _ := c.Get(s.ID); !reflect.DeepEqual(after, before) {
				t.Fatalf("rejected Update changed the session: %+v, want %+v", after, before)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	ids := make(chan string, workers*each)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s, err := c.Create(NewSession{Title: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					errs <- err
					continue
				}
				ids <- s.ID
				_ = c.List()
				if _, err := c.Get(s.ID); err != nil {
					errs <- err
				}
				if _, err := c.Update(s.ID, func(s *Session) error { s.PublicReplays = true; return nil }); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] || !ValidID(id) {
			t.Fatalf("id %q repeated or malformed", id)
		}
		seen[id] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d ids, want %d", len(seen), workers*each)
	}
	c2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.List(); len(got) != workers*each {
		t.Fatalf("after reopen %d sessions, want %d", len(got), workers*each)
	}
	for _, s := range c2.List() {
		if !s.PublicReplays {
			t.Fatalf("update of %s lost", s.ID)
		}
	}
}
