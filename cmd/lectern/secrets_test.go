package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPersistedSecret: a configured secret wins; otherwise one is generated on the
// first call, kept in the data dir and read back on the next; a kept one too short
// is refused with what to do.
func TestPersistedSecret(t *testing.T) {
	dir := t.TempDir()
	if b, err := persistedSecret("configured-secret", dir, "token secret", 32, "x"); err != nil || string(b) != "configured-secret" {
		t.Fatalf("configured: %q, %v", b, err)
	}
	first, err := persistedSecret("", dir, "token secret", 32, "this revokes all tokens")
	if err != nil || len(first) != 32 {
		t.Fatalf("generated: %d bytes, %v", len(first), err)
	}
	kept, err := os.ReadFile(filepath.Join(dir, "token-secret"))
	if err != nil || !bytes.Equal(kept, first) {
		t.Fatalf("kept in the data dir: %v (same: %v)", err, bytes.Equal(kept, first))
	}
	again, err := persistedSecret("", dir, "token secret", 32, "this revokes all tokens")
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("second start: another secret (%v)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "turn-secret"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = persistedSecret("", dir, "turn secret", 32, "")
	if err == nil || !strings.Contains(err.Error(), "holds 5 bytes, need 32: delete it to generate a new one") || strings.Contains(err.Error(), "(") {
		t.Fatalf("short secret: %v", err)
	}
	_, err = persistedSecret("", dir, "turn secret", 32, "this revokes all tokens")
	if err == nil || !strings.HasSuffix(err.Error(), "(this revokes all tokens)") {
		t.Fatalf("short secret, with what deleting it costs: %v", err)
	}
}
