package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names of files Dir keeps next to objects. Any key segment starting with
// reservedPrefix is rejected, so these can never collide with an object.
const (
	reservedPrefix = ".lectern-"
	tempPrefix     = reservedPrefix + "tmp-"
	sidecarPrefix  = reservedPrefix + "ct."
)

// Dir is a [Store] that keeps each object as a plain file at <root>/<key>,
// so recordings can be inspected with ordinary tools (ffprobe, ls).
//
// Put writes to a temporary file in the object's directory, fsyncs it, and
// renames it over the key, so a reader sees the old object or the new one,
// never a mix.
//
// Content types: a type equal to the one implied by the key's extension
// (the common case: segments and playlists) is not stored at all; any other
// type goes to a small sidecar file "<dir>/.lectern-ct.<name>". A sidecar was
// chosen over deriving the type from the extension alone so that Put's
// content type round-trips exactly as it does on [S3], and over extended
// attributes because those are missing on some filesystems (tmpfs in
// containers, network mounts). Segments starting with ".lectern-" are
// reserved for sidecars and temporary files: keys using them are rejected
// with [ErrInvalidKey] and such files are hidden from List.
//
// Within one process, the object and its sidecar change together under a
// lock, so Stat and Open always report the content type that was Put with
// the content they return. Processes sharing a directory get atomic
// content but may briefly see a stale content type.
//
// All file access goes through an [os.Root], so neither ".." tricks nor
// symlinks can reach outside the root directory.
type Dir struct {
	root *os.Root
	path string // absolute root path, for the filepath.Rel check

	// mu is held for writing while Put and Delete swap an object and its
	// sidecar, and for reading while Stat and Open read both.
	mu sync.RWMutex
}

// NewDir returns a Dir storing objects below root, creating the directory
// when it does not exist. Close the Dir to release its directory handle.
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", root, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", root, err)
	}
	return &Dir{root: r, path: abs}, nil
}

// Root returns the absolute path of the directory holding the objects.
func (d *Dir) Root() string { return d.path }

// Close releases the root directory handle. The Dir must not be used
// afterwards.
func (d *Dir) Close() error { return d.root.Close() }

// Put implements [Store.Put]. A failed Put leaves no files behind.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	name, err := d.name(key)
	if err != nil {
		return err
	}
	ct, err := resolveContentType(key, contentType)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	dir := filepath.Dir(name)
	defer func() {
		if err != nil {
			d.prune(dir) // directories created for this object
		}
	}()
	tmp, err := d.writeTemp(dir, ctxReader{ctx, r}, size)
	if err != nil {
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	defer d.removeQuietly(tmp) // fails harmlessly once renamed
	var sidecarTmp string
	if ct != contentTypeFor(key) {
		sidecarTmp, err = d.writeTemp(dir, strings.NewReader(ct), int64(len(ct)))
		if err != nil {
			return fmt.Errorf("storage: put %q: content type: %w", key, err)
		}
		defer d.removeQuietly(sidecarTmp)
	}
	if err := ctx.Err(); err != nil { // cancelled while reading: do not commit
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	if err := d.commit(name, tmp, sidecarTmp); err != nil {
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	if err := d.syncDir(dir); err != nil {
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	return nil
}

// writeTemp copies size bytes (all when size < 0) of r to a new temporary
// file in dir, stamps it with the current time, fsyncs it and returns its
// name. On error the file is removed.
func (d *Dir) writeTemp(dir string, r io.Reader, size int64) (_ string, err error) {
	f, name, err := d.createTemp(dir)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			d.removeQuietly(name)
		}
	}()
	if size >= 0 {
		n, err := io.CopyN(f, r, size)
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return "", err
		}
	} else if _, err := io.Copy(f, r); err != nil {
		return "", err
	}
	// An explicit, nanosecond-precise ModTime keeps ETags of two quick
	// same-size Puts apart; the kernel's own timestamps are tick-coarse.
	now := time.Now()
	if err := d.root.Chtimes(name, now, now); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return name, f.Close()
}

