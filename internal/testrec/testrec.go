// Package testrec holds the fixtures that the recorder's and the web layer's
// tests share: the lecture clip they publish and record, and the stores they
// record into (a local Dir, a bucket on a real MinIO). It is a package of its
// own, not part of testenv, because storage's tests use testenv and testrec
// uses storage.
package testrec

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/storage"
)

var (
	lectureOnce sync.Once
	lecture     *clip.Clip
	lectureErr  error
)

// LectureClip returns a 20 s 640x360 30 fps H.264 (keyframe every 2 s) + Opus
// clip made by ffmpeg, made once per test binary and cached across runs in the
// system temp directory.
func LectureClip(t testing.TB) *clip.Clip {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	lectureOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		lecture, lectureErr = clip.Generate(ctx, filepath.Join(os.TempDir(), "lectern-test-clips"),
			clip.Options{Width: 640, Height: 360, FPS: 30, Bitrate: 1_000_000, Duration: 20 * time.Second, GOP: 60})
	})
	if lectureErr != nil {
		t.Fatal(lectureErr)
	}
	return lecture
}

// DirStore returns a local Dir store in a temp directory, closed at the end of
// the test.
func DirStore(t testing.TB) *storage.Dir {
	t.Helper()
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// MinIOStore starts a real MinIO and returns an S3 store on a fresh bucket,
// closed at the end of the test, and the MinIO (to stop and restart it).
func MinIOStore(t testing.TB) (*storage.S3, *testenv.MinIO) {
	t.Helper()
	m := testenv.StartMinIO(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := storage.NewS3(ctx, storage.S3Config{Endpoint: m.Endpoint, Bucket: testenv.NewBucketName(t),
		AccessKey: m.AccessKey, SecretKey: m.SecretKey, PathStyle: true, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}
