package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lectern/recorder"
	"lectern/storage"
)

// serveObject serves a stored object through http.ServeContent: its content
// type, ETag and Last-Modified, conditional requests, one byte range, HEAD.
//
// immutable says the object never changes once stored (media and init segments):
// with a cache (ReplayConfig.Cache) it is then served from memory when there, and
// kept there when a response reads it whole.
//
// One store request answers a plain GET (an Open of the whole object, which also
// describes it); a HEAD, a range or a conditional request needs a Stat, then an
// Open of exactly the bytes sent, if any.
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
			setObjectHeaders(w, obj.info, cache)
			p.serveContent(w, r, obj.info.ModTime, &countingReader{r: bytes.NewReader(obj.data), n: &c.served})
			return
		}
		c.misses.Add(1)
		gen = c.generation() // before the read: a deletion meanwhile voids the fill
	}
	ctx := r.Context()
	rd := &objectReader{ctx: ctx, st: p.st}
	defer rd.Close()
	var info storage.ObjectInfo
	var err error
	if plainGet(r) { // the whole object will be sent: open it, which describes it too
		var rc io.ReadCloser
		if rc, info, err = p.st.Open(ctx, key, 0, -1); err == nil {
			rd.body, rd.bodyEnd = rc, info.Size
		}
	} else {
		info, err = p.st.Stat(ctx, key)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	rd.add(nil, key, info.Size)
	if c != nil && c.fits(info.Size) {
		rd.fill = &cacheFill{c: c, key: key, info: info, gen: gen}
		if rd.body != nil {
			rd.body = rd.fill.start(rd.body)
			rd.fill = nil
		}
	}
	setObjectHeaders(w, info, cache)
	p.serveContent(w, r, info.ModTime, rd)
}

// plainGet reports whether r is a GET of a whole representation, without
// conditions: its answer is 200 with every byte.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
		return false
	}
	for name := range r.Header {
		if strings.HasPrefix(name, "If-") {
			return false
		}
	}
	return true
}

func setObjectHeaders(w http.ResponseWriter, info storage.ObjectInfo, cache string) {
	h := w.Header()
	// Always a type: without one, ServeContent would read the object to sniff it.
	ctype := info.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	h.Set("Cache-Control", cache)
}

// serveComposite serves a download: the header bytes then every part, as one
// representation (conditional requests, one byte range mapped onto the parts).
func (p *replays) serveComposite(w http.ResponseWriter, r *http.Request, d *recorder.Download, cache string) {
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("ETag", d.ETag)
	h.Set("Cache-Control", cache)
	rd := &objectReader{ctx: r.Context(), st: p.st}
	defer rd.Close()
	rd.add(d.Header, "", int64(len(d.Header)))
	for _, part := range d.Parts {
		rd.add(nil, part.Key, part.Size)
	}
	p.serveContent(w, r, time.Time{}, rd)
}

// serveContent answers r with the representation rs through http.ServeContent,
// whose headers (Content-Type, ETag, Cache-Control) are set on w. modtime zero
// means unknown. ServeContent's error answers (416, 412) become the replay
// JSON errors; so does a store failure before the first byte was sent.
func (p *replays) serveContent(w http.ResponseWriter, r *http.Request, modtime time.Time, rs io.ReadSeeker) {
	// Ranges are honoured on GET only (RFC 9110 §14.2: ServeContent applies
	// them to HEAD too), in bytes (an origin server MUST ignore a unit it does
	// not know; ServeContent answers 416), and one at a time: several ranges get
	// the whole representation (§14.2 lets a server ignore Range) rather than a
	// multipart answer that would open the store once per range.
	if rng := r.Header.Get("Range"); rng != "" &&
		(r.Method != http.MethodGet || !strings.HasPrefix(rng, "bytes=") || strings.Contains(rng, ",")) {
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Range")
		r = &r2
	}
	cw := &contentWriter{ResponseWriter: w}
	rd, _ := rs.(*objectReader)
	if rd != nil {
		rd.sending = cw.sendLength
	}
	http.ServeContent(cw, r, "", modtime, rs)
	var readErr error
	if rd != nil {
		readErr = rd.err
	}
	switch {
	case cw.status >= 400:
		unsatisfiable := cw.status == http.StatusRequestedRangeNotSatisfiable
		clearRepresentation(w.Header(), unsatisfiable)
		if unsatisfiable && w.Header().Get("Content-Range") == "" {
			// ServeContent tells the size only when the range starts beyond
			// it; RFC 9110 §15.5.17 wants it with every 416.
			if size, err := rs.Seek(0, io.SeekEnd); err == nil {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			}
		}
		p.fail(w, r, cw.failure())
	case !cw.wrote && readErr != nil:
		// Nothing was sent yet (the object went away after its Stat): the
		// client is told why instead of getting a cut 200.
		clearRepresentation(w.Header(), false)
		p.fail(w, r, readErr)
	case !cw.wrote:
		w.WriteHeader(cw.status) // HEAD, 304, an empty body
	case readErr != nil || cw.err != nil:
		p.s.log.Info("response interrupted", "path", r.URL.Path, "err", errors.Join(readErr, cw.err))
	}
}