// createTemp creates a new empty file in dir, creating dir when missing.
// It retries because a concurrent Delete may prune dir, now empty, between
// MkdirAll and OpenFile.
func (d *Dir) createTemp(dir string) (*os.File, string, error) {
	for attempt := 0; ; attempt++ {
		name := filepath.Join(dir, tempPrefix+rand.Text())
		f, err := d.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil || !isNotExist(err) || attempt == 3 {
			return f, name, err
		}
		if err := d.root.MkdirAll(dir, 0o755); err != nil {
			return nil, "", err
		}
	}
}

// commit moves the temporary files into place: the sidecar first (or
// removes a stale one), then the object.
func (d *Dir) commit(name, tmp, sidecarTmp string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sidecar := sidecarName(name)
	if sidecarTmp != "" {
		if err := d.root.Rename(sidecarTmp, sidecar); err != nil {
			return err
		}
	} else if err := d.root.Remove(sidecar); err != nil && !isNotExist(err) {
		return err
	}
	if err := d.root.Rename(tmp, name); err != nil {
		if sidecarTmp != "" {
			d.removeQuietly(sidecar)
		}
		return err
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it survives a crash.
func (d *Dir) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Open implements [Store.Open]. The reader also implements [io.Seeker] and
// [io.ReaderAt] within the requested range, as [http.ServeContent] likes.
func (d *Dir) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	name, err := d.name(key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("storage: open %q: %w", key, err)
	}
	f, info, err := d.openObject(key, name)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("storage: open %q: %w", key, err)
	}
	n, err := clipRange(offset, length, info.Size)
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, fmt.Errorf("storage: open %q: %w", key, err)
	}
	return &sectionReadCloser{io.NewSectionReader(f, offset, n), f}, info, nil
}

// openObject opens the regular file under name and describes it.
func (d *Dir) openObject(key, name string) (*os.File, ObjectInfo, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	f, err := d.root.Open(name)
	if isNotExist(err) {
		return nil, ObjectInfo{}, ErrNotFound
	}
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	info, err := d.describe(f.Stat, key, name)
	if err != nil {
		f.Close()
		return nil, ObjectInfo{}, err
	}
	return f, info, nil
}

// Stat implements [Store.Stat].
func (d *Dir) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	name, err := d.name(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat %q: %w", key, err)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	info, err := d.describe(func() (fs.FileInfo, error) { return d.root.Stat(name) }, key, name)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: stat %q: %w", key, err)
	}
	return info, nil
}

// describe builds the ObjectInfo of key from stat and the sidecar; a
// missing file or a directory is ErrNotFound. d.mu must be held.
func (d *Dir) describe(stat func() (fs.FileInfo, error), key, name string) (ObjectInfo, error) {
	fi, err := stat()
	if isNotExist(err) {
		return ObjectInfo{}, ErrNotFound
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, ErrNotFound
	}
	info := fileObjectInfo(key, fi)
	info.ContentType, err = d.contentType(key, name)
	return info, err
}

// contentType returns the sidecar's content type, or the extension's.
func (d *Dir) contentType(key, name string) (string, error) {
	b, err := d.root.ReadFile(sidecarName(name))
	if isNotExist(err) {
		return contentTypeFor(key), nil
	}
	if err != nil {
		return "", fmt.Errorf("content type: %w", err)
	}
	return string(b), nil
}

