package catalog

import (
	"errors"
	"testing"
	"time"

	"lectern/internal/testenv"
)

// TestListedPersists: a session is unlisted unless created listed, and the flag
// survives a restart.
func TestListedPersists(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	hidden := mustCreate(t, c, NewSession{Title: "Nội bộ"})
	shown := mustCreate(t, c, NewSession{Title: "Công khai", Listed: true})
	if hidden.Listed || !shown.Listed {
		t.Fatalf("listed: %v %v", hidden.Listed, shown.Listed)
	}
	c2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c2.Get(shown.ID); !got.Listed {
		t.Error("listed lost across a restart")
	}
	if got, _ := c2.Get(hidden.ID); got.Listed {
		t.Error("unlisted session listed after a restart")
	}
}

// TestEmbeds: embed records are stored, listed per recording, survive a restart,
// expire, are revoked one by one, and go with their session.
func TestEmbeds(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	s := mustCreate(t, c, NewSession{Title: "Bài 1"})
	const rec = "rec-1"
	mk := func(id string, ttl time.Duration) Embed {
		return Embed{ID: id, Session: s.ID, Recording: rec, Label: " Cổng đào tạo ", CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(ttl)}
	}
	if _, err := c.AddEmbed(mk("a", 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddEmbed(mk("b", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddEmbed(mk("a", time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate id: %v", err)
	}
	if _, err := c.AddEmbed(Embed{ID: "x", Session: "zzzzzzzzzz", Recording: rec, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	if _, err := c.AddEmbed(Embed{ID: "y", Session: s.ID, Recording: rec, Label: "a\u202eb", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("label with a bidi control: %v", err)
	}
	if e, ok := c.Embed("a"); !ok || e.Label != "Cổng đào tạo" || e.Recording != rec {
		t.Fatalf("Embed(a) = %+v, %v", e, ok)
	}
	if got := c.Embeds(rec); len(got) != 2 {
		t.Fatalf("Embeds = %+v", got)
	}

	c2, err := Open(dir) // a restart keeps them
	if err != nil {
		t.Fatal(err)
	}
	c2.now = func() time.Time { return now.Add(2 * time.Hour) } // b has expired
	if _, ok := c2.Embed("b"); ok {
		t.Error("an expired embed is still honoured")
	}
	if got := c2.Embeds(rec); len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("after a restart and b's expiry: %+v", got)
	}
	if err := c2.DeleteEmbed("other-recording", "a"); !errors.Is(err, ErrEmbedNotFound) {
		t.Errorf("revoking through another recording: %v", err)
	}
	if err := c2.DeleteEmbed(rec, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Embed("a"); ok {
		t.Error("a revoked embed is still honoured")
	}
	if err := c2.DeleteEmbed(rec, "a"); !errors.Is(err, ErrEmbedNotFound) || !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}

	if _, err := c2.AddEmbed(mk("c", 24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c2.Delete(s.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Embed("c"); ok {
		t.Error("an embed outlived its session")
	}
}

// TestDeleteEmbedsOfRecording: DeleteEmbeds removes every embed record of one
// recording (expired ones too) and no other, for good (after a restart, and on
// another node sharing the catalogue in Redis); a recording without any is no error.
func TestDeleteEmbedsOfRecording(t *testing.T) {
	check := func(t *testing.T, c, other *Catalog, reopen func() *Catalog) {
		now := time.Now().UTC()
		s := mustCreate(t, c, NewSession{Title: "Bài 1"})
		for _, e := range []struct {
			id, rec string
			ttl     time.Duration
		}{{"a1", "rec-a", time.Hour}, {"a2", "rec-a", 24 * time.Hour}, {"b1", "rec-b", time.Hour}} {
			if _, err := c.AddEmbed(Embed{ID: e.id, Session: s.ID, Recording: e.rec, CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(e.ttl)}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := c.DeleteEmbeds("rec-a"); n != 2 || err != nil {
			t.Fatalf("DeleteEmbeds(rec-a) = %d, %v; want 2", n, err)
		}
		for _, cc := range []*Catalog{c, other, reopen()} {
			if got := cc.Embeds("rec-a"); len(got) != 0 {
				t.Errorf("rec-a's embeds left: %+v", got)
			}
			if _, ok := cc.Embed("a1"); ok {
				t.Error("a1 still honoured")
			}
			if got := cc.Embeds("rec-b"); len(got) != 1 || got[0].ID != "b1" {
				t.Errorf("rec-b's embeds: %+v", got)
			}
		}
		if n, err := c.DeleteEmbeds("rec-a"); n != 0 || err != nil {
			t.Errorf("DeleteEmbeds again = %d, %v", n, err)
		}
		if n, err := c.DeleteEmbeds("rec-none"); n != 0 || err != nil {
			t.Errorf("DeleteEmbeds(rec-none) = %d, %v", n, err)
		}
	}
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		open := func() *Catalog {
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		c := open()
		check(t, c, c, open)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		open := func() *Catalog { return openRedis(t, RedisConfig{Client: redisClient(t, srv)}) }
		check(t, open(), open(), open)
	})
}
