package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// ErrInProgress reports an operation that needs a finished recording.
var ErrInProgress = errors.New("recording in progress")

// validID matches the shape of recording ids (see newRecordingID). Anything else
// is unknown without a lookup.
var validID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,200}$`)

// validFile matches the files of a rendition a replay may fetch.
var validFile = regexp.MustCompile(`^(index\.m3u8|init(-[1-9][0-9]{0,5})?\.mp4|seg-[0-9]{6}\.m4s)$`)

// Get returns a recording's description (without segment lists).
func (r *Recorder) Get(id string) (Meta, error) {
	if !validID.MatchString(id) {
		return Meta{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	m, ok := r.index.get(id)
	if !ok || m.Status == StatusRecording {
		if up := r.liveUploader(id); up != nil {
			return up.summary(), nil
		}
	}
	if !ok {
		return Meta{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return m, nil
}

// List returns one page of recordings, newest first. It reads memory only: the
// index, and for recordings in progress what their uploaders stored so far (the
// index is saved when a recording starts and ends, not at every segment), so
// the list and [Recorder.Get] agree.
func (r *Recorder) List(q Query) (Page, error) {
	page, err := r.index.list(q)
	if err != nil {
		return page, err
	}
	for i, m := range page.Recordings { // a fresh slice: ours to change
		if m.Status != StatusRecording {
			continue
		}
		if up := r.liveUploader(m.ID); up != nil {
			page.Recordings[i] = up.summary()
		}
	}
	return page, nil
}

// Key returns the store key of file (e.g. "index.m3u8", "seg-000001.m4s",
// "screen/init.mp4") of a recording, after checking that the recording and the
// rendition exist and that the name is one the recorder writes: nothing outside
// the recording's prefix can be named.
func (r *Recorder) Key(id, file string) (string, error) {
	m, err := r.Get(id)
	if err != nil {
		return "", err
	}
	dir, name := "", file
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		dir, name = file[:i+1], file[i+1:]
	}
	if !validFile.MatchString(name) || !hasRenditionDir(m, dir) {
		return "", fmt.Errorf("%w: %q in recording %q", ErrNotFound, file, id)
	}
	return m.Prefix + dir + name, nil
}

func hasRenditionDir(m Meta, dir string) bool {
	for _, rd := range m.Renditions {
		if rd.Dir == dir {
			return true
		}
	}
	return dir == "" // the main playlist exists as soon as the recording does
}

// Delete removes a finished recording: its index entry and every object under
// its prefix. A recording in progress cannot be deleted (ErrInProgress).
func (r *Recorder) Delete(ctx context.Context, id string) error {
	m, err := r.Get(id)
	if err != nil {
		return err
	}
	if r.liveUploader(id) != nil {
		return fmt.Errorf("%w: %q", ErrInProgress, id)
	}
	r.index.remove(id)
	r.forgetDownloads(id)
	if err := r.cfg.Store.DeletePrefix(ctx, m.Prefix); err != nil {
		return fmt.Errorf("recorder: delete %q: %w", id, err)
	}
	r.log.Info("recording deleted", "recording", id)
	return nil
}

func (r *Recorder) liveUploader(id string) *uploader {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploaders[id]
}

// downloadCache keeps the downloads of finished recordings: players seek with
// many Range requests, and each would otherwise read meta.json and init.mp4.
type downloadCache struct {
	mu sync.Mutex
	m  map[string]*Download
}

const maxCachedDownloads = 64

// Download describes the MP4 file of a whole rendition ("main" or e.g.
// "screen") of a recording: finished, or in progress (what is stored so far).
func (r *Recorder) Download(ctx context.Context, id, rendition string) (*Download, error) {
	if !validID.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	cacheKey := id + "/" + rendition
	if d := r.downloads.get(cacheKey); d != nil {
		return d, nil
	}
	m, err := r.storedMeta(ctx, id, rendition)
	if err != nil {
		return nil, err
	}
	info, ok := m.rendition(rendition)
	if !ok {
		return nil, fmt.Errorf("%w: rendition %q of %q", ErrNotFound, rendition, id)
	}
	init, err := r.readObject(ctx, m.Prefix+info.Dir+info.downloadInit())
	if err != nil {
		return nil, fmt.Errorf("recorder: download %q: %w", id, err)
	}
	d, err := buildDownload(m.Prefix, info, init)
	if err != nil {
		return nil, fmt.Errorf("recorder: download %q: %w", id, err)
	}
	d.Complete = m.Status == StatusComplete
	d.Name = id + ".mp4"
	if rendition != MainRendition {
		d.Name = id + "-" + rendition + ".mp4"
	}
	d.ETag = fmt.Sprintf(`"%s-%d-%d"`, rendition, len(info.SegmentList), d.Size)
	if d.Complete {
		r.downloads.put(cacheKey, d)
	}
	return d, nil
}

// storedMeta returns a recording's description with its segment lists: from its
// uploader while it is in progress, else from its meta.json.
func (r *Recorder) storedMeta(ctx context.Context, id, rendition string) (Meta, error) {
	if up := r.liveUploader(id); up != nil {
		m := up.snapshot()
		m.Status = StatusRecording // until the index has the final word
		return m, nil
	}
	sum, ok := r.index.get(id)
	if !ok {
		return Meta{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if _, ok := sum.rendition(rendition); !ok {
		return Meta{}, fmt.Errorf("%w: rendition %q of %q", ErrNotFound, rendition, id)
	}
	m, err := readMeta(ctx, r.cfg.Store, sum.Prefix+metaFile)
	if err != nil {
		return Meta{}, fmt.Errorf("recorder: download %q: %w", id, err)
	}
	return m, nil
}

func (c *downloadCache) get(key string) *Download {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *downloadCache) put(key string, d *Download) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedDownloads {
		clear(c.m)
	}
	c.m[key] = d
}

func (r *Recorder) forgetDownloads(id string) {
	r.downloads.mu.Lock()
	defer r.downloads.mu.Unlock()
	for k := range r.downloads.m {
		if strings.HasPrefix(k, id+"/") {
			delete(r.downloads.m, k)
		}
	}
}

func (r *Recorder) readObject(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := r.cfg.Store.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 16<<20))
}
