package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultS3PartSize is the multipart upload part size [S3] uses when
// [S3Config.PartSize] is zero. Put of an object of unknown size buffers one
// part in memory at a time; minio-go's own default for that case is about
// 537 MiB, far too much per concurrent recording.
const DefaultS3PartSize = 16 << 20

// minS3PartSize is the smallest part S3 accepts (but for the last one).
const minS3PartSize = 5 << 20

// S3Config configures [NewS3].
type S3Config struct {
	// Endpoint is the server's host[:port], without scheme, e.g.
	// "127.0.0.1:9000" or "s3.eu-west-1.amazonaws.com". Required.
	Endpoint string
	// Bucket holds the objects. Required.
	Bucket string
	// AccessKey and SecretKey are static credentials (S3 signature v4).
	AccessKey string
	SecretKey string
	// Region of the bucket. Empty lets the client discover it, and creates
	// missing buckets in "us-east-1".
	Region string
	// UseTLS selects https instead of http.
	UseTLS bool
	// PathStyle forces path-style requests (http://host/bucket/key), as
	// most self-hosted servers need. When false the client picks
	// virtual-host style for AWS and path style elsewhere.
	PathStyle bool
	// CreateBucket makes NewS3 create Bucket when it does not exist. When
	// false, a missing bucket is an error.
	CreateBucket bool
	// Prefix is prepended to every key, so several deployments can share a
	// bucket. Optional; a missing trailing "/" is added. Keys reported by
	// the store never include it.
	Prefix string
	// PartSize is the multipart upload part size in bytes. It defaults to
	// DefaultS3PartSize and must be at least 5 MiB.
	PartSize uint64
}

// S3 is a [Store] backed by an S3-compatible bucket. ETags are the
// server's (quoted); ModTime has the server's one-second precision.
//
// minio-go retries failed requests with backoff, so when the server is
// briefly unreachable calls take longer and then fail; bound them with the
// ctx deadline. Put of a non-seekable reader cannot be retried.
type S3 struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	bucket    string
	prefix    string
	partSize  uint64
}

// NewS3 connects to the server, checks that the bucket exists (creating it
// when cfg.CreateBucket is set) and returns the store. ctx bounds these
// start-up requests only. Close the store to release idle connections.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	transport, err := minio.DefaultTransport(cfg.UseTLS)
	if err != nil {
		return nil, fmt.Errorf("storage: s3: %w", err)
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.UseTLS,
		Transport:    transport,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: s3 endpoint %q: %w", cfg.Endpoint, err)
	}
	s := &S3{
		client:    client,
		core:      minio.Core{Client: client},
		transport: transport,
		bucket:    cfg.Bucket,
		prefix:    cfg.Prefix,
		partSize:  cfg.PartSize,
	}
	if err := s.ensureBucket(ctx, cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// fill validates the configuration and applies defaults.
func (c *S3Config) fill() error {
	switch {
	case c.Endpoint == "":
		return errors.New("storage: s3: Endpoint is required")
	case c.Bucket == "":
		return errors.New("storage: s3: Bucket is required")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if err := validatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("storage: s3: Prefix: %w", err)
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultS3PartSize
	}
	if c.PartSize < minS3PartSize {
		return fmt.Errorf("storage: s3: PartSize %d is below the 5 MiB minimum", c.PartSize)
	}
	return nil
}

// ensureBucket checks that the bucket exists, creating it if allowed.
func (s *S3) ensureBucket(ctx context.Context, cfg S3Config) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("storage: s3 bucket %q at %s: %w", s.bucket, cfg.Endpoint, err)
	}
	if exists {
		return nil
	}
	if !cfg.CreateBucket {
		return fmt.Errorf("storage: s3 bucket %q at %s does not exist (and CreateBucket is off)", s.bucket, cfg.Endpoint)
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: cfg.Region})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return fmt.Errorf("storage: s3 create bucket %q at %s: %w", s.bucket, cfg.Endpoint, err)
	}
	return nil
}

// Close releases idle connections to the server. Requests still running
// are not interrupted; the store must not be used afterwards.
func (s *S3) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Put implements [Store.Put]. Objects up to the part size are uploaded with
// one request; larger or unknown-size ones as a multipart upload that the
// server assembles atomically.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	ct, err := resolveContentType(key, contentType)
	if err != nil {
		return err
	}
	if size < 0 {
		size = -1
	} else if err := checkRemaining(r, size); err != nil {
		return fmt.Errorf("storage: put %q: %w", key, err)
	}
	_, err = s.client.PutObject(ctx, s.bucket, s.prefix+key, r, size, minio.PutObjectOptions{
		ContentType: ct,
		PartSize:    s.partSize,
	})
	if err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// checkRemaining fails when r is seekable and holds fewer than size bytes.
// minio-go would otherwise send the short body, fail, and retry it (a
// seekable body counts as retryable) with backoff for seconds.
func checkRemaining(r io.Reader, size int64) error {
	sk, ok := r.(io.Seeker)
	if !ok {
		return nil
	}
	cur, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil // not really seekable; let the upload find out
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if _, serr := sk.Seek(cur, io.SeekStart); serr != nil {
		return serr
	}
	if err == nil && end-cur < size {
		return fmt.Errorf("body holds %d of %d bytes: %w", end-cur, size, io.ErrUnexpectedEOF)
	}
	return nil
}

