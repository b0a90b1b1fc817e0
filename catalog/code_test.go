package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestCodes: device code records are found by hash, listed per session without
// expired ones, survive a restart, are revoked one by one (only within their
// session), and go with their session; the file holds hashes, never codes.
func TestCodes(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := mustCreate(t, c, NewSession{Title: "Bài 1"})
	other := mustCreate(t, c, NewSession{Title: "Bài 2"})
	add := func(id, code, session string, exp time.Time) Code {
		t.Helper()
		got, err := c.AddCode(Code{ID: id, Hash: hashOf(code), Session: session, Role: "site", Name: "hall",
			Display: "Hội trường", CreatedBy: "admin", CreatedAt: now, ExpiresAt: exp})
		if err != nil {
			t.Fatalf("AddCode %s: %v", id, err)
		}
		return got
	}
	add("c1", "secretcodeone111", s.ID, now.Add(time.Hour))
	add("c2", "secretcodetwo222", s.ID, now.Add(2*time.Hour))
	add("c3", "secretcodethree3", other.ID, now.Add(time.Hour))

	if got, ok := c.CodeByHash(hashOf("secretcodeone111")); !ok || got.ID != "c1" || got.Session != s.ID || got.Role != "site" {
		t.Fatalf("CodeByHash = %+v, %v", got, ok)
	}
	if _, ok := c.CodeByHash(hashOf("notacode")); ok {
		t.Fatal("an unknown hash was found")
	}
	if _, err := c.AddCode(Code{ID: "c4", Hash: hashOf("secretcodeone111"), Session: s.ID, Role: "site", Name: "x",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a second record with the same hash: %v", err)
	}
	if _, err := c.AddCode(Code{ID: "c5", Hash: hashOf("z"), Session: "nosuchsess", Role: "site", Name: "x",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a code of an unknown session: %v", err)
	}
	if _, err := c.AddCode(Code{ID: "c6", Hash: "not hex", Session: s.ID, Role: "site", Name: "x",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a record without a hash: %v", err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "secretcode") {
		t.Fatal("the catalogue file holds a code in clear")
	}
	if !strings.Contains(string(raw), hashOf("secretcodeone111")) {
		t.Fatal("the catalogue file does not hold the code's hash")
	}

	c, err = Open(dir) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if list := c.Codes(s.ID); len(list) != 2 || list[0].ID != "c1" || list[1].ID != "c2" || list[0].Display != "Hội trường" {
		t.Fatalf("codes after a restart = %+v", list)
	}
	if err := c.DeleteCode(other.ID, "c1"); !errors.Is(err, ErrCodeNotFound) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking a code through another session: %v", err)
	}
	if err := c.DeleteCode(s.ID, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.CodeByHash(hashOf("secretcodeone111")); ok {
		t.Fatal("a revoked code is still found")
	}
	c.now = func() time.Time { return now.Add(3 * time.Hour) }
	if list := c.Codes(s.ID); len(list) != 0 {
		t.Fatalf("expired codes listed: %+v", list)
	}
	if _, ok := c.CodeByHash(hashOf("secretcodetwo222")); !ok {
		t.Fatal("an expired code's record is gone before anything pruned it (expiry must be told from unknown)")
	}
	add("c7", "secretcodeseven7", s.ID, now.Add(4*time.Hour)) // prunes expired records
	if _, ok := c.CodeByHash(hashOf("secretcodetwo222")); ok {
		t.Fatal("an expired record was not pruned by AddCode")
	}
	if err := c.Delete(other.ID); err != nil {
		t.Fatal(err)
	}
	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.CodeByHash(hashOf("secretcodethree3")); ok {
		t.Fatal("a deleted session's code survived")
	}
	if _, ok := c.CodeByHash(hashOf("secretcodeseven7")); !ok {
		t.Fatal("code c7 lost across a restart")
	}
}

// TestCodesPerSession: a session holds at most MaxCodesPerSession codes at once.
func TestCodesPerSession(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := mustCreate(t, c, NewSession{Title: "Bài 1"})
	now := time.Now()
	for i := range MaxCodesPerSession + 1 {
		_, err := c.AddCode(Code{ID: fmt.Sprint("c", i), Hash: hashOf(fmt.Sprint(i)), Session: s.ID, Role: "viewer",
			Name: "v", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		if i < MaxCodesPerSession && err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
		if i == MaxCodesPerSession && !errors.Is(err, ErrInvalid) {
			t.Fatalf("code %d past the limit: %v", i, err)
		}
	}
}
