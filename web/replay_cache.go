package web

import (
	"container/list"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"lectern/storage"
)

// DefaultMaxCachedObject is the largest object a ReplayCache keeps unless told
// otherwise: a 4 s segment at 2.5 Mbit/s is about 1.25 MB, so this leaves room
// for long segments at high bitrates; a larger object is not worth evicting a
// dozen segments for.
const DefaultMaxCachedObject = 16 << 20

// ReplayCache keeps the immutable objects of replays (media and init segments)
// in memory, so a segment that many learners fetch crosses from the store once:
// a least-recently-used set bounded by the total size of the objects. Only
// objects that never change once stored may enter it (playlists grow while a
// lecture is live; meta.json and the index are rewritten), and only whole:
// an object is kept when a response read it entirely, from its first byte to its
// last, and its size is the one the store announced.
//
// The buffers of evicted objects are reused for the next fills (a few are kept
// spare), once no response is still sending from them: a full cache then
// replaces objects without allocating, where a fresh megabyte per miss would
// have to be cleared and faulted in, and later collected.
//
// A ReplayCache is safe for concurrent use. It is a Prometheus collector of its
// hits, misses and size (see Describe).
type ReplayCache struct {
	maxBytes  int64
	maxObject int64

	mu    sync.Mutex
	lru   list.List // of *cachedObject, most recently used first
	items map[string]*list.Element
	size  int64    // the capacity of the objects' buffers
	spare [][]byte // buffers of evicted objects, for the next fills
	// gen changes whenever objects are evicted because they were deleted: a fill
	// that began before (its read may have raced with the deletion) is dropped.
	gen uint64

	hits, misses, served, evictions, fills atomic.Uint64
}

// cachedObject is one object in a ReplayCache.
type cachedObject struct {
	key     string
	info    storage.ObjectInfo
	data    []byte
	refs    int  // responses sending from data; guarded by ReplayCache.mu
	evicted bool // data is recycled when the last response is done
}

// Spare buffers: how many are kept, and the smallest object that takes one (an
// init segment is not worth a megabyte).
const (
	maxSpare      = 4
	minSpareReuse = 64 << 10
)

// NewReplayCache returns a cache holding at most maxBytes of objects of at most
// maxObject bytes each (DefaultMaxCachedObject when maxObject <= 0; never more
// than maxBytes).
func NewReplayCache(maxBytes, maxObject int64) *ReplayCache {
	if maxObject <= 0 {
		maxObject = DefaultMaxCachedObject
	}
	return &ReplayCache{maxBytes: maxBytes, maxObject: min(maxObject, maxBytes), items: map[string]*list.Element{}}
}

// get returns the object stored under key and marks it used. The caller sends
// from its data, then calls release.
func (c *ReplayCache) get(key string) (*cachedObject, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	o := e.Value.(*cachedObject)
	o.refs++
	return o, true
}

// release ends a use of o begun by get.
func (c *ReplayCache) release(o *cachedObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o.refs--
	if o.refs == 0 && o.evicted {
		c.recycle(o.data)
	}
}

// buffer returns a buffer of size bytes for a fill: a spare one when one fits.
func (c *ReplayCache) buffer(size int64) []byte {
	if size >= minSpareReuse {
		c.mu.Lock()
		for i, b := range c.spare {
			if int64(cap(b)) >= size && int64(cap(b)) <= size+size/2 {
				c.spare = append(c.spare[:i], c.spare[i+1:]...)
				c.mu.Unlock()
				return b[:size]
			}
		}
		c.mu.Unlock()
	}
	return make([]byte, size)
}

// recycle keeps b for a later fill, if there is room; c.mu is held.
func (c *ReplayCache) recycle(b []byte) {
	if cap(b) < minSpareReuse {
		return
	}
	if len(c.spare) == maxSpare {
		c.spare = c.spare[1:] // the oldest goes to the garbage collector
	}
	c.spare = append(c.spare, b[:0])
}

