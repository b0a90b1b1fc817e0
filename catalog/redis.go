package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The shared catalogue of a cluster lives in Redis, which the nodes already need as
// their coordinator. Redis rather than the object store because every node must see
// another's change at the next request (a session created on one node is joined on
// another a second later), which one GET of a counter per read gives at sub-
// millisecond cost, while an object store's reads are slower and its listing only
// eventually consistent; the writes are rare and small, and Redis with its append-only
// file (appendonly yes) keeps them across restarts. Layout, under a prefix:
//
//	<prefix>format    "1": the layout version; another one is refused, as the file's
//	<prefix>version   change counter, INCR'd by every change
//	<prefix>sessions  hash: session id -> Session JSON
//	<prefix>embeds    hash: embed id -> Embed JSON
//	<prefix>codes     hash: code hash -> Code JSON
//
// A change is an optimistic transaction: WATCH the counter, read, apply, MULTI the
// differences and the INCR, EXEC; a change from another node in between fails the
// EXEC and the change is applied again to the fresh catalogue, so none is lost.

// ErrUnavailable: the shared catalogue (Redis) cannot be reached. Changes fail with
// it; reads use the catalogue last read, and fail with it only when none was read.
var ErrUnavailable = errors.New("catalog: shared store (Redis) unavailable")

// DefaultRedisPrefix is the key prefix of the shared catalogue.
const DefaultRedisPrefix = "lectern:catalog:"

// redisFormat is the layout version written to <prefix>format.
const redisFormat = "1"

// maxTxAttempts bounds the retries of a change that keeps meeting concurrent changes
// from other nodes (admins creating sessions at once: a few retries at most).
const maxTxAttempts = 32

// RedisConfig configures a catalogue shared in Redis.
type RedisConfig struct {
	// Client is the Redis connection (the cluster coordinator's); required. The
	// Catalog does not close it.
	Client *redis.Client
	// Prefix prefixes every key; default DefaultRedisPrefix.
	Prefix string
	// Timeout bounds each read and each change; default 3 s.
	Timeout time.Duration
	// Seed, when set, is a directory whose sessions.json is copied in when the
	// shared catalogue has never been written (and Redis is reachable at open):
	// a single node becoming the first node of a cluster keeps its sessions. The
	// file is only read.
	Seed string
	// Logger reports Redis becoming unreachable and reachable again.
	Logger *slog.Logger
}

// redisStore is the Redis side of a Catalog.
type redisStore struct {
	rdb     *redis.Client
	prefix  string
	timeout time.Duration
	seed    *contents // nil: nothing to seed
	log     *slog.Logger
	down    atomic.Bool // the last attempt failed (logged once per outage)
	// While Redis is down, reads serve the copy held without asking Redis, but
	// for one probe at a time and at most every downRetry: a Redis that does not
	// answer at all (a partition) would otherwise hold every request up to the
	// timeout.
	retryAt atomic.Int64 // unix nanoseconds
	probing atomic.Bool
}

// downRetry is how often reads probe a Redis that failed.
const downRetry = time.Second

