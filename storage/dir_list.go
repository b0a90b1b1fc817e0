package storage

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// List implements [Store.List]. It walks the directory tree depth first,
// visiting each directory's entries in an order that yields keys sorted
// by bytes (a directory "a" sorts as "a/", so "a.txt" comes before
// "a/b"), without collecting all keys first. Symlinks to regular files
// inside the root are listed; symlinked directories are not followed.
func (d *Dir) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	dir, err := d.prefixName(prefix)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	return d.walk(ctx, dir, strings.TrimSuffix(prefix, "/"), fn)
}

// walk lists the objects below dir, whose key is keyDir ("" for the root).
func (d *Dir) walk(ctx context.Context, dir, keyDir string, fn func(ObjectInfo) error) error {
	entries, err := d.readDir(dir)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: list %q: %w", keyDir+"/", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("storage: list: %w", err)
		}
		key := path.Join(keyDir, e.Name())
		if strings.HasPrefix(e.Name(), reservedPrefix) || keyProblem(key) != "" {
			continue // our own files, or names no key can address
		}
		name := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := d.walk(ctx, name, key, fn); err != nil {
				return err
			}
			continue
		}
		fi, ok := d.entryInfo(e, name)
		if !ok {
			continue
		}
		if err := fn(fileObjectInfo(key, fi)); err != nil {
			return err
		}
	}
	return nil
}

// entryInfo returns the FileInfo of a listed regular file, following a
// symlink that stays within the root. ok is false for anything else and
// for files removed since the directory was read.
func (d *Dir) entryInfo(e fs.DirEntry, name string) (fs.FileInfo, bool) {
	var (
		fi  fs.FileInfo
		err error
	)
	switch {
	case e.Type().IsRegular():
		fi, err = e.Info()
	case e.Type()&fs.ModeSymlink != 0:
		fi, err = d.root.Stat(name)
	default:
		return nil, false
	}
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	return fi, true
}

// readDir returns the entries of dir sorted so that a depth-first walk
// yields keys in byte order: a directory sorts as its name plus "/".
func (d *Dir) readDir(dir string) ([]fs.DirEntry, error) {
	f, err := d.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int {
		return strings.Compare(sortName(a), sortName(b))
	})
	return entries, nil
}

// sortName is the name an entry sorts by within its directory.
func sortName(e fs.DirEntry) string {
	if e.IsDir() {
		return e.Name() + "/"
	}
	return e.Name()
}