// generation returns the current generation, for a later put.
func (c *ReplayCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// fits reports whether an object of size bytes may be cached.
func (c *ReplayCache) fits(size int64) bool { return size > 0 && size <= c.maxObject }

// put stores data, the whole object key described by info, unless objects were
// deleted since generation gen was read, and evicts the least recently used
// objects beyond the bound. When it stores data it returns the new object with a
// use begun for the caller (who is still sending from data): release it. It
// returns nil when it does not keep data; the caller still owns data then.
func (c *ReplayCache) put(key string, info storage.ObjectInfo, data []byte, gen uint64) *cachedObject {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fits(int64(len(data))) || int64(len(data)) != info.Size || int64(cap(data)) > c.maxBytes || gen != c.gen {
		return nil
	}
	if e, ok := c.items[key]; ok { // filled meanwhile by another request
		c.lru.MoveToFront(e)
		return nil
	}
	for c.size+int64(cap(data)) > c.maxBytes {
		c.remove(c.lru.Back())
		c.evictions.Add(1)
	}
	o := &cachedObject{key: key, info: info, data: data, refs: 1}
	c.items[key] = c.lru.PushFront(o)
	c.size += int64(cap(data))
	c.fills.Add(1)
	return o
}

// evictPrefix removes every object whose key starts with prefix (a deleted
// recording's) and makes fills in progress be dropped. It returns how many
// objects it removed.
func (c *ReplayCache) evictPrefix(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	n := 0
	for key, e := range c.items {
		if strings.HasPrefix(key, prefix) {
			c.remove(e)
			n++
		}
	}
	return n
}

// remove drops e; c.mu is held. Its buffer is reused once no response sends
// from it any more.
func (c *ReplayCache) remove(e *list.Element) {
	o := c.lru.Remove(e).(*cachedObject)
	delete(c.items, o.key)
	c.size -= int64(cap(o.data))
	o.evicted = true
	if o.refs == 0 {
		c.recycle(o.data)
	}
}

// stats returns the objects and bytes held.
func (c *ReplayCache) stats() (objects int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.size
}

// cacheFill is a fill the cache may take: the object key described by info,
// read while the cache was at generation gen.
type cacheFill struct {
	c    *ReplayCache
	key  string
	info storage.ObjectInfo
	gen  uint64
}

// start returns a reader of rc, which reads the whole object, that keeps a copy
// as it goes: the store is read once, and the client gets the bytes as they
// arrive.
func (f *cacheFill) start(rc io.ReadCloser) io.ReadCloser {
	return &fillReader{fill: f, rc: rc, data: f.c.buffer(f.info.Size)}
}

// fillReader reads an object into a cache buffer, handing out copies. Once the
// store delivered exactly info.Size bytes and ended, the buffer enters the cache,
// before the last bytes are handed out: a client that has the whole response
// finds it cached on its next request. A response that ends earlier (the client
// went away, the store failed) gives the buffer back on Close.
type fillReader struct {
	fill *cacheFill
	rc   io.ReadCloser
	data []byte
	n    int  // bytes read into data
	kept bool // data is in the cache
}

func (f *fillReader) Read(p []byte) (int, error) {
	if f.n == len(f.data) {
		return 0, io.EOF
	}
	m, err := f.rc.Read(f.data[f.n:min(len(f.data), f.n+len(p))])
	copy(p, f.data[f.n:f.n+m]) // before the put: once cached, data may be recycled
	f.n += m
	if m > 0 && f.n == len(f.data) && (err == io.EOF || err == nil && ended(f.rc)) {
		// The store must end here: longer than announced, or a failure at the
		// end, is not trusted.
		if o := f.fill.c.put(f.fill.key, f.fill.info, f.data, f.fill.gen); o != nil {
			f.fill.c.release(o) // p holds its own copy
			f.kept = true
		}
		err = nil
	}
	return m, err
}

// ended reports whether r is at its end.
func ended(r io.Reader) bool {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	return n == 0 && err == io.EOF
}

func (f *fillReader) Close() error {
	if !f.kept {
		f.fill.c.mu.Lock()
		f.fill.c.recycle(f.data)
		f.fill.c.mu.Unlock()
	}
	return f.rc.Close()
}
