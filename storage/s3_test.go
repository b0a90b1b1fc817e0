package storage_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"lectern/internal/testenv"
	"lectern/storage"
	"lectern/storage/storetest"
)

// newS3 returns an S3 store on m in a fresh bucket.
func newS3(t *testing.T, m *testenv.MinIO, prefix string) *storage.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := storage.NewS3(ctx, storage.S3Config{
		Endpoint:     m.Endpoint,
		Bucket:       testenv.NewBucketName(t),
		AccessKey:    m.AccessKey,
		SecretKey:    m.SecretKey,
		PathStyle:    true,
		CreateBucket: true,
		Prefix:       prefix,
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestS3(t *testing.T) {
	m := testenv.StartMinIO(t)
	t.Run("NoPrefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storage.Store { return newS3(t, m, "") })
	})
	t.Run("Prefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storage.Store { return newS3(t, m, "deploy/a") })
	})
	t.Run("PrefixIsolation", func(t *testing.T) { testS3PrefixIsolation(t, m) })
	t.Run("BigUnknownSize", func(t *testing.T) { testS3Multipart(t, m) })
	t.Run("NewS3Errors", func(t *testing.T) { testNewS3Errors(t, m) })
}

// testS3PrefixIsolation checks that two stores with different prefixes
// in one bucket do not see each other's objects.
func testS3PrefixIsolation(t *testing.T, m *testenv.MinIO) {
	ctx := t.Context()
	a := newS3(t, m, "a/")
	cfg := storage.S3Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, PathStyle: true, Prefix: "b"}
	cfg.Bucket = bucketOf(t, a)
	b, err := storage.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Put(ctx, "x", strings.NewReader("a"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "x", strings.NewReader("b"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.DeletePrefix(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("b/x after DeletePrefix: %v", err)
	}
	st, err := a.Stat(ctx, "x")
	if err != nil || st.Key != "x" || st.Size != 1 {
		t.Fatalf("a/x: %+v, %v", st, err)
	}
}

// bucketOf finds the bucket of a store made by newS3 through a presigned
// URL, which has the path-style form http://host/bucket/prefix/key?...
func bucketOf(t *testing.T, s *storage.S3) string {
	t.Helper()
	u, err := s.PresignGet(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(strings.TrimPrefix(u, "http://"), "/")
	bucket, _, _ := strings.Cut(rest, "/")
	return bucket
}

// testS3Multipart puts an object of unknown size larger than one part.
func testS3Multipart(t *testing.T, m *testenv.MinIO) {
	ctx := t.Context()
	s := newS3(t, m, "")
	const size = storage.DefaultS3PartSize + 1<<20
	if err := s.Put(ctx, "big", io.LimitReader(zeros{}, size), -1, ""); err != nil {
		t.Fatal(err)
	}
	rc, info, err := s.Open(ctx, "big", storage.DefaultS3PartSize-10, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || len(b) != 20 || info.Size != size {
		t.Fatalf("ranged read across parts: %d bytes, size %d, %v", len(b), info.Size, err)
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func testNewS3Errors(t *testing.T, m *testenv.MinIO) {
	good := storage.S3Config{
		Endpoint: m.Endpoint, Bucket: testenv.NewBucketName(t),
		AccessKey: m.AccessKey, SecretKey: m.SecretKey, PathStyle: true,
	}
	tests := []struct {
		name   string
		modify func(*storage.S3Config)
	}{
		{"missing bucket without CreateBucket", func(*storage.S3Config) {}},
		{"no endpoint", func(c *storage.S3Config) { c.Endpoint = "" }},
		{"no bucket", func(c *storage.S3Config) { c.Bucket = "" }},
		{"bad secret", func(c *storage.S3Config) { c.SecretKey = "wrong-secret"; c.CreateBucket = true }},
		{"invalid prefix", func(c *storage.S3Config) { c.Prefix = "../x" }},
		{"small part size", func(c *storage.S3Config) { c.PartSize = 1 << 20 }},
		{"invalid bucket name", func(c *storage.S3Config) { c.Bucket = "Not_Valid"; c.CreateBucket = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.modify(&cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := storage.NewS3(ctx, cfg)
			if err == nil {
				s.Close()
				t.Fatalf("NewS3 succeeded")
			}
			t.Log(err)
		})
	}
}

// TestS3Restart stops the server under a store and checks that calls fail
// while it is down and work again, with the data intact, after a restart.
func TestS3Restart(t *testing.T) {
	m := testenv.StartMinIO(t)
	s := newS3(t, m, "")
	ctx := t.Context()
	if err := s.Put(ctx, "rec/seg-1.m4s", strings.NewReader("segment"), 7, ""); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := s.Stat(short, "rec/seg-1.m4s")
	cancel()
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat while MinIO is down: %v, want a connection error", err)
	}
	m.Start()
	rc, info, err := s.Open(ctx, "rec/seg-1.m4s", 0, -1)
	if err != nil {
		t.Fatalf("Open after restart: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "segment" || info.ContentType != "video/iso.segment" {
		t.Fatalf("after restart: %q, %+v, %v", b, info, err)
	}
}
