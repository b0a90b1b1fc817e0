// Package storetest is a conformance suite for implementations of
// [storage.Store]. Each implementation's tests call [Run] with a
// constructor; every subtest gets its own empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lectern/storage"
)

// Run runs the conformance suite. newStore must return a new, empty store
// and register its cleanup with t.Cleanup; it is called once per subtest.
//
// PresignGet must fail with [storage.ErrNotSupported] for a *storage.Dir;
// any other store must return a URL that serves the object over HTTP.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"EmptyObject", testEmptyObject},
		{"Range", testRange},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"ListStops", testListStops},
		{"Delete", testDelete},
		{"DeletePrefix", testDeletePrefix},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"ContentType", testContentType},
		{"FailedPut", testFailedPut},
		{"Cancelled", testCancelled},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Presign", testPresign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// ctx returns a context cancelled when the test ends or after a minute.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// payload returns n pseudo-random bytes that differ per seed.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// put stores data under key or fails the test.
func put(t *testing.T, s storage.Store, key string, data []byte, contentType string) {
	t.Helper()
	if err := s.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// read opens key at offset/length and returns its bytes and info.
func read(t *testing.T, s storage.Store, key string, offset, length int64) ([]byte, storage.ObjectInfo, error) {
	t.Helper()
	rc, info, err := s.Open(ctx(t), key, offset, length)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): read: %v", key, offset, length, err)
	}
	return b, info, nil
}

// mustRead is read that fails the test on error.
func mustRead(t *testing.T, s storage.Store, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	b, info, err := read(t, s, key, 0, -1)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	return b, info
}

// keys lists prefix and returns the keys in the order List reported them.
func keys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	got := []string{}
	err := s.List(ctx(t), prefix, func(info storage.ObjectInfo) error {
		got = append(got, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

// checkInfo compares the fields of info that a Put of data determines.
func checkInfo(t *testing.T, what string, info storage.ObjectInfo, key string, size int64) {
	t.Helper()
	if info.Key != key || info.Size != size {
		t.Errorf("%s: key %q size %d, want %q %d", what, info.Key, info.Size, key, size)
	}
	if len(info.ETag) < 3 || !strings.HasPrefix(info.ETag, `"`) || !strings.HasSuffix(info.ETag, `"`) {
		t.Errorf("%s: ETag %q is not a quoted entity tag", what, info.ETag)
	}
	if d := time.Since(info.ModTime); d < -time.Minute || d > time.Minute {
		t.Errorf("%s: ModTime %v is not about now", what, info.ModTime)
	}
}

func testRoundTrip(t *testing.T, s storage.Store) {
	data := payload(100_000, 1)
	put(t, s, "lectures/l1/seg-0001.m4s", data, "video/iso.segment")

	st, err := s.Stat(ctx(t), "lectures/l1/seg-0001.m4s")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", st, "lectures/l1/seg-0001.m4s", int64(len(data)))

	got, info := mustRead(t, s, "lectures/l1/seg-0001.m4s")
	if !bytes.Equal(got, data) {
		t.Fatalf("Open read %d bytes, want the %d put", len(got), len(data))
	}
	checkInfo(t, "Open", info, "lectures/l1/seg-0001.m4s", int64(len(data)))
	if info.ETag != st.ETag || info.ContentType != st.ContentType {
		t.Errorf("Open info %+v differs from Stat %+v", info, st)
	}
}

func testUnknownSize(t *testing.T, s storage.Store) {
	data := payload(300_000, 2)
	r := io.MultiReader(bytes.NewReader(data[:1000]), bytes.NewReader(data[1000:]))
	if err := s.Put(ctx(t), "u/blob", r, -1, ""); err != nil {
		t.Fatalf("Put size -1: %v", err)
	}
	got, info := mustRead(t, s, "u/blob")
	if !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Fatalf("read %d bytes (info size %d), want %d", len(got), info.Size, len(data))
	}
}

func testEmptyObject(t *testing.T, s storage.Store) {
	put(t, s, "e/empty", nil, "")
	got, info := mustRead(t, s, "e/empty")
	if len(got) != 0 || info.Size != 0 {
		t.Fatalf("read %d bytes, size %d; want empty", len(got), info.Size)
	}
	if got, _, err := read(t, s, "e/empty", 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("Open(0, 10) on empty object: %q, %v", got, err)
	}
	if _, _, err := read(t, s, "e/empty", 1, -1); !errors.Is(err, storage.ErrInvalidRange) {
		t.Fatalf("Open(1, -1) on empty object: %v, want ErrInvalidRange", err)
	}
}

func testRange(t *testing.T, s storage.Store) {
	data := payload(1000, 3)
	put(t, s, "r/obj", data, "")
	tests := []struct {
		name           string
		offset, length int64
		want           []byte // nil with wantErr
		wantErr        error
	}{
		{"whole", 0, -1, data, nil},
		{"offset to end", 100, -1, data[100:], nil},
		{"head", 0, 10, data[:10], nil},
		{"middle", 250, 500, data[250:750], nil},
		{"last byte", 999, 1, data[999:], nil},
		{"length beyond end", 900, 500, data[900:], nil},
		{"zero length", 10, 0, []byte{}, nil},
		{"offset at end", 1000, -1, []byte{}, nil},
		{"offset at end with length", 1000, 5, []byte{}, nil},
		{"offset beyond end", 1001, -1, nil, storage.ErrInvalidRange},
		{"offset far beyond end", 5000, 10, nil, storage.ErrInvalidRange},
		{"negative offset", -1, 10, nil, storage.ErrInvalidRange},
		{"negative length", 0, -2, nil, storage.ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, info, err := read(t, s, "r/obj", tt.offset, tt.length)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open: err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tt.want))
			}
			if info.Size != int64(len(data)) {
				t.Fatalf("info.Size %d, want the whole object's %d", info.Size, len(data))
			}
		})
	}
	if _, _, err := read(t, s, "r/missing", 10, 10); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ranged Open of missing key: %v, want ErrNotFound", err)
	}
}