// Delete implements [Store.Delete]. Directories left empty are removed.
func (d *Dir) Delete(ctx context.Context, key string) error {
	name, err := d.name(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	if err := d.removeObject(name); err != nil {
		return fmt.Errorf("storage: delete %q: %w", key, err)
	}
	d.prune(filepath.Dir(name))
	return nil
}

// removeObject removes the file under name and its sidecar. A missing file
// or a directory (a prefix of other keys, not an object) is left alone.
func (d *Dir) removeObject(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := d.root.Lstat(name)
	if isNotExist(err) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.root.Remove(name); err != nil && !isNotExist(err) {
		return err
	}
	if err := d.root.Remove(sidecarName(name)); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// DeletePrefix implements [Store.DeletePrefix].
func (d *Dir) DeletePrefix(ctx context.Context, prefix string) error {
	dir, err := d.prefixName(prefix)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete prefix %q: %w", prefix, err)
	}
	if err := d.removeTree(dir); err != nil {
		return fmt.Errorf("storage: delete prefix %q: %w", prefix, err)
	}
	return nil
}

// removeTree removes the directory dir with everything below it, or, for
// the root ("."), everything below it.
func (d *Dir) removeTree(dir string) error {
	if dir != "." {
		fi, err := d.root.Lstat(dir)
		if isNotExist(err) || (err == nil && !fi.IsDir()) {
			return nil // no such prefix; a file "a" is not below "a/"
		}
		if err != nil {
			return err
		}
		if err := d.root.RemoveAll(dir); err != nil {
			return err
		}
		d.prune(filepath.Dir(dir))
		return nil
	}
	entries, err := d.readDir(".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := d.root.RemoveAll(e.Name()); err != nil {
			return err
		}
	}
	return nil
}

// prune removes dir and its parents, up to the root, while they are empty
// real directories. Failures just stop it.
func (d *Dir) prune(dir string) {
	for dir != "." {
		fi, err := d.root.Lstat(dir)
		if err != nil || !fi.IsDir() || d.root.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// PresignGet implements [Store.PresignGet]: a local directory has no URL to
// sign, so it always fails with [ErrNotSupported] (after validating key).
func (d *Dir) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if _, err := d.name(key); err != nil {
		return "", err
	}
	return "", fmt.Errorf("storage: presign %q: %w", key, ErrNotSupported)
}

// name validates key and returns its file name relative to the root.
func (d *Dir) name(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if err := checkReserved(key); err != nil {
		return "", err
	}
	name := filepath.FromSlash(key)
	// Belt and braces: ValidateKey already rules out escapes, and os.Root
	// would refuse them anyway.
	rel, err := filepath.Rel(d.path, filepath.Join(d.path, name))
	if err != nil || rel != name || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w %q: escapes the root directory", ErrInvalidKey, key)
	}
	return name, nil
}

// prefixName validates prefix and returns its directory name relative to
// the root ("." for the empty prefix).
func (d *Dir) prefixName(prefix string) (string, error) {
	if err := validatePrefix(prefix); err != nil {
		return "", err
	}
	if prefix == "" {
		return ".", nil
	}
	name, err := d.name(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return "", fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return name, nil
}

// checkReserved rejects keys with a segment Dir uses for its own files.
func checkReserved(key string) error {
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, reservedPrefix) {
			return fmt.Errorf("%w %q: segments starting with %q are reserved", ErrInvalidKey, key, reservedPrefix)
		}
	}
	return nil
}

// removeQuietly removes a file the caller no longer needs.
func (d *Dir) removeQuietly(name string) { _ = d.root.Remove(name) }

// sidecarName returns the name of the content-type sidecar of name.
func sidecarName(name string) string {
	return filepath.Join(filepath.Dir(name), sidecarPrefix+filepath.Base(name))
}

// fileObjectInfo describes a regular file; the ETag combines size and
// nanosecond ModTime, like common web servers do for static files.
func fileObjectInfo(key string, fi fs.FileInfo) ObjectInfo {
	return ObjectInfo{
		Key:     key,
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		ETag:    fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()),
	}
}

// isNotExist reports errors meaning "no such object": a missing path, or a
// path through a regular file ("a/b" when "a" is an object).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// sectionReadCloser is a section of an open file that closes the file.
type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

// Close closes the underlying file.
func (s *sectionReadCloser) Close() error { return s.f.Close() }

// ctxReader fails reads once ctx is done, so a long Put can be cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read implements [io.Reader].
func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
