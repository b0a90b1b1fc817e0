package recorder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lectern/internal/testrec"
)

// TestSpoolWritable: the readiness probe creates and removes a file in the
// spool. With the spool directory replaced by a file (the disk was remounted,
// the volume lost: nothing can be created there, whoever runs the test) it
// reports the spool; once the directory is back it succeeds and leaves nothing.
func TestSpoolWritable(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	r := newRecorder(t, testrec.DirStore(t), spool, nil)
	defer closeRecorder(t, r)
	if err := r.SpoolWritable(); err != nil {
		t.Fatalf("a fresh spool: %v", err)
	}
	if err := os.Rename(spool, spool+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.SpoolWritable(); err == nil || !strings.Contains(err.Error(), "spool") {
		t.Fatalf("an unwritable spool: %v, want an error naming the spool", err)
	}
	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(spool+".away", spool); err != nil {
		t.Fatal(err)
	}
	if err := r.SpoolWritable(); err != nil {
		t.Fatalf("the spool is back: %v", err)
	}
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("the probe left %s in the spool", e.Name())
		}
	}
}