func testOverwrite(t *testing.T, s storage.Store) {
	v1, v2, v3 := payload(5000, 4), payload(300, 5), payload(300, 6)
	put(t, s, "o/k.bin", v1, "application/x-one")
	st1, err := s.Stat(ctx(t), "o/k.bin")
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "o/k.bin", v2, "application/x-two")
	got, info := mustRead(t, s, "o/k.bin")
	if !bytes.Equal(got, v2) || info.Size != 300 || info.ContentType != "application/x-two" {
		t.Fatalf("after overwrite: %d bytes, info %+v", len(got), info)
	}
	if info.ETag == st1.ETag {
		t.Errorf("ETag %s unchanged by an overwrite", info.ETag)
	}
	// Same size, quickly after: the ETag must still change.
	put(t, s, "o/k.bin", v3, "")
	got, info3 := mustRead(t, s, "o/k.bin")
	if !bytes.Equal(got, v3) || info3.ContentType != "application/octet-stream" {
		t.Fatalf("after second overwrite: %d bytes, info %+v", len(got), info3)
	}
	if info3.ETag == info.ETag {
		t.Errorf("ETag %s unchanged by a same-size overwrite", info3.ETag)
	}
	if k := keys(t, s, ""); !slices.Equal(k, []string{"o/k.bin"}) {
		t.Errorf("List after overwrites: %q", k)
	}
}

