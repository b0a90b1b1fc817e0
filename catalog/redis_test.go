package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"lectern/internal/testenv"
)

// redisClient connects to a real redis-server started for the test.
func redisClient(t *testing.T, srv *testenv.Redis) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Short timeouts and no retries: the tests that stop Redis see the failure
	// at once.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.MaxRetries = time.Second, time.Second, time.Second, -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func openRedis(t *testing.T, cfg RedisConfig) *Catalog {
	t.Helper()
	c, err := OpenRedis(cfg)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	return c
}

// Two nodes' catalogues on one Redis see each other's creates, updates and deletes
// at once, and embeds and device codes likewise.
func TestRedisTwoNodesShareTheCatalogue(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := openRedis(t, RedisConfig{Client: redisClient(t, srv)})
	b := openRedis(t, RedisConfig{Client: redisClient(t, srv)})

	s := mustCreate(t, a, NewSession{Title: "Chuyển đổi số - Bài 1", Listed: true})
	got, err := b.Get(s.ID)
	if err != nil || got.Title != s.Title || !got.CreatedAt.Equal(s.CreatedAt) || !got.Listed {
		t.Fatalf("node B Get(%s) = %+v, %v; want %+v", s.ID, got, err, s)
	}
	if l := b.List(); len(l) != 1 || l[0].ID != s.ID {
		t.Fatalf("node B List = %+v, want the one session", l)
	}
	if _, err := b.Update(s.ID, func(x *Session) error { x.Title = "Bài 1 (đổi lịch)"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(s.ID); got.Title != "Bài 1 (đổi lịch)" {
		t.Fatalf("node A sees title %q after B's update", got.Title)
	}

	now := time.Now()
	e, err := b.AddEmbed(Embed{ID: "e1", Session: s.ID, Recording: "rec1", Label: "Cổng tỉnh", CreatedBy: "admin",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := a.Embed("e1"); !ok || got.Label != e.Label {
		t.Fatalf("node A Embed(e1) = %+v, %v", got, ok)
	}
	hash := fmt.Sprintf("%064x", 7)
	if _, err := a.AddCode(Code{ID: "c1", Hash: hash, Session: s.ID, Role: "site", Name: "hue", CreatedBy: "admin",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.CodeByHash(hash); !ok || got.Name != "hue" {
		t.Fatalf("node B CodeByHash = %+v, %v", got, ok)
	}
	if l := b.Codes(s.ID); len(l) != 1 {
		t.Fatalf("node B Codes = %+v", l)
	}
	// Validation holds across nodes: the code id is taken, whichever node asks.
	if _, err := b.AddCode(Code{ID: "c1", Hash: fmt.Sprintf("%064x", 8), Session: s.ID, Role: "site", Name: "hue",
		CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("node B AddCode with A's code id: %v, want ErrInvalid", err)
	}
	if err := b.DeleteCode(s.ID, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.CodeByHash(hash); ok {
		t.Fatal("node A still resolves a code node B revoked")
	}
	if err := a.DeleteEmbed("rec1", "e1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Embed("e1"); ok {
		t.Fatal("node B still honours an embed node A revoked")
	}

	if err := b.Delete(s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("node A Get of a session B deleted: %v, want ErrNotFound", err)
	}
	if err := a.Delete(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("node A deleting it again: %v, want ErrNotFound", err)
	}
	// A third node opened now reads the same catalogue (it is in Redis, not in
	// either process).
	mustCreate(t, a, NewSession{Title: "Bài 2"})
	if l := openRedis(t, RedisConfig{Client: redisClient(t, srv)}).List(); len(l) != 1 || l[0].Title != "Bài 2" {
		t.Fatalf("a fresh node lists %+v", l)
	}
}

// Changes from two nodes at once are all kept: creates from both, and updates of
// different fields of one session (each applied to the other's result).
func TestRedisConcurrentChangesLoseNothing(t *testing.T) {
	srv := testenv.StartRedis(t)
	nodes := []*Catalog{
		openRedis(t, RedisConfig{Client: redisClient(t, srv)}),
		openRedis(t, RedisConfig{Client: redisClient(t, srv)}),
	}
	shared := mustCreate(t, nodes[0], NewSession{Title: "shared"})
	const perNode = 15
	var wg sync.WaitGroup
	errs := make(chan error, 4*perNode)
	for i, c := range nodes {
		wg.Go(func() {
			for j := range perNode {
				if _, err := c.Create(NewSession{Title: fmt.Sprintf("node %d #%d", i, j)}); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			// Node 0 appends to the description, node 1 flips its own field: both
			// must survive every interleaving.
			for j := range perNode {
				_, err := c.Update(shared.ID, func(s *Session) error {
					if i == 0 {
						s.Description += fmt.Sprintf("[%d]", j)
					} else {
						s.PublicReplays = !s.PublicReplays
					}
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent change: %v", err)
	}
	for i, c := range nodes {
		if l := c.List(); len(l) != 1+2*perNode {
			t.Errorf("node %d lists %d sessions, want %d", i, len(l), 1+2*perNode)
		}
		s, err := c.Get(shared.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		for j := range perNode {
			want += fmt.Sprintf("[%d]", j)
		}
		if s.Description != want {
			t.Errorf("node %d: description %q, want %q (a lost update)", i, s.Description, want)
		}
		if s.PublicReplays != (perNode%2 == 1) {
			t.Errorf("node %d: public_replays %v after %d flips (a lost update)", i, s.PublicReplays, perNode)
		}
	}
}

// Redis down: reads serve the catalogue last read, changes fail with
// ErrUnavailable; Redis back (with its append-only file): everything is there and
// changes work again. A node opened while Redis is down starts, and reads once it
// is back.
func TestRedisOutage(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := openRedis(t, RedisConfig{Client: redisClient(t, srv), Timeout: 2 * time.Second})
	s := mustCreate(t, a, NewSession{Title: "Bài 1"})
	if _, err := a.Get(s.ID); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if got, err := a.Get(s.ID); err != nil || got.Title != "Bài 1" {
		t.Fatalf("Get while Redis is down = %+v, %v; want the copy last read", got, err)
	}
	if _, err := a.Create(NewSession{Title: "Bài 2"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create while Redis is down: %v, want ErrUnavailable", err)
	}
	late := openRedis(t, RedisConfig{Client: redisClient(t, srv), Timeout: 2 * time.Second})
	if _, err := late.Get(s.ID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get on a node that never read the catalogue: %v, want ErrUnavailable", err)
	}
	if l := late.List(); len(l) != 0 {
		t.Fatalf("List on a node that never read the catalogue = %+v", l)
	}

	srv.Restart()
	if got, err := late.Get(s.ID); err != nil || got.Title != "Bài 1" {
		t.Fatalf("late node after Redis came back: %+v, %v", got, err)
	}
	b := mustCreate(t, a, NewSession{Title: "Bài 2"})
	if _, err := late.Get(b.ID); err != nil {
		t.Fatalf("late node Get of a session created after the outage: %v", err)
	}
}

// A node turning clustered copies its local sessions into an empty shared
// catalogue; a catalogue already written is left as it is.
func TestRedisSeed(t *testing.T) {
	dir := t.TempDir()
	local, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustCreate(t, local, NewSession{Title: "từ máy đơn"})
	srv := testenv.StartRedis(t)
	a := openRedis(t, RedisConfig{Client: redisClient(t, srv), Seed: dir})
	if got, err := a.Get(s.ID); err != nil || got.Title != s.Title {
		t.Fatalf("seeded Get = %+v, %v", got, err)
	}
	other := t.TempDir()
	o, err := Open(other)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, o, NewSession{Title: "another node's"})
	b := openRedis(t, RedisConfig{Client: redisClient(t, srv), Seed: other})
	if l := b.List(); len(l) != 1 || l[0].ID != s.ID {
		t.Fatalf("a second seed changed the shared catalogue: %+v", l)
	}
}

// Entries written by something else that break the rules are refused with the key
// named, as a corrupt file is; another layout version too.
func TestRedisCorrupt(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redisClient(t, srv)
	ctx := context.Background()
	if err := rdb.HSet(ctx, DefaultRedisPrefix+"sessions", "abcdefghij", `{"id":"abcdefghij","title":""}`).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRedis(RedisConfig{Client: rdb}); err == nil || !strings.Contains(err.Error(), "sessions is corrupt") {
		t.Fatalf("OpenRedis on a corrupt session: %v", err)
	}
	rdb.FlushAll(ctx)
	rdb.Set(ctx, DefaultRedisPrefix+"format", "9", 0)
	if _, err := OpenRedis(RedisConfig{Client: rdb}); err == nil || !strings.Contains(err.Error(), `format is "9"`) {
		t.Fatalf("OpenRedis on another layout: %v", err)
	}
	// A prefix keeps two catalogues apart in one Redis.
	rdb.FlushAll(ctx)
	x := openRedis(t, RedisConfig{Client: rdb, Prefix: "x:"})
	y := openRedis(t, RedisConfig{Client: rdb, Prefix: "y:"})
	mustCreate(t, x, NewSession{Title: "x"})
	if l := y.List(); len(l) != 0 {
		t.Fatalf("prefix y lists %+v", l)
	}
	if _, err := OpenRedis(RedisConfig{}); err == nil {
		t.Fatal("OpenRedis without a client succeeded")
	}
}

// BenchmarkGet: a session read from the file catalogue (memory) and from the one
// shared in Redis (one GET of the change counter per read, over loopback).
func BenchmarkGet(b *testing.B) {
	file, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv := testenv.StartRedis(b)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { _ = rdb.Close() })
	shared, err := OpenRedis(RedisConfig{Client: rdb})
	if err != nil {
		b.Fatal(err)
	}
	for name, c := range map[string]*Catalog{"file": file, "redis": shared} {
		s, err := c.Create(NewSession{Title: "Bài 1"})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(s.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