// OpenRedis returns a catalogue shared through Redis. It reads the catalogue now
// (seeding it from cfg.Seed when it was never written); when Redis cannot be reached
// it still returns the Catalog, whose reads retry and whose changes fail with
// ErrUnavailable until Redis is back, as the cluster coordinator does. A catalogue
// in Redis that is corrupt or of another layout version is an error.
func OpenRedis(cfg RedisConfig) (*Catalog, error) {
	if cfg.Client == nil {
		return nil, errors.New("catalog: RedisConfig.Client is required")
	}
	r := &redisStore{rdb: cfg.Client, prefix: cfg.Prefix, timeout: cfg.Timeout, log: cfg.Logger}
	if r.prefix == "" {
		r.prefix = DefaultRedisPrefix
	}
	if r.timeout <= 0 {
		r.timeout = 3 * time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Seed != "" {
		f, err := load(cfg.Seed + "/" + FileName)
		if err != nil {
			return nil, err
		}
		if len(f.sessions) > 0 {
			r.seed = &f
		}
	}
	c := &Catalog{now: time.Now, red: r}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	ct, err := r.read(ctx, r.rdb)
	switch {
	case errors.Is(err, ErrUnavailable):
		r.failed(err)
		return c, nil
	case err != nil:
		return nil, err
	}
	if ct.version == 0 && r.seed != nil {
		if err := r.change(c, ctx, ct, func(next *contents, _ time.Time) error {
			if len(next.sessions) > 0 {
				return nil // another node seeded it first
			}
			*next = *r.seed.clone()
			return nil
		}); err != nil {
			return nil, err
		}
		r.log.Info("catalog: copied the local sessions into the shared catalogue", "sessions", len(r.seed.sessions))
		return c, nil
	}
	c.cur.Store(ct)
	return c, nil
}

func (r *redisStore) key(name string) string { return r.prefix + name }

// failed records a Redis failure, logging the first of an outage.
func (r *redisStore) failed(err error) {
	r.retryAt.Store(time.Now().Add(downRetry).UnixNano())
	if !r.down.Swap(true) {
		r.log.Warn("catalog: shared catalogue unreachable; serving the copy last read", "err", err)
	}
}

// reached records a Redis success, logging the end of an outage.
func (r *redisStore) reached() {
	if r.down.Swap(false) {
		r.log.Info("catalog: shared catalogue reachable again")
	}
}

// view returns the shared catalogue as of now: the snapshot held if the change
// counter says it is current, else a fresh read. Redis unreachable: the snapshot.
func (r *redisStore) view(c *Catalog) (*contents, error) {
	held := c.cur.Load()
	if held != nil && r.down.Load() {
		if time.Now().UnixNano() < r.retryAt.Load() || !r.probing.CompareAndSwap(false, true) {
			return held, nil
		}
		defer r.probing.Store(false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	v, err := r.version(ctx, r.rdb)
	if err == nil && held != nil && held.version == v {
		r.reached()
		return held, nil
	}
	if err == nil {
		c.mu.Lock() // one reload at a time; a change in progress finishes first
		defer c.mu.Unlock()
		if held = c.cur.Load(); held != nil && held.version == v {
			return held, nil // reloaded (or changed) meanwhile
		}
		var ct *contents
		if ct, err = r.read(ctx, r.rdb); err == nil {
			r.reached()
			c.cur.Store(ct)
			return ct, nil
		}
		if !errors.Is(err, ErrUnavailable) {
			// Corrupt data written by something else: keep serving what was read
			// before rather than lose every session.
			r.log.Error("catalog: shared catalogue unreadable; serving the copy last read", "err", err)
			if held != nil {
				return held, nil
			}
			return nil, err
		}
	}
	r.failed(err)
	if held != nil {
		return held, nil
	}
	return nil, err
}

// version reads the change counter (0: never written).
func (r *redisStore) version(ctx context.Context, rc redis.Cmdable) (int64, error) {
	v, err := rc.Get(ctx, r.key("version")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(err)
	}
	return v, nil
}

// read reads the whole catalogue in one pipeline and checks every entry as Open
// checks the file. Inside a WATCH the pipeline is not atomic, but a change landing
// in between changes the counter and fails the EXEC that follows.
func (r *redisStore) read(ctx context.Context, rc redis.Cmdable) (*contents, error) {
	var format, version *redis.StringCmd
	var sessions, embeds, codes *redis.MapStringStringCmd
	_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		format, version = p.Get(ctx, r.key("format")), p.Get(ctx, r.key("version"))
		sessions, embeds, codes = p.HGetAll(ctx, r.key("sessions")), p.HGetAll(ctx, r.key("embeds")), p.HGetAll(ctx, r.key("codes"))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	if f, err := format.Result(); err == nil && f != redisFormat {
		return nil, fmt.Errorf("catalog: %sformat is %q, this build reads %q", r.prefix, f, redisFormat)
	}
	ct := &contents{sessions: map[string]Session{}, embeds: map[string]Embed{}, codes: map[string]Code{}}
	if s, err := version.Result(); err == nil {
		if ct.version, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("catalog: %sversion is corrupt: %q", r.prefix, s)
		}
	}
	for id, raw := range sessions.Val() {
		var s Session
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("catalog: %ssessions is corrupt: session %q: %w", r.prefix, id, err)
		}
		if err := checkStored(&s, ct.sessions); err != nil || s.ID != id {
			return nil, fmt.Errorf("catalog: %ssessions is corrupt: session %q: %v", r.prefix, id, cmpErr(err, "its id differs"))
		}
		ct.sessions[id] = s
	}
	for id, raw := range embeds.Val() {
		var e Embed
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("catalog: %sembeds is corrupt: embed %q: %w", r.prefix, id, err)
		}
		if err := e.check(); err != nil || e.ID != id {
			return nil, fmt.Errorf("catalog: %sembeds is corrupt: embed %q: %v", r.prefix, id, cmpErr(err, "its id differs"))
		}
		ct.embeds[id] = e
	}
	for hash, raw := range codes.Val() {
		var code Code
		if err := json.Unmarshal([]byte(raw), &code); err != nil {
			return nil, fmt.Errorf("catalog: %scodes is corrupt: device code %q: %w", r.prefix, hash, err)
		}
		if err := code.check(); err != nil || code.Hash != hash {
			return nil, fmt.Errorf("catalog: %scodes is corrupt: device code %q: %v", r.prefix, code.ID, cmpErr(err, "its hash differs"))
		}
		ct.codes[hash] = code
	}
	return ct, nil
}