func testList(t *testing.T, s storage.Store) {
	all := []string{
		"l-z",
		"l/a.txt",
		"l/a/1",
		"l/a/2",
		"l/a/sub/x",
		"l/ab",
		"l/b/c/d",
		"la/z",
		"m",
	}
	for i, k := range slices.Backward(all) { // put in reverse, to not rely on creation order
		put(t, s, k, payload(10+i, uint64(i)), "")
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"l/", []string{"l/a.txt", "l/a/1", "l/a/2", "l/a/sub/x", "l/ab", "l/b/c/d"}},
		{"l/a/", []string{"l/a/1", "l/a/2", "l/a/sub/x"}},
		{"l/a/sub/", []string{"l/a/sub/x"}},
		{"la/", []string{"la/z"}},
		{"l/b/c/", []string{"l/b/c/d"}},
		{"missing/", []string{}},
		{"m/", []string{}},       // "m" is an object, not a prefix
		{"l/a.txt/", []string{}}, // likewise
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("prefix=%q", tt.prefix), func(t *testing.T) {
			if got := keys(t, s, tt.prefix); !slices.Equal(got, tt.want) {
				t.Fatalf("List(%q) = %q\nwant %q", tt.prefix, got, tt.want)
			}
		})
	}
	err := s.List(ctx(t), "l/a/", func(info storage.ObjectInfo) error {
		if info.Key == "l/a/2" && (info.Size <= 0 || info.ETag == "" || info.ModTime.IsZero()) {
			return fmt.Errorf("incomplete info %+v", info)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListStops(t *testing.T, s storage.Store) {
	for _, k := range []string{"s/1", "s/2", "s/3"} {
		put(t, s, k, []byte(k), "")
	}
	errStop := errors.New("stop")
	var seen []string
	err := s.List(ctx(t), "s/", func(info storage.ObjectInfo) error {
		seen = append(seen, info.Key)
		return errStop
	})
	if !errors.Is(err, errStop) || !slices.Equal(seen, []string{"s/1"}) {
		t.Fatalf("List with failing fn: err %v, saw %q; want errStop after s/1", err, seen)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	put(t, s, "d/a/x", []byte("x"), "application/x-custom")
	put(t, s, "d/a/y", []byte("y"), "")
	if err := s.Delete(ctx(t), "d/a/x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx(t), "d/a/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v, want ErrNotFound", err)
	}
	for _, k := range []string{"d/a/x", "never/existed", "d/a"} {
		if err := s.Delete(ctx(t), k); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", k, err)
		}
	}
	if got := keys(t, s, ""); !slices.Equal(got, []string{"d/a/y"}) {
		t.Fatalf("after deletes List = %q", got)
	}
	if err := s.Delete(ctx(t), "d/a/y"); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, s, ""); len(got) != 0 {
		t.Fatalf("after deleting all, List = %q", got)
	}
	// A key can be reused after its directory-like prefix emptied.
	put(t, s, "d/a/y", []byte("again"), "")
	if got, _ := mustRead(t, s, "d/a/y"); string(got) != "again" {
		t.Fatalf("re-put read %q", got)
	}
}

func testDeletePrefix(t *testing.T, s storage.Store) {
	for _, k := range []string{"p/a/1", "p/a/2/3", "p/a.txt", "p/ab", "p/b", "q/x"} {
		put(t, s, k, []byte(k), "application/x-"+strings.ReplaceAll(k, "/", "-"))
	}
	steps := []struct {
		prefix string
		want   []string
	}{
		{"p/a/", []string{"p/a.txt", "p/ab", "p/b", "q/x"}},
		{"missing/", []string{"p/a.txt", "p/ab", "p/b", "q/x"}},
		{"p/b/", []string{"p/a.txt", "p/ab", "p/b", "q/x"}}, // "p/b" is an object, not below "p/b/"
		{"p/", []string{"q/x"}},
		{"", []string{}},
	}
	for _, st := range steps {
		if err := s.DeletePrefix(ctx(t), st.prefix); err != nil {
			t.Fatalf("DeletePrefix(%q): %v", st.prefix, err)
		}
		if got := keys(t, s, ""); !slices.Equal(got, st.want) {
			t.Fatalf("after DeletePrefix(%q): List = %q, want %q", st.prefix, got, st.want)
		}
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	put(t, s, "nf/dir/x", []byte("x"), "")
	for _, key := range []string{"nf/missing", "nf/dir", "nf/dir/x/y", "other"} {
		t.Run(key, func(t *testing.T) {
			if _, err := s.Stat(ctx(t), key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat: %v, want ErrNotFound", err)
			}
			if _, _, err := read(t, s, key, 0, -1); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Open: %v, want ErrNotFound", err)
			}
			if _, _, err := read(t, s, key, 0, 0); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Open zero length: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx(t), key); err != nil {
				t.Errorf("Delete: %v, want nil", err)
			}
		})
	}
	if got := keys(t, s, ""); !slices.Equal(got, []string{"nf/dir/x"}) {
		t.Fatalf("List = %q", got)
	}
}

// badKeys are rejected by every method taking a key.
var badKeys = []string{
	"", "/abs", "../x", "..", ".", "a/../../x", "a/..", "./a", "a//b", "a/./b",
	"a/", `a\b`, `..\x`, "a\x00b", "a\nb", "a\x7fb", "\xff", strings.Repeat("k", storage.MaxKeyLen+1),
}

// badPrefixes are rejected by List and DeletePrefix.
var badPrefixes = []string{"a", "/", "/a/", "../", "../x/", "a//", "./", "a/../", `a\b/`, "a\x00/"}

func testInvalidKeys(t *testing.T, s storage.Store) {
	keep := []byte("must survive")
	put(t, s, "keep/me", keep, "")
	for _, key := range badKeys {
		t.Run(fmt.Sprintf("key=%.20q", key), func(t *testing.T) {
			checks := map[string]error{
				"Put":        s.Put(ctx(t), key, strings.NewReader("evil"), 4, ""),
				"Delete":     s.Delete(ctx(t), key),
				"Stat":       second(s.Stat(ctx(t), key)),
				"PresignGet": second(s.PresignGet(ctx(t), key, time.Minute)),
			}
			rc, _, err := s.Open(ctx(t), key, 0, -1)
			if rc != nil {
				rc.Close()
			}
			checks["Open"] = err
			for op, err := range checks {
				if !errors.Is(err, storage.ErrInvalidKey) {
					t.Errorf("%s: %v, want ErrInvalidKey", op, err)
				}
			}
		})
	}
	for _, prefix := range badPrefixes {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			err := s.List(ctx(t), prefix, func(storage.ObjectInfo) error { return nil })
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("List: %v, want ErrInvalidKey", err)
			}
			if err := s.DeletePrefix(ctx(t), prefix); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("DeletePrefix: %v, want ErrInvalidKey", err)
			}
		})
	}
	if got := keys(t, s, ""); !slices.Equal(got, []string{"keep/me"}) {
		t.Fatalf("after invalid calls List = %q, want only keep/me", got)
	}
	if got, _ := mustRead(t, s, "keep/me"); !bytes.Equal(got, keep) {
		t.Fatalf("keep/me changed to %q", got)
	}
}

