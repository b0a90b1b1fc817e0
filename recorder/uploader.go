package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"lectern/storage"
)

// upKind says what an upload item stores.
type upKind uint8

const (
	upMeta    upKind = iota + 1 // meta.json of a live recording
	upInit                      // a rendition's init segment
	upSegment                   // a media segment, then the rendition's playlist
	upFinal                     // VOD playlists, meta.json, index; then the spool goes
	upLost                      // a segment lost before the spool: its place in the playlist
	upMark                      // a timeline entry: into meta, then meta.json
)

// upItem is one entry of a recording's upload queue.
type upItem struct {
	kind upKind
	rend *RenditionInfo // upInit: the rendition's header
	init int            // upInit: which init segment (0: init.mp4, k: init-k.mp4)
	name string         // upSegment: rendition name
	seg  segmentRecord
	end  time.Time     // upFinal: wall-clock end
	gaps []gap         // upFinal
	mark TimelineEntry // upMark
}

// uploader stores one recording's spooled objects in order, retrying each with
// exponential backoff until it is stored (or the recorder is stopped hard), and
// then deletes its spool copy. It owns the recording's stored state (meta), from
// which it renders the playlists and meta.json. Its run loop is the only reader
// of the queue.
type uploader struct {
	r    *Recorder
	log  *slog.Logger
	dir  string // the recording's spool directory
	jour *journal
	// meta is what is stored. The run goroutine changes it under metaMu; other
	// goroutines read it through snapshot.
	meta   Meta
	metaMu sync.Mutex

	mu    sync.Mutex
	queue []upItem
	wake  chan struct{}

	buf []byte // spool file being uploaded; reused by the run goroutine
}

func newUploader(r *Recorder, dir string, j *journal, meta Meta) *uploader {
	return &uploader{r: r, log: r.log.With("recording", meta.ID), dir: dir, jour: j, meta: meta, wake: make(chan struct{}, 1)}
}

