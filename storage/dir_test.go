package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lectern/storage"
	"lectern/storage/storetest"
)

// newDir returns a Dir in a fresh temporary directory.
func newDir(t *testing.T, root string) *storage.Dir {
	t.Helper()
	d, err := storage.NewDir(root)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return newDir(t, t.TempDir()) })
}

func TestNewDir(t *testing.T) {
	base := t.TempDir()
	d := newDir(t, filepath.Join(base, "created", "on", "demand"))
	if fi, err := os.Stat(d.Root()); err != nil || !fi.IsDir() {
		t.Fatalf("root %q not created: %v", d.Root(), err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := storage.NewDir(file); err == nil {
		d.Close()
		t.Fatalf("NewDir on a regular file succeeded")
	}
}

// TestDirLayout checks that objects are plain files at root/key and that a
// content type is stored only when the extension does not imply it.
func TestDirLayout(t *testing.T) {
	ctx := t.Context()
	d := newDir(t, t.TempDir())
	for key, ct := range map[string]string{"l/seg.m4s": "", "l/index.m3u8": "application/vnd.apple.mpegurl", "l/x.bin": "application/x-custom"} {
		if err := d.Put(ctx, key, strings.NewReader(key), -1, ct); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(d.Root(), "l", "seg.m4s")); err != nil || string(b) != "l/seg.m4s" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	entries, err := os.ReadDir(filepath.Join(d.Root(), "l"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{".lectern-ct.x.bin", "index.m3u8", "seg.m4s", "x.bin"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	for _, key := range []string{".lectern-ct.x.bin", "l/.lectern-ct.x.bin", "l/.lectern-tmp-1/x"} {
		if err := d.Put(ctx, key, strings.NewReader("x"), 1, ""); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q) of a reserved name: %v, want ErrInvalidKey", key, err)
		}
		if _, err := d.Stat(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Stat(%q) of a reserved name: %v, want ErrInvalidKey", key, err)
		}
	}
	if err := d.Delete(ctx, "l/x.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "l", ".lectern-ct.x.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("sidecar survives Delete: %v", err)
	}
}

// TestDirNoEscape tries to reach files outside the root through invalid
// keys and symlinks, and checks that nothing outside changed.
func TestDirNoEscape(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	d := newDir(t, root)
	outside := filepath.Join(base, "outside")
	mustWrite(t, filepath.Join(base, "sentinel"), "sentinel")
	mustWrite(t, filepath.Join(outside, "secret"), "secret")
	for link, target := range map[string]string{"link-dir": outside, "link-file": filepath.Join(base, "sentinel"), "link-up": ".."} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, base, root)

	ops := map[string]func() error{
		"Put ../sentinel":          func() error { return d.Put(ctx, "../sentinel", strings.NewReader("x"), 1, "") },
		"Put ../new":               func() error { return d.Put(ctx, "../new", strings.NewReader("x"), 1, "") },
		"Put link-dir/new":         func() error { return d.Put(ctx, "link-dir/new", strings.NewReader("x"), 1, "") },
		"Put link-up/sentinel":     func() error { return d.Put(ctx, "link-up/sentinel", strings.NewReader("x"), 1, "") },
		"Put link-dir/secret":      func() error { return d.Put(ctx, "link-dir/secret", strings.NewReader("x"), 1, "") },
		"Delete ../sentinel":       func() error { return d.Delete(ctx, "../sentinel") },
		"Delete link-dir/secret":   func() error { return d.Delete(ctx, "link-dir/secret") },
		"Delete link-up/sentinel":  func() error { return d.Delete(ctx, "link-up/sentinel") },
		"DeletePrefix ../":         func() error { return d.DeletePrefix(ctx, "../") },
		"DeletePrefix link-dir/":   func() error { return d.DeletePrefix(ctx, "link-dir/") },
		"DeletePrefix link-up/":    func() error { return d.DeletePrefix(ctx, "link-up/") },
		"Stat link-file":           func() error { return second(d.Stat(ctx, "link-file")) },
		"Stat link-dir/secret":     func() error { return second(d.Stat(ctx, "link-dir/secret")) },
		"Open link-file":           func() error { return openErr(ctx, d, "link-file") },
		"Open link-dir/secret":     func() error { return openErr(ctx, d, "link-dir/secret") },
		"Open link-up/sentinel":    func() error { return openErr(ctx, d, "link-up/sentinel") },
		"List link-dir/":           func() error { return listNothing(ctx, d, "link-dir/") },
		"List link-up/":            func() error { return listNothing(ctx, d, "link-up/") },
		"Open /abs":                func() error { return openErr(ctx, d, filepath.Join(base, "sentinel")) },
		"Put absolute path":        func() error { return d.Put(ctx, filepath.Join(base, "new"), strings.NewReader("x"), 1, "") },
		"Put backslash parent":     func() error { return d.Put(ctx, `..\new`, strings.NewReader("x"), 1, "") },
		"DeletePrefix link-file/":  func() error { return d.DeletePrefix(ctx, "link-file/") },
		"Put link-file/x (notdir)": func() error { return d.Put(ctx, "link-file/x", strings.NewReader("x"), 1, "") },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			if err := op(); err == nil && !strings.HasPrefix(name, "Delete") && !strings.HasPrefix(name, "List") {
				t.Errorf("succeeded")
			}
		})
	}
	if after := snapshot(t, base, root); !maps(before, after) {
		t.Fatalf("files outside the root changed:\nbefore %q\nafter  %q", before, after)
	}
	// The symlinks inside the root are still there: DeletePrefix does not
	// follow or remove them.
	for _, link := range []string{"link-dir", "link-file", "link-up"} {
		if _, err := os.Lstat(filepath.Join(root, link)); err != nil {
			t.Errorf("%s: %v", link, err)
		}
	}
}