// second returns the error of a two-value call.
func second[T any](_ T, err error) error { return err }

func testContentType(t *testing.T, s storage.Store) {
	tests := []struct {
		key, ct, want string
	}{
		{"ct/custom.bin", "application/x-lectern", "application/x-lectern"},
		{"ct/params.json", "text/plain; charset=utf-8", "text/plain; charset=utf-8"},
		{"ct/ext.mp4", "", "video/mp4"},
		{"ct/upper.M3U8", "", "application/vnd.apple.mpegurl"},
		{"ct/seg.m4s", "video/iso.segment", "video/iso.segment"},
		{"ct/mismatch.mp4", "audio/mp4", "audio/mp4"},
		{"ct/noext", "", "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			put(t, s, tt.key, []byte("data"), tt.ct)
			st, err := s.Stat(ctx(t), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			_, info := mustRead(t, s, tt.key)
			if st.ContentType != tt.want || info.ContentType != tt.want {
				t.Fatalf("content type: Stat %q, Open %q; want %q", st.ContentType, info.ContentType, tt.want)
			}
		})
	}
	if err := s.Put(ctx(t), "ct/bad", strings.NewReader("x"), 1, "not a type"); err == nil {
		t.Errorf("Put with content type %q succeeded", "not a type")
	}
	// Overwriting with the extension's type drops the custom one.
	put(t, s, "ct/mismatch.mp4", []byte("data2"), "")
	if st, err := s.Stat(ctx(t), "ct/mismatch.mp4"); err != nil || st.ContentType != "video/mp4" {
		t.Fatalf("after overwrite: %+v, %v; want video/mp4", st, err)
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailedPut(t *testing.T, s storage.Store) {
	old := []byte("old content")
	put(t, s, "f/existing", old, "")
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		key  string
		r    func() io.Reader
		size int64
	}{
		{"reader error, unknown size", "f/new1", func() io.Reader { return &failingReader{payload(1000, 7), errBoom} }, -1},
		{"reader error, known size", "f/new2", func() io.Reader { return &failingReader{payload(1000, 7), errBoom} }, 5000},
		{"short body", "f/new3", func() io.Reader { return bytes.NewReader(payload(10, 8)) }, 20},
		{"reader error over existing", "f/existing", func() io.Reader { return &failingReader{payload(1000, 9), errBoom} }, -1},
		{"short body over existing", "f/existing", func() io.Reader { return bytes.NewReader(payload(10, 8)) }, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(ctx(t), tt.key, tt.r(), tt.size, ""); err == nil {
				t.Fatalf("Put succeeded")
			}
		})
	}
	if got := keys(t, s, ""); !slices.Equal(got, []string{"f/existing"}) {
		t.Fatalf("after failed puts List = %q", got)
	}
	if got, _ := mustRead(t, s, "f/existing"); !bytes.Equal(got, old) {
		t.Fatalf("failed put changed existing object to %q", got)
	}
}