// enqueue adds an item; it never blocks.
func (u *uploader) enqueue(it upItem) {
	u.mu.Lock()
	u.queue = append(u.queue, it)
	u.mu.Unlock()
	u.r.metrics.pending.Add(1)
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run processes the queue until the final item is done, or ctx is done (a hard
// stop: what is left stays in the spool for the next start).
func (u *uploader) run(ctx context.Context) {
	for {
		u.mu.Lock()
		var it upItem
		ok := len(u.queue) > 0
		if ok {
			it = u.queue[0]
			u.queue = u.queue[1:]
		}
		u.mu.Unlock()
		if !ok {
			select {
			case <-u.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := u.process(ctx, it)
		u.r.metrics.pending.Add(-1)
		if err != nil { // only a hard stop ends processing
			return
		}
		if it.kind == upFinal {
			return
		}
	}
}

// process stores one item. It returns an error only when ctx is done.
func (u *uploader) process(ctx context.Context, it upItem) error {
	switch it.kind {
	case upMeta:
		return u.putMeta(ctx)
	case upInit:
		if err := u.storeFile(ctx, it.rend.Dir+initName(it.init)); err != nil {
			return err
		}
		u.metaMu.Lock()
		added := u.meta.addInit(it.rend, it.init)
		if added {
			u.updateSummary()
		}
		u.metaMu.Unlock()
		if !added {
			return nil
		}
		// meta.json now describes the rendition (and its init segments): enough to
		// finalise the recording from the store alone if this server and its
		// spool are lost.
		return u.putMeta(ctx)
	case upSegment:
		return u.storeSegment(ctx, it)
	case upLost:
		u.metaMu.Lock()
		if rend, ok := u.meta.rendition(it.name); ok {
			rend.SegmentList = append(rend.SegmentList, it.seg)
			u.updateSummary()
		}
		u.metaMu.Unlock()
		return nil // the playlist shows the gap with the next stored segment, or at the end
	case upMark:
		u.metaMu.Lock()
		u.meta.Timeline = addMark(u.meta.Timeline, it.mark)
		u.metaMu.Unlock()
		return u.putMeta(ctx) // live meta.json has it: a lost server's recording keeps it
	case upFinal:
		return u.finalise(ctx, it)
	}
	return nil
}

func (u *uploader) storeSegment(ctx context.Context, it upItem) error {
	rend, ok := u.meta.rendition(it.name)
	if !ok {
		u.log.Error("segment of a rendition without init; dropped", "rendition", it.name, "segment", it.seg.N)
		return nil
	}
	if err := u.storeFile(ctx, rend.Dir+segmentFile(it.seg.N)); err != nil {
		if errors.Is(err, errSpoolFileGone) { // lost after all: it keeps its place
			it.seg.Lost, it.seg.Size, it.seg.Discontinuity = true, 0, false
			u.metaMu.Lock()
			rend.SegmentList = append(rend.SegmentList, it.seg)
			u.updateSummary()
			u.metaMu.Unlock()
			return nil
		}
		return err
	}
	u.metaMu.Lock()
	rend.SegmentList = append(rend.SegmentList, it.seg)
	u.updateSummary()
	u.metaMu.Unlock()
	u.r.metrics.segmentsStored.Add(1)
	return u.put(ctx, u.meta.Prefix+rend.Dir+playlistFile, playlist(u.meta.StartedAt, rend, false), "")
}

// errSpoolFileGone reports a spool file that disappeared (deleted by hand): its
// item is skipped rather than retried forever.
var errSpoolFileGone = errors.New("spool file missing")

// storeFile uploads the spool file rel (relative to the recording), journals it as
// stored and deletes it.
func (u *uploader) storeFile(ctx context.Context, rel string) error {
	path := filepath.Join(u.dir, filepath.FromSlash(rel))
	data, err := u.readSpool(path)
	if err != nil {
		u.log.Error("spool file unreadable; skipped", "file", rel, "err", err)
		return errSpoolFileGone
	}
	if err := u.put(ctx, u.meta.Prefix+rel, data, ""); err != nil {
		return err
	}
	if err := u.jour.append(journalEntry{Op: opStored, File: rel}); err != nil {
		// Without the journal line a crash would upload it again: harmless.
		u.log.Warn("journal", "err", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		u.log.Warn("remove spool file", "file", rel, "err", err)
		return nil
	}
	u.r.spool.release(int64(len(data)))
	return nil
}

// readSpool reads a spool file into the uploader's reused buffer: the data is
// valid until the next call.
func (u *uploader) readSpool(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(cap(u.buf)) < st.Size() {
		u.buf = make([]byte, st.Size(), st.Size()+st.Size()/4) // room for the next, slightly larger segments
	}
	u.buf = u.buf[:st.Size()]
	if _, err := io.ReadFull(f, u.buf); err != nil {
		return nil, err
	}
	return u.buf, nil
}

// put stores data under key, retrying with exponential backoff until it succeeds
// or ctx is done.
func (u *uploader) put(ctx context.Context, key string, data []byte, contentType string) error {
	backoff := u.r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, u.r.cfg.UploadTimeout)
		err := u.r.cfg.Store.Put(actx, key, bytes.NewReader(data), int64(len(data)), contentType)
		cancel()
		if err == nil {
			u.r.metrics.uploadLatency.Observe(time.Since(start).Seconds())
			if attempt > 1 {
				u.log.Info("stored after retries", "key", key, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		u.r.metrics.uploadErrors.Add(1)
		if errors.Is(err, storage.ErrInvalidKey) {
			u.log.Error("object key refused by the store; not retried", "key", key, "err", err)
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			u.log.Warn("store unreachable; will retry", "key", key, "attempt", attempt, "retry_in", backoff, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, u.r.cfg.RetryMax)
	}
}

func (u *uploader) putMeta(ctx context.Context) error {
	data, err := json.MarshalIndent(u.meta, "", "  ")
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return u.put(ctx, u.meta.Prefix+metaFile, data, "")
}

// updateSummary recomputes the totals of meta from the stored segments.
func (u *uploader) updateSummary() {
	m := &u.meta
	m.Bytes = 0
	m.LostMedia = nil
	for i := range m.Renditions {
		r := &m.Renditions[i]
		r.Segments, r.LostMedia = 0, nil
		for _, s := range r.SegmentList {
			if !s.Lost {
				r.Segments++
				continue
			}
			if r.LostMedia == nil {
				r.LostMedia = &LostMedia{}
			}
			r.LostMedia.Segments++
			r.LostMedia.Seconds += float64(s.Duration) / float64(r.Timescale)
		}
		r.Duration = 0
		if n := len(r.SegmentList); n > 0 {
			last := r.SegmentList[n-1]
			r.Duration = float64(last.Start+last.Duration)/float64(r.Timescale) - r.Offset
		}
		for _, s := range r.SegmentList {
			m.Bytes += s.Size
		}
		if r.Name == MainRendition {
			m.Segments, m.Duration, m.LostMedia = r.Segments, r.Duration, r.LostMedia
			m.Codecs = make([]string, 0, len(r.Tracks)) // never reuse: the index shares it
			for _, t := range r.Tracks {
				m.Codecs = append(m.Codecs, t.Codec)
			}
		}
	}
}

// finalise writes the VOD playlists and meta.json, updates the index and removes
// the spool directory.
func (u *uploader) finalise(ctx context.Context, it upItem) error {
	m := &u.meta
	u.metaMu.Lock()
	m.Status = StatusComplete
	m.Gaps = it.gaps
	end := it.end
	if end.IsZero() {
		end = m.StartedAt.Add(time.Duration(m.Duration * float64(time.Second)))
	}
	m.EndedAt = &end
	u.updateSummary()
	u.metaMu.Unlock()
	if m.Bytes == 0 {
		return u.discard(ctx)
	}
	for i := range m.Renditions {
		r := &m.Renditions[i]
		if err := u.put(ctx, m.Prefix+r.Dir+playlistFile, playlist(m.StartedAt, r, true), ""); err != nil {
			return err
		}
	}
	if err := u.putMeta(ctx); err != nil {
		return err
	}
	u.r.index.put(m.summary())
	u.removeSpool()
	if m.LostMedia != nil {
		u.log.Warn("recording finalised with lost media", "duration", m.Duration, "segments", m.Segments,
			"lost_segments", m.LostMedia.Segments, "lost_seconds", m.LostMedia.Seconds, "interrupted", m.Interrupted)
	} else {
		u.log.Info("recording finalised", "duration", m.Duration, "segments", m.Segments, "interrupted", m.Interrupted)
	}
	return nil
}

// discard removes a recording that holds no media (the publication never sent a
// decodable frame).
func (u *uploader) discard(ctx context.Context) error {
	u.r.index.remove(u.meta.ID)
	if err := u.r.cfg.Store.DeletePrefix(ctx, u.meta.Prefix); err != nil {
		u.log.Warn("delete empty recording", "err", err)
	}
	u.removeSpool()
	u.log.Info("recording discarded: no media")
	return nil
}

// snapshot returns a deep copy of what is stored so far.
func (u *uploader) snapshot() Meta {
	u.metaMu.Lock()
	defer u.metaMu.Unlock()
	m := u.meta
	m.Renditions = make([]RenditionInfo, len(u.meta.Renditions))
	for i, r := range u.meta.Renditions {
		r.SegmentList = append([]segmentRecord(nil), r.SegmentList...)
		r.Tracks = append([]TrackInfo(nil), r.Tracks...)
		r.Inits = append([]InitInfo(nil), r.Inits...)
		m.Renditions[i] = r
	}
	m.Codecs = append([]string(nil), u.meta.Codecs...)
	m.Gaps = append([]gap(nil), u.meta.Gaps...)
	m.Timeline = append([]TimelineEntry(nil), u.meta.Timeline...)
	return m
}

// summary returns what is stored so far without the segment lists, as the
// index keeps it. Its status stays "recording" until the index has the final
// word (finalise marks meta complete before the VOD playlists are stored).
func (u *uploader) summary() Meta {
	u.metaMu.Lock()
	m := u.meta.summary() // shares Tracks, Codecs and Gaps: never changed in place
	u.metaMu.Unlock()
	m.Status, m.EndedAt = StatusRecording, nil
	return m
}

// removeSpool deletes the recording's spool directory, if it has one.
func (u *uploader) removeSpool() {
	if u.jour == nil {
		return
	}
	u.jour.close()
	if err := os.RemoveAll(u.dir); err != nil {
		u.log.Warn("remove spool directory", "err", err)
	}
}
