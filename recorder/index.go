package recorder

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"lectern/storage"
)

// indexKey is the store object holding the recording index. The store is the
// source of truth: a server that starts on an empty disk loads it, and when it is
// missing or unreadable the index is rebuilt from every recording's meta.json.
const indexKey = "recordings/index.json"

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Query selects recordings for List.
type Query struct {
	// Session keeps the recordings of one session; "" keeps all.
	Session string
	// From and To keep recordings that started in [From, To); zero means unbounded.
	From, To time.Time
	// Allow, when set, keeps only recordings of sessions it returns true for (the
	// web layer's access rule).
	Allow func(session string) bool
	// Lectures keeps the lectures: programme recordings, and the recordings of
	// publications (RoleSource) that no programme recording of their session
	// overlaps in time (see [Recorder.Related] for the others).
	Lectures bool
	// Limit is the page size: DefaultPageSize when 0, at most MaxPageSize.
	Limit int
	// Cursor continues a previous List: its Page.Next.
	Cursor string
}

// Page is one page of recordings, newest first.
type Page struct {
	Recordings []Meta `json:"recordings"`
	// Next is the cursor of the next page; "" on the last page.
	Next string `json:"next,omitempty"`
}

// ErrBadCursor reports a Query.Cursor that no List returned.
var ErrBadCursor = errors.New("invalid cursor")

// index is the in-memory recording index, persisted to indexKey by its run loop
// whenever it changes (coalesced). Safe for concurrent use.
type index struct {
	r *Recorder

	mu     sync.RWMutex
	byID   map[string]Meta
	sorted []Meta // newest first; nil when stale
	dirty  chan struct{}
}

type indexFile struct {
	Version    int    `json:"version"`
	Recordings []Meta `json:"recordings"`
}

func newIndex(r *Recorder) *index {
	return &index{r: r, byID: map[string]Meta{}, dirty: make(chan struct{}, 1)}
}

// load reads the index from the store, rebuilding it from meta.json objects when
// it is missing or unreadable.
func (ix *index) load(ctx context.Context) error {
	rc, _, err := ix.r.cfg.Store.Open(ctx, indexKey, 0, -1)
	if err == nil {
		var f indexFile
		err = json.NewDecoder(rc).Decode(&f)
		rc.Close()
		if err == nil {
			ix.mu.Lock()
			for _, m := range f.Recordings {
				ix.byID[m.ID] = m
			}
			ix.sorted = nil
			ix.mu.Unlock()
			return nil
		}
		ix.r.log.Warn("recording index unreadable; rebuilding it from meta.json objects", "err", err)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("recorder: load index: %w", err)
	}
	return ix.rebuild(ctx)
}