func testCancelled(t *testing.T, s storage.Store) {
	put(t, s, "c/x", []byte("x"), "")
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(c, "c/y", strings.NewReader("y"), 1, ""); err == nil {
		t.Errorf("Put with cancelled context succeeded")
	}
	if _, err := s.Stat(c, "c/x"); err == nil {
		t.Errorf("Stat with cancelled context succeeded")
	}
	err := s.List(c, "", func(storage.ObjectInfo) error { return nil })
	if err == nil {
		t.Errorf("List with cancelled context succeeded")
	}
	if got := keys(t, s, ""); !slices.Equal(got, []string{"c/x"}) {
		t.Fatalf("List = %q", got)
	}
}

func testConcurrentPuts(t *testing.T, s storage.Store) {
	const writers, perWriter = 8, 6
	var (
		wg   sync.WaitGroup
		errs = make(chan error, writers*perWriter)
		want []string
	)
	for w := range writers {
		for i := range perWriter {
			// Writers share parent directories to race their creation.
			want = append(want, fmt.Sprintf("cc/shared/%d/w%d-%d", i, w, i))
		}
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("cc/shared/%d/w%d-%d", i, w, i)
				data := payload(2000+w, uint64(w*100+i))
				errs <- s.Put(ctx(t), key, bytes.NewReader(data), -1, "")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	slices.Sort(want)
	if got := keys(t, s, "cc/"); !slices.Equal(got, want) {
		t.Fatalf("List = %q\nwant %q", got, want)
	}
	for w := range writers {
		for i := range perWriter {
			key := fmt.Sprintf("cc/shared/%d/w%d-%d", i, w, i)
			if got, _ := mustRead(t, s, key); !bytes.Equal(got, payload(2000+w, uint64(w*100+i))) {
				t.Errorf("%s: wrong content", key)
			}
		}
	}
}

func testPresign(t *testing.T, s storage.Store) {
	data := payload(4096, 10)
	put(t, s, "ps/obj.mp4", data, "")
	u, err := s.PresignGet(ctx(t), "ps/obj.mp4", time.Minute)
	if _, isDir := s.(*storage.Dir); isDir {
		if !errors.Is(err, storage.ErrNotSupported) || u != "" {
			t.Fatalf("Dir PresignGet: %q, %v; want ErrNotSupported", u, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET presigned URL: %s, %v: %.200s", resp.Status, err, body)
	}
	if !bytes.Equal(body, data) || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("GET presigned URL: %d bytes of type %q", len(body), resp.Header.Get("Content-Type"))
	}
}
