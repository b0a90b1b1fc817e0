package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"lectern/recorder"
	"lectern/storage"
)

// byteRange is a parsed single HTTP range (RFC 9110 §14.1.2): first..last
// inclusive once resolved against a size; suffix ranges have first < 0 and
// last = the suffix length; open ranges have last < 0.
type byteRange struct{ first, last int64 }

// errMultipleRanges makes the caller ignore the Range header and send the whole
// representation (RFC 9110 §14.2 allows it).
var errMultipleRanges = errors.New("multiple ranges")

// parseRange parses a Range header value with one byte range.
func parseRange(h string) (byteRange, error) {
	unit, spec, ok := strings.Cut(h, "=")
	if !ok || strings.TrimSpace(unit) != "bytes" {
		return byteRange{}, fmt.Errorf("%w: %q", errRangeNotSatisfiable, h)
	}
	if strings.Contains(spec, ",") {
		return byteRange{}, errMultipleRanges
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return byteRange{}, fmt.Errorf("%w: %q", errRangeNotSatisfiable, h)
	}
	num := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n >= 0 && !strings.HasPrefix(s, "+")
	}
	switch {
	case a == "": // bytes=-N: the last N bytes
		n, ok := num(b)
		if !ok || n == 0 {
			return byteRange{}, fmt.Errorf("%w: %q", errRangeNotSatisfiable, h)
		}
		return byteRange{first: -1, last: n}, nil
	case b == "":
		n, ok := num(a)
		if !ok {
			return byteRange{}, fmt.Errorf("%w: %q", errRangeNotSatisfiable, h)
		}
		return byteRange{first: n, last: -1}, nil
	}
	first, ok1 := num(a)
	last, ok2 := num(b)
	if !ok1 || !ok2 || last < first {
		return byteRange{}, fmt.Errorf("%w: %q", errRangeNotSatisfiable, h)
	}
	return byteRange{first: first, last: last}, nil
}

// resolve returns the offset and length of the range in an object of size bytes.
func (br byteRange) resolve(size int64) (off, n int64, err error) {
	switch {
	case br.first < 0:
		n = min(br.last, size)
		return size - n, n, nil
	case br.first >= size:
		return 0, 0, fmt.Errorf("%w: starts at %d of %d bytes", errRangeNotSatisfiable, br.first, size)
	case br.last < 0 || br.last >= size:
		return br.first, size - br.first, nil
	}
	return br.first, br.last - br.first + 1, nil
}

// span returns the offset and length (-1: to the end) to read from the store
// for a range that is not a suffix, before the object's size is known.
func (br byteRange) span() (off, n int64) {
	// bytes=0-9223372036854775807 asks for the rest like bytes=0-: its length
	// does not fit an int64 (it would wrap to a negative one).
	if br.last < 0 || br.last-br.first == math.MaxInt64 {
		return br.first, -1
	}
	return br.first, br.last - br.first + 1
}

// requestedRange returns the range to serve, or ok=false for the whole object:
// no Range header, several ranges, or an If-Range validator that does not match
// etag.
func requestedRange(r *http.Request, etag string) (byteRange, bool, error) {
	h := r.Header.Get("Range")
	if h == "" || r.Method != http.MethodGet {
		return byteRange{}, false, nil
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		return byteRange{}, false, nil
	}
	br, err := parseRange(h)
	if errors.Is(err, errMultipleRanges) {
		return byteRange{}, false, nil
	}
	return br, err == nil, err
}

