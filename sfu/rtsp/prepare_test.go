package rtsp

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"lectern/auth"
)

// TestPrepareRefusesWithReason: a reader of a publication not live here runs
// Config.Prepare first (a cluster's edge pulls it from another node); when that
// fails the reader gets 503 with the reason and a Retry-After, and the server
// keeps serving.
func TestPrepareRefusesWithReason(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Value
	f := newFixture(t, func(c *Config) {
		c.Prepare = func(ctx context.Context, session, publication string) error {
			calls.Add(1)
			got.Store(session + "/" + publication)
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("prepare got no deadline")
			}
			return errors.New("origin node a unreachable; retry")
		}
	})
	tok := f.token(t, testSession, auth.RoleViewer)
	base := "rtsp://" + f.srv.Addr() + "/" + testSession
	c := dialRaw(t, f.srv.Addr())
	res := c.do("DESCRIBE", base+"?token="+tok, nil, "")
	if res.status != 503 || res.header.get("Retry-After") == "" || !strings.Contains(res.reason, "origin node a unreachable") {
		t.Fatalf("DESCRIBE of a publication not live here: %d %q (Retry-After %q)", res.status, res.reason, res.header.get("Retry-After"))
	}
	if calls.Load() != 1 || got.Load() != testSession+"/" {
		t.Fatalf("Prepare called %d times for %v, want once for %s/ (the session's default)", calls.Load(), got.Load(), testSession)
	}
	// A bad token is refused before Prepare runs: it costs the cluster nothing.
	c2 := dialRaw(t, f.srv.Addr())
	if res := c2.do("DESCRIBE", base+"/site-hue?token=forged", nil, ""); res.status != 401 {
		t.Fatalf("forged token: %d %s", res.status, res.reason)
	}
	if calls.Load() != 1 {
		t.Fatalf("Prepare ran for an unauthenticated reader")
	}
}

// TestPrepareSkippedWhenLive: a publication live here is served without Prepare.
func TestPrepareSkippedWhenLive(t *testing.T) {
	var calls atomic.Int32
	f := newFixture(t, func(c *Config) {
		c.Prepare = func(context.Context, string, string) error { calls.Add(1); return nil }
	})
	playIntoSession(t, f.ctx, f.sess, loadClip(t), "packetization-mode=1;profile-level-id=42e01f")
	waitFor(f.ctx, t, "the trainer's tracks", func() bool { return len(f.sess.Publications()) == 1 && len(f.sess.Publications()[0].Tracks) == 2 })
	c := dialRaw(t, f.srv.Addr())
	res := c.do("DESCRIBE", "rtsp://"+f.srv.Addr()+"/"+testSession+"?token="+f.token(t, testSession, auth.RoleViewer), nil, "")
	if res.status != 200 {
		t.Fatalf("DESCRIBE: %d %s", res.status, res.reason)
	}
	if calls.Load() != 0 {
		t.Fatalf("Prepare ran %d times for a live publication", calls.Load())
	}
}
