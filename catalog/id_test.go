package catalog

import (
	"net/url"
	"strings"
	"testing"
)

func TestNewID(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	counts := make(map[byte]int)
	for range n {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) {
			t.Fatalf("newID() = %q, not a valid id", id)
		}
		if url.PathEscape(id) != id || strings.ToLower(id) != id {
			t.Fatalf("newID() = %q, not URL-safe lower case", id)
		}
		if seen[id] {
			t.Fatalf("newID() repeated %q", id)
		}
		seen[id] = true
		for i := range len(id) {
			counts[id[i]]++
		}
	}
	// Every character of the alphabet shows up (expected ~2800 each): catches a broken mapping.
	if len(counts) != len(idAlphabet) {
		t.Fatalf("ids use %d distinct characters, want %d", len(counts), len(idAlphabet))
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"abcdefghij", true},
		{"0123456789", true},
		{"a1b2c3d4e5", true},
		{"", false},
		{"abcdefghi", false},
		{"abcdefghijk", false},
		{"ABCDEFGHIJ", false},
		{"abcde-ghij", false},
		{"abcde/ghij", false},
		{"abcdéfghi", false},
		{"../../etc/", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.want {
				t.Fatalf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}