// openErr opens key and returns only the error.
func openErr(ctx context.Context, d *storage.Dir, key string) error {
	rc, _, err := d.Open(ctx, key, 0, -1)
	if rc != nil {
		rc.Close()
	}
	return err
}

// listNothing lists prefix and fails if any object is reported.
func listNothing(ctx context.Context, d *storage.Dir, prefix string) error {
	return d.List(ctx, prefix, func(info storage.ObjectInfo) error {
		return errors.New("listed " + info.Key)
	})
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every path below base, except below skip, to its content.
func snapshot(t *testing.T, base, skip string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		if e.Type().IsRegular() {
			b, err := os.ReadFile(p)
			m[p] = string(b)
			return err
		}
		m[p] = e.Type().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestDirAtomicPut checks that an object being written is invisible until
// Put returns, and that the previous version stays readable meanwhile.
func TestDirAtomicPut(t *testing.T) {
	ctx := t.Context()
	d := newDir(t, t.TempDir())
	if err := d.Put(ctx, "a/obj", strings.NewReader("old"), 3, ""); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/obj", "a/new"} {
		t.Run(key, func(t *testing.T) {
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- d.Put(ctx, key, pr, 8, "") }()
			if _, err := pw.Write([]byte("half")); err != nil { // returns once Put consumed it
				t.Fatal(err)
			}
			got, err := readAll(ctx, d, key)
			switch {
			case key == "a/obj" && (err != nil || got != "old"):
				t.Errorf("mid-Put read %q, %v; want the old object", got, err)
			case key == "a/new" && !errors.Is(err, storage.ErrNotFound):
				t.Errorf("mid-Put read %q, %v; want ErrNotFound", got, err)
			}
			var listed []string
			d.List(ctx, "", func(info storage.ObjectInfo) error {
				listed = append(listed, info.Key)
				return nil
			})
			if !slices.Equal(listed, []string{"a/obj"}) {
				t.Errorf("mid-Put List = %q", listed)
			}
			pw.Write([]byte("-new"))
			pw.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(ctx, d, key); err != nil || got != "half-new" {
				t.Fatalf("after Put read %q, %v", got, err)
			}
		})
	}
}

func readAll(ctx context.Context, d *storage.Dir, key string) (string, error) {
	rc, _, err := d.Open(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// TestDirFailedPutCleansUp checks that failed or cancelled Puts leave no
// temporary files behind.
func TestDirFailedPutCleansUp(t *testing.T) {
	d := newDir(t, t.TempDir())
	cctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- d.Put(cctx, "x/y/z", pr, -1, "application/x-custom") }()
	pw.Write([]byte("some bytes"))
	cancel()
	pw.Close() // a clean EOF: the cancellation alone must stop the commit
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put: %v, want context.Canceled", err)
	}
	if err := d.Put(t.Context(), "x/short", bytes.NewReader([]byte("abc")), 10, "application/x-custom"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short Put: %v, want io.ErrUnexpectedEOF", err)
	}
	filepath.WalkDir(d.Root(), func(p string, e fs.DirEntry, err error) error {
		if err == nil && p != d.Root() {
			t.Errorf("left behind: %s", p)
		}
		return err
	})
}

// TestDirModTime checks that ModTime and ETag track each Put precisely.
func TestDirModTime(t *testing.T) {
	ctx := t.Context()
	d := newDir(t, t.TempDir())
	start := time.Now()
	var etags []string
	for range 5 {
		if err := d.Put(ctx, "k", strings.NewReader("same"), 4, ""); err != nil {
			t.Fatal(err)
		}
		st, err := d.Stat(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if st.ModTime.Before(start.Add(-time.Second)) || st.ModTime.After(time.Now().Add(time.Second)) {
			t.Fatalf("ModTime %v outside the test's run", st.ModTime)
		}
		etags = append(etags, st.ETag)
	}
	slices.Sort(etags)
	if len(slices.Compact(etags)) != 5 {
		t.Fatalf("ETags of identical rapid Puts repeat: %q", etags)
	}
}

// second returns the error of a two-value call.
func second[T any](_ T, err error) error { return err }