// clearRepresentation removes the headers of the representation from an error
// answer (an error is neither cacheable for a year nor the object's ETag);
// keepRange keeps the "bytes */size" of a 416.
func clearRepresentation(h http.Header, keepRange bool) {
	for _, name := range []string{"ETag", "Last-Modified", "Cache-Control", "Content-Length", "Content-Type",
		"Content-Disposition", "Accept-Ranges", "X-Content-Type-Options"} {
		h.Del(name)
	}
	if !keepRange {
		h.Del("Content-Range")
	}
}

// contentWriter is the ResponseWriter given to http.ServeContent. It holds the
// status until the first byte of the body (or the end of the response), so that
// an error answer of ServeContent (plain text) is replaced by a JSON one, and a
// store failure before the first byte can still be answered with its status.
// Bodies are copied through a pooled 64 KiB buffer (ReadFrom).
type contentWriter struct {
	http.ResponseWriter        // a *progressWriter: every write under a renewed deadline
	status              int    // the status ServeContent chose; 0 until then
	wrote               bool   // the status and headers are sent
	text                []byte // the start of ServeContent's error text
	err                 error  // the first write error
}

func (c *contentWriter) WriteHeader(code int) {
	if c.status != 0 {
		return
	}
	if code == http.StatusPartialContent && c.Header().Get("Content-Length") == "0" {
		// "bytes=-0": ServeContent answers 206 with an empty (and invalid)
		// Content-Range; an empty suffix is unsatisfiable (RFC 9110 §14.1.3).
		_, size, _ := strings.Cut(c.Header().Get("Content-Range"), "/")
		c.Header().Set("Content-Range", "bytes */"+size)
		c.text = []byte("empty suffix range")
		code = http.StatusRequestedRangeNotSatisfiable
	}
	c.status = code
}