// rebuild lists the store and reads every recording's meta.json. It is slow with
// many recordings and only runs when the index object is lost.
func (ix *index) rebuild(ctx context.Context) error {
	var keys []string
	err := ix.r.cfg.Store.List(ctx, "recordings/", func(o storage.ObjectInfo) error {
		if strings.HasSuffix(o.Key, "/"+metaFile) {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recorder: rebuild index: %w", err)
	}
	for _, k := range keys {
		m, err := readMeta(ctx, ix.r.cfg.Store, k)
		if err != nil {
			ix.r.log.Warn("rebuild index: skipping unreadable meta.json", "key", k, "err", err)
			continue
		}
		ix.putQuiet(m.summary())
	}
	if len(keys) > 0 {
		ix.r.log.Info("recording index rebuilt", "recordings", len(keys))
		ix.markDirty()
	}
	return nil
}

func readMeta(ctx context.Context, st Store, key string) (Meta, error) {
	rc, _, err := st.Open(ctx, key, 0, -1)
	if err != nil {
		return Meta{}, err
	}
	defer rc.Close()
	var m Meta
	if err := json.NewDecoder(io.LimitReader(rc, 64<<20)).Decode(&m); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

func (ix *index) putQuiet(m Meta) {
	ix.mu.Lock()
	ix.byID[m.ID] = m
	ix.sorted = nil
	ix.mu.Unlock()
}

// put adds or replaces a recording and schedules a save.
func (ix *index) put(m Meta) {
	ix.putQuiet(m)
	ix.markDirty()
}

// remove forgets a recording and schedules a save.
func (ix *index) remove(id string) {
	ix.mu.Lock()
	delete(ix.byID, id)
	ix.sorted = nil
	ix.mu.Unlock()
	ix.markDirty()
}

func (ix *index) markDirty() {
	select {
	case ix.dirty <- struct{}{}:
	default:
	}
}

func (ix *index) get(id string) (Meta, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m, ok := ix.byID[id]
	return m, ok
}

// snapshot returns the recordings newest first. The slice is shared: do not
// modify it.
func (ix *index) snapshot() []Meta {
	ix.mu.RLock()
	s := ix.sorted
	ix.mu.RUnlock()
	if s != nil {
		return s
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.sorted == nil {
		s := make([]Meta, 0, len(ix.byID))
		for _, m := range ix.byID {
			s = append(s, m)
		}
		slices.SortFunc(s, newestFirst)
		ix.sorted = s
	}
	return ix.sorted
}

// newestFirst orders by start time descending, then id descending.
func newestFirst(a, b Meta) int {
	if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// list returns one page of the recordings q selects.
func (ix *index) list(q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	all := ix.snapshot()
	start := 0
	if q.Cursor != "" {
		after, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		start, _ = slices.BinarySearchFunc(all, after, newestFirst)
		if start < len(all) && all[start].ID == after.ID {
			start++
		}
	}
	page := Page{Recordings: []Meta{}}
	lecture := func(Meta) bool { return true }
	if q.Lectures {
		lecture = lectureFilter(all)
	}
	for i := start; i < len(all); i++ {
		m := all[i]
		if !q.matches(m) || !lecture(m) {
			continue
		}
		if len(page.Recordings) == limit {
			page.Next = encodeCursor(page.Recordings[limit-1])
			break
		}
		page.Recordings = append(page.Recordings, m)
	}
	return page, nil
}

func (q Query) matches(m Meta) bool {
	switch {
	case q.Session != "" && m.Session != q.Session,
		!q.From.IsZero() && m.StartedAt.Before(q.From),
		!q.To.IsZero() && !m.StartedAt.Before(q.To),
		q.Allow != nil && !q.Allow(m.Session):
		return false
	}
	return true
}

func encodeCursor(m Meta) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(m.StartedAt.UnixNano(), 10) + "." + m.ID))
}

func decodeCursor(c string) (Meta, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	ns, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return Meta{}, fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	return Meta{ID: id, StartedAt: time.Unix(0, n)}, nil
}

// run saves the index whenever it changed, until ctx is done; then it saves once
// more if needed (bounded by flushCtx).
func (ix *index) run(ctx context.Context, flushCtx func() context.Context) {
	for {
		select {
		case <-ix.dirty:
			ix.save(ctx)
		case <-ctx.Done():
			select {
			case <-ix.dirty:
				fctx := flushCtx()
				ix.save(fctx)
			default:
			}
			return
		}
	}
}

// save writes the index, retrying with backoff until it is stored or ctx is done
// (when a newer change arrives meanwhile, the next save carries it).
func (ix *index) save(ctx context.Context) {
	all := ix.snapshot()
	data, err := json.Marshal(indexFile{Version: 1, Recordings: all})
	if err != nil {
		ix.r.log.Error("marshal recording index", "err", err)
		return
	}
	backoff := ix.r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ix.r.cfg.UploadTimeout)
		err := ix.r.cfg.Store.Put(actx, indexKey, bytes.NewReader(data), int64(len(data)), "")
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		ix.r.metrics.uploadErrors.Add(1)
		if attempt == 1 || attempt%10 == 0 {
			ix.r.log.Warn("store recording index; will retry", "attempt", attempt, "err", err, "retry_in", backoff)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, ix.r.cfg.RetryMax)
	}
}