// Open implements [Store.Open] with one ranged GET, so a missing key fails
// here rather than on the first Read.
func (s *S3) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	if offset < 0 || length < -1 {
		return nil, ObjectInfo{}, fmt.Errorf("storage: open %q: %w: offset %d length %d", key, ErrInvalidRange, offset, length)
	}
	if length == 0 { // HTTP cannot ask for zero bytes
		return s.openEmpty(ctx, key, offset)
	}
	var opts minio.GetObjectOptions
	switch {
	case offset == 0 && length < 0:
		// whole object, no Range header
	case length < 0:
		_ = opts.SetRange(offset, 0) // "bytes=offset-"; offset > 0 here
	default:
		_ = opts.SetRange(offset, offset+length-1)
	}
	body, oi, _, err := s.core.GetObject(ctx, s.bucket, s.prefix+key, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.InvalidRange {
			// Offset at or beyond the end (or an empty object): decide which.
			return s.openEmpty(ctx, key, offset)
		}
		return nil, ObjectInfo{}, s.wrap("open", key, err)
	}
	info := s.objectInfo(oi)
	if total, ok := contentRangeTotal(oi.Headers.Get("Content-Range")); ok {
		info.Size = total
	}
	return body, info, nil
}

// openEmpty serves a read of no bytes at offset, after checking that the
// object exists and offset is within it.
func (s *S3) openEmpty(ctx context.Context, key string, offset int64) (io.ReadCloser, ObjectInfo, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if _, err := clipRange(offset, 0, info.Size); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("storage: open %q: %w", key, err)
	}
	return io.NopCloser(strings.NewReader("")), info, nil
}

// contentRangeTotal parses the complete length from a Content-Range header
// such as "bytes 0-9/100" (RFC 9110 section 14.4).
func contentRangeTotal(h string) (int64, bool) {
	_, total, ok := strings.Cut(h, "/")
	if !ok || !strings.HasPrefix(h, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil
}

// Stat implements [Store.Stat].
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.wrap("stat", key, err)
	}
	return s.objectInfo(oi), nil
}

// List implements [Store.List]. Objects whose names are not valid keys
// (such as "folder/" markers made by other tools) are skipped.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	return s.list(ctx, prefix, func(oi minio.ObjectInfo) error {
		info := s.objectInfo(oi)
		if keyProblem(info.Key) != "" {
			return nil
		}
		return fn(info)
	})
}

// list calls fn for each object below prefix (prefixed with s.prefix).
// It always drains the listing so that minio-go's goroutine ends.
func (s *S3) list(ctx context.Context, prefix string, fn func(minio.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true})
	var err error
	for oi := range ch {
		if err != nil {
			continue // draining after cancel
		}
		if oi.Err != nil {
			err = fmt.Errorf("storage: list %q: %w", prefix, oi.Err)
		} else {
			err = fn(oi)
		}
		if err != nil {
			cancel()
		}
	}
	return err
}

// Delete implements [Store.Delete].
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return s.wrap("delete", key, err)
	}
	return nil
}

// deleteBatch is how many keys DeletePrefix removes per request (the S3
// maximum for DeleteObjects).
const deleteBatch = 1000

// DeletePrefix implements [Store.DeletePrefix] with batched multi-object
// deletes while listing.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	batch := make([]minio.ObjectInfo, 0, deleteBatch)
	err := s.list(ctx, prefix, func(oi minio.ObjectInfo) error {
		batch = append(batch, minio.ObjectInfo{Key: oi.Key})
		if len(batch) < deleteBatch {
			return nil
		}
		err := s.removeObjects(ctx, batch)
		batch = batch[:0]
		return err
	})
	if err == nil && len(batch) > 0 {
		err = s.removeObjects(ctx, batch)
	}
	if err != nil {
		return fmt.Errorf("storage: delete prefix %q: %w", prefix, err)
	}
	return nil
}

// removeObjects deletes the named objects and returns the first failure.
func (s *S3) removeObjects(ctx context.Context, objs []minio.ObjectInfo) error {
	ch := make(chan minio.ObjectInfo, len(objs))
	for _, o := range objs {
		ch <- o
	}
	close(ch)
	var first error
	for rerr := range s.client.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
		if first == nil && rerr.Err != nil {
			first = fmt.Errorf("%s: %w", rerr.ObjectName, rerr.Err)
		}
	}
	return first
}

// PresignGet implements [Store.PresignGet] with a signature v4 query
// string; expiry must be between one second and seven days. The object's
// existence is not checked.
func (s *S3) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.prefix+key, expiry, nil)
	if err != nil {
		return "", s.wrap("presign", key, err)
	}
	return u.String(), nil
}

// objectInfo converts minio-go's description, removing the store prefix
// and quoting the ETag.
func (s *S3) objectInfo(oi minio.ObjectInfo) ObjectInfo {
	etag := strings.Trim(oi.ETag, `"`)
	if etag != "" {
		etag = `"` + etag + `"`
	}
	return ObjectInfo{
		Key:         strings.TrimPrefix(oi.Key, s.prefix),
		Size:        oi.Size,
		ModTime:     oi.LastModified,
		ETag:        etag,
		ContentType: oi.ContentType,
	}
}

// wrap adds context to a minio-go error and maps "no such key" to
// ErrNotFound. The original error stays reachable with errors.As.
func (s *S3) wrap(op, key string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == minio.NoSuchKey ||
		(resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket)) {
		return fmt.Errorf("storage: %s %q: %w: %w", op, key, ErrNotFound, err)
	}
	return fmt.Errorf("storage: %s %q: %w", op, key, err)
}