// notModified reports whether the request's If-None-Match matches etag.
func notModified(r *http.Request, etag string) bool {
	inm := r.Header.Get("If-None-Match")
	if inm == "" || etag == "" {
		return false
	}
	for tag := range strings.SplitSeq(inm, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// serveObject serves a stored object with its content type, ETag, conditional
// requests and one byte range. One store request per HTTP request in the common
// cases (GET, GET with bytes=a-b or bytes=a-); suffix ranges and HEAD need a Stat.
//
// immutable says the object never changes once stored (media and init segments):
// with a cache (ReplayConfig.Cache) it is then served from memory when there, and
// kept there when a response reads it whole.
func (p *replays) serveObject(w http.ResponseWriter, r *http.Request, key, cache string, immutable bool) {
	c := p.cache
	if !immutable {
		c = nil
	}
	var gen uint64
	if c != nil {
		if obj, ok := c.get(key); ok {
			defer c.release(obj)
			c.hits.Add(1)
			p.serveKnown(w, r, key, cache, obj.info, obj.data)
			return
		}
		c.misses.Add(1)
		gen = c.generation() // before the read: a deletion meanwhile voids the fill
	}
	ctx := r.Context()
	rng := r.Header.Get("Range")
	if r.Method == http.MethodHead || (rng != "" && strings.Contains(rng, "=-")) || r.Header.Get("If-Range") != "" {
		info, err := p.st.Stat(ctx, key)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		p.serveKnown(w, r, key, cache, info, nil)
		return
	}
	off, n := int64(0), int64(-1)
	br, partial, err := requestedRange(r, "")
	if err != nil {
		p.unsatisfiable(w, r, key, 0, err)
		return
	}
	if partial {
		off, n = br.span()
	}
	rc, info, err := p.st.Open(ctx, key, off, n)
	if errors.Is(err, storage.ErrInvalidRange) {
		p.unsatisfiable(w, r, key, 0, err)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer rc.Close()
	if partial && off >= info.Size {
		p.unsatisfiable(w, r, key, info.Size, errRangeNotSatisfiable)
		return
	}
	setObjectHeaders(w, info, cache)
	if notModified(r, info.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	status := http.StatusOK
	if partial {
		off, n, _ = br.resolve(info.Size)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
		status = http.StatusPartialContent
	} else {
		n = info.Size
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	if c != nil && off == 0 && n == info.Size && c.fits(info.Size) {
		// The whole object (also "bytes=0-", as ffmpeg asks): keep it on the way.
		c.fill(w, rc, key, info, gen)
		return
	}
	_, _ = copyBig(w, rc)
}

// serveKnown serves an object whose metadata is known (HEAD, suffix ranges,
// If-Range, cached objects). data is the whole object when it is cached, else
// nil: the bytes are read from the store.
func (p *replays) serveKnown(w http.ResponseWriter, r *http.Request, key, cache string, info storage.ObjectInfo, data []byte) {
	br, partial, err := requestedRange(r, info.ETag)
	off, n := int64(0), info.Size
	if err == nil && partial {
		off, n, err = br.resolve(info.Size)
	}
	if err != nil {
		p.unsatisfiable(w, r, key, info.Size, err)
		return
	}
	setObjectHeaders(w, info, cache)
	if notModified(r, info.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
	}
	if r.Method == http.MethodHead || n == 0 {
		w.WriteHeader(status)
		return
	}
	if data != nil {
		w.WriteHeader(status)
		if m, _ := w.Write(data[off : off+n]); m > 0 {
			p.cache.served.Add(uint64(m))
		}
		return
	}
	rc, _, err := p.st.Open(r.Context(), key, off, n)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	_, _ = copyBig(w, rc)
}

func setObjectHeaders(w http.ResponseWriter, info storage.ObjectInfo, cache string) {
	h := w.Header()
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	if !info.ModTime.IsZero() {
		h.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", cache)
}

// unsatisfiable answers 416 with the object's size (RFC 9110 §15.5.17).
func (p *replays) unsatisfiable(w http.ResponseWriter, r *http.Request, key string, size int64, err error) {
	if size == 0 {
		if info, serr := p.st.Stat(r.Context(), key); serr == nil {
			size = info.Size
		} else {
			p.fail(w, r, serr)
			return
		}
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
	p.fail(w, r, fmt.Errorf("%w: %w", errRangeNotSatisfiable, err))
}

// serveComposite serves a download: the header bytes then every part, with one
// byte range mapped onto the parts.
func (p *replays) serveComposite(w http.ResponseWriter, r *http.Request, d *recorder.Download, cache string) {
	br, partial, err := requestedRange(r, d.ETag)
	off, n := int64(0), d.Size
	if err == nil && partial {
		off, n, err = br.resolve(d.Size)
	}
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", d.Size))
		p.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("ETag", d.ETag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", cache)
	if notModified(r, d.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, d.Size))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := p.copyComposite(w, r, d, off, n); err != nil {
		p.s.log.Info("download interrupted", "path", r.URL.Path, "err", err)
	}
}

// copyComposite writes n bytes of d from off.
func (p *replays) copyComposite(w io.Writer, r *http.Request, d *recorder.Download, off, n int64) error {
	end := off + n
	pos := int64(0)
	piece := func(size int64, write func(from, length int64) error) error {
		from, to := max(off, pos), min(end, pos+size)
		pos += size
		if from >= to {
			return nil
		}
		return write(from-(pos-size), to-from)
	}
	err := piece(int64(len(d.Header)), func(from, length int64) error {
		_, err := io.Copy(w, bytes.NewReader(d.Header[from:from+length]))
		return err
	})
	for _, part := range d.Parts {
		if err != nil || pos >= end {
			break
		}
		err = piece(part.Size, func(from, length int64) error {
			rc, _, err := p.st.Open(r.Context(), part.Key, from, length)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = copyBig(w, rc)
			return err
		})
	}
	return err
}

// copyBufs holds 64 KiB copy buffers, shared by every response: a segment
// (about 1.25 MB at 2.5 Mbit/s) crosses in twenty reads and writes instead of
// forty 32 KiB ones, while a slow reader holds no more than 64 KiB (with at most
// DefaultMaxDownloadsPerAddr downloads per address, and cut after WriteIdle
// without progress).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, progressChunk); return &b }}

// progressChunk is the most a progressWriter writes under one deadline.
const progressChunk = 64 << 10

// progressWriter writes a response in chunks of at most progressChunk, each
// under a fresh write deadline: a client that keeps reading, however slowly,
// gets the whole response; one that stops reading for idle is disconnected
// (its write fails), which frees what the response holds. Long responses
// (downloads) are bounded by their progress, not their length.
type progressWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func newProgressWriter(w http.ResponseWriter, idle time.Duration) *progressWriter {
	return &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: idle}
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), progressChunk)
		// Not every ResponseWriter has deadlines (recorders in tests): then
		// the server-wide timeouts are all there is.
		_ = p.rc.SetWriteDeadline(time.Now().Add(p.idle))
		m, err := p.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
	}
	return n, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// done gives the server's final flush of the response the same bound; the
// server clears the deadline once the response is complete.
func (p *progressWriter) done() { _ = p.rc.SetWriteDeadline(time.Now().Add(p.idle)) }

// copyBig copies src to dst through a pooled large buffer. The writer's
// ReadFrom is bypassed on purpose: for network sources it copies 32 KiB at a time.
func copyBig(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