// cmpErr returns err's text, or otherwise when err is nil.
func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// fnError carries an error of the change itself (not of Redis) out of the WATCH.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// mutate applies fn to the shared catalogue (Catalog.mutate; c.mu is held).
func (r *redisStore) mutate(c *Catalog, fn func(ct *contents, now time.Time) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	return r.change(c, ctx, c.cur.Load(), fn)
}

// change runs the optimistic transaction; held (may be nil) is the snapshot held,
// reused when the counter says it is current. On success the result becomes c.cur.
func (r *redisStore) change(c *Catalog, ctx context.Context, held *contents, fn func(ct *contents, now time.Time) error) error {
	for range maxTxAttempts {
		var next *contents
		err := r.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur := held
			v, err := r.version(ctx, tx)
			if err != nil {
				return err
			}
			if cur == nil || cur.version != v {
				if cur, err = r.read(ctx, tx); err != nil {
					return err
				}
			}
			next = cur.clone()
			if err := fn(next, c.now()); err != nil {
				return fnError{err}
			}
			var incr *redis.IntCmd
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if err := r.writeDiff(ctx, p, cur, next); err != nil {
					return err
				}
				p.Set(ctx, r.key("format"), redisFormat, 0)
				incr = p.Incr(ctx, r.key("version"))
				return nil
			})
			if err != nil {
				return err
			}
			next.version = incr.Val()
			return nil
		}, r.key("version"))
		var fe fnError
		switch {
		case err == nil:
			r.reached()
			c.cur.Store(next)
			return nil
		case errors.As(err, &fe):
			return fe.err
		case errors.Is(err, redis.TxFailedErr):
			held = nil // another node changed it: read it again
			continue
		case errors.Is(err, ErrUnavailable):
			r.failed(err)
			return err
		case ctx.Err() != nil || isNetError(err):
			r.failed(err)
			return unavailable(err)
		default:
			return fmt.Errorf("catalog: changing the shared catalogue: %w", err)
		}
	}
	return fmt.Errorf("%w: %d changes from other nodes in a row; try again", ErrUnavailable, maxTxAttempts)
}

// isNetError tells a Redis connection failure from a Redis error reply.
func isNetError(err error) bool {
	var re redis.Error
	return !errors.As(err, &re)
}

// writeDiff queues, in p, the writes that turn cur into next.
func (r *redisStore) writeDiff(ctx context.Context, p redis.Pipeliner, cur, next *contents) error {
	if err := diffHash(ctx, p, r.key("sessions"), cur.sessions, next.sessions); err != nil {
		return err
	}
	if err := diffHash(ctx, p, r.key("embeds"), cur.embeds, next.embeds); err != nil {
		return err
	}
	return diffHash(ctx, p, r.key("codes"), cur.codes, next.codes)
}

// diffHash queues HSET of the entries of next new or different from cur's, and HDEL
// of cur's entries gone from next.
func diffHash[V any](ctx context.Context, p redis.Pipeliner, key string, cur, next map[string]V) error {
	var set []any
	for k, v := range next {
		nv, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("catalog: encoding %s %q: %w", key, k, err)
		}
		if old, ok := cur[k]; ok {
			if ov, err := json.Marshal(old); err == nil && bytes.Equal(ov, nv) {
				continue
			}
		}
		set = append(set, k, string(nv))
	}
	var del []string
	for k := range cur {
		if _, ok := next[k]; !ok {
			del = append(del, k)
		}
	}
	if len(set) > 0 {
		p.HSet(ctx, key, set...)
	}
	if len(del) > 0 {
		p.HDel(ctx, key, del...)
	}
	return nil
}