func (c *contentWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.status >= 400 {
		c.text = append(c.text, b[:min(len(b), max(0, 200-len(c.text)))]...)
		return len(b), nil
	}
	if !c.wrote {
		c.wrote = true
		c.ResponseWriter.WriteHeader(c.status)
	}
	n, err := c.ResponseWriter.Write(b)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// ReadFrom is how io.CopyN in ServeContent copies the body: through a pooled
// buffer rather than a fresh 32 KiB one per response.
func (c *contentWriter) ReadFrom(src io.Reader) (int64, error) { return copyBig(c, src) }

// sendLength is the length of the body ServeContent sends: it sets
// Content-Length before it seeks to the range and copies it.
func (c *contentWriter) sendLength() int64 {
	n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// failure is the error of an error answer of ServeContent.
func (c *contentWriter) failure() error {
	text := strings.TrimSpace(string(c.text))
	switch c.status {
	case http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%w: %s", errRangeNotSatisfiable, text)
	case http.StatusPreconditionFailed:
		return errPreconditionFailed
	}
	return fmt.Errorf("serving content: %d %s", c.status, text)
}

// objectReader is the io.ReadSeeker ServeContent reads a stored representation
// from: a sequence of pieces, each bytes in memory (a download's header) or a
// stored object. Seeking costs nothing: the store is asked for bytes on the
// first Read after a Seek, for exactly the span the response sends from there
// (so the size probe, a HEAD, a 304 or a 416 read nothing, and a range reads
// only itself); following reads continue on the same store reader.
type objectReader struct {
	ctx    context.Context
	st     replayStore
	pieces []piece
	size   int64
	pos    int64
	// sending returns the length the response sends from the position of the
	// last Seek, or -1 when unknown (then the object is read to its end).
	sending func() int64
	stop    int64 // where the span being sent ends; -1: not known yet
	// body is an open store reader of the piece holding bodyPos, to bodyEnd.
	body             io.ReadCloser
	bodyPos, bodyEnd int64
	// fill, when set, keeps the object in the cache if the response reads it
	// whole (a single-piece reader only).
	fill *cacheFill
	err  error // the first failure, also kept for the response's log
}

// piece is a part of an objectReader: data, or the stored object key.
type piece struct {
	start, size int64
	data        []byte
	key         string
}

// add appends a piece of size bytes: data when key is "", else the stored object.
func (rd *objectReader) add(data []byte, key string, size int64) {
	rd.pieces = append(rd.pieces, piece{start: rd.size, size: size, data: data, key: key})
	rd.size += size
}

func (rd *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += rd.pos
	case io.SeekEnd:
		offset += rd.size
	default:
		return 0, errors.New("objectReader: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("objectReader: negative position")
	}
	rd.pos, rd.stop = offset, -1
	return offset, nil
}

func (rd *objectReader) Read(p []byte) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	if rd.pos >= rd.size {
		return 0, io.EOF
	}
	if rd.stop < 0 {
		rd.stop = rd.size
		if rd.sending != nil {
			if n := rd.sending(); n > 0 {
				rd.stop = min(rd.size, rd.pos+n)
			}
		}
	}
	i := sort.Search(len(rd.pieces), func(i int) bool { return rd.pieces[i].start+rd.pieces[i].size > rd.pos })
	pc := &rd.pieces[i]
	if pc.key == "" {
		n := copy(p, pc.data[rd.pos-pc.start:])
		rd.pos += int64(n)
		return n, nil
	}
	if rd.body == nil || rd.bodyPos != rd.pos {
		if err := rd.open(pc); err != nil {
			rd.err = err
			return 0, err
		}
	}
	n, err := rd.body.Read(p[:min(int64(len(p)), rd.bodyEnd-rd.pos)])
	rd.pos += int64(n)
	rd.bodyPos = rd.pos
	switch {
	case rd.pos == rd.bodyEnd:
		rd.closeBody() // the next piece or span opens its own
		err = nil
	case err == io.EOF:
		err = fmt.Errorf("stored object ended at byte %d of %d: %w", rd.pos-pc.start, pc.size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		rd.err = err
	}
	return n, err
}

// open opens the store reader of pc from rd.pos to the end of the span sent
// (or of pc, whichever comes first).
func (rd *objectReader) open(pc *piece) error {
	rd.closeBody()
	end := pc.start + pc.size
	if rd.stop > rd.pos {
		end = min(end, rd.stop)
	}
	rc, info, err := rd.st.Open(rd.ctx, pc.key, rd.pos-pc.start, end-rd.pos)
	if err != nil {
		return err // the store's error, told to the client by its class only (publicMessage)
	}
	if info.Size != pc.size {
		rc.Close()
		return fmt.Errorf("%w: %d bytes stored, %d expected", errObjectChanged, info.Size, pc.size)
	}
	rd.body, rd.bodyPos, rd.bodyEnd = rc, rd.pos, end
	if rd.fill != nil && rd.pos == 0 && end == pc.size {
		rd.body = rd.fill.start(rc)
		rd.fill = nil
	}
	return nil
}

func (rd *objectReader) closeBody() {
	if rd.body != nil {
		_ = rd.body.Close()
		rd.body = nil
	}
}

// Close releases the store reader still open, if any.
func (rd *objectReader) Close() error {
	rd.closeBody()
	return nil
}

// countingReader is a cached object being served: it counts the bytes sent
// from memory (ReplayCache.served).
type countingReader struct {
	r *bytes.Reader
	n *atomic.Uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

func (c *countingReader) Seek(offset int64, whence int) (int64, error) {
	return c.r.Seek(offset, whence)
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
