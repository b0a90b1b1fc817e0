// Package storage stores lecture media (recorded segments, playlists,
// thumbnails) as immutable-ish objects addressed by slash-separated keys.
//
// Two implementations share the same method set, described by [Store]:
//
//   - [Dir] keeps objects as plain files below a local directory. It is the
//     embedded default and needs no other service.
//   - [S3] keeps objects in an S3-compatible bucket (MinIO, AWS S3, ...)
//     through github.com/minio/minio-go/v7.
//
// Keys are validated by [ValidateKey] on every call; a prefix is either ""
// (everything) or a valid key followed by "/". Errors wrap the sentinels
// [ErrNotFound], [ErrInvalidKey], [ErrInvalidRange] and [ErrNotSupported]
// with context; match them with [errors.Is].
//
// All methods of both implementations are safe for concurrent use.
package storage

import (
	"context"
	"io"
	"time"
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object's key, without any store-level prefix.
	Key string
	// Size is the size of the whole object in bytes, also when it was
	// returned by a ranged [Store.Open].
	Size int64
	// ModTime is when the object was last written. Precision depends on the
	// implementation (S3 reports whole seconds).
	ModTime time.Time
	// ETag is an opaque, quoted entity tag (RFC 9110 section 8.8.3) that
	// changes whenever the object is rewritten with different content; it can
	// be sent as the HTTP ETag header as is.
	ETag string
	// ContentType is the MIME type given to Put, or the one derived from the
	// key's extension when Put was given "". List may leave it empty; use
	// Stat or Open to learn it.
	ContentType string
}

// Store is an object store. Both [Dir] and [S3] implement it; consumers
// should declare the smaller interface they need instead of depending on
// all of it.
//
// Every method validates its key or prefix first and fails with an error
// wrapping [ErrInvalidKey] without touching anything when it is invalid.
// Methods honour ctx cancellation and may be called from any goroutine.
type Store interface {
	// Put stores the bytes of r under key, replacing any previous object.
	// size is the number of bytes to read from r, or -1 when unknown; when
	// size is known and r ends early, Put fails. contentType "" derives the
	// type from the key's extension. A reader never observes a partially
	// written object: until Put returns nil, Stat and Open see the previous
	// object (or none).
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error

	// Open returns a reader of length bytes of the object starting at
	// offset; length -1 reads to the end, and a length beyond the end is
	// clipped. offset equal to the object size yields an empty reader;
	// a negative offset or one beyond the end fails with [ErrInvalidRange].
	// The returned ObjectInfo describes the whole object (Size is its total
	// size, as needed for an HTTP Content-Range header). The caller must
	// close the reader.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error)

	// Stat returns the object's metadata, or an error wrapping
	// [ErrNotFound].
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn, on the calling goroutine, for every object whose key
	// starts with prefix, in ascending byte order of keys. prefix is "" or
	// ends with "/". When fn returns an error, List stops and returns that
	// error unchanged. A prefix without objects is not an error.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object under key. A missing key is not an error.
	Delete(ctx context.Context, key string) error

	// DeletePrefix removes every object whose key starts with prefix, which
	// is "" (everything) or ends with "/".
	DeletePrefix(ctx context.Context, prefix string) error

	// PresignGet returns a URL that lets anyone holding it GET the object
	// without credentials until expiry elapses. Stores that cannot do that
	// ([Dir]) fail with [ErrNotSupported]; callers then serve the bytes
	// through Open themselves.
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}
