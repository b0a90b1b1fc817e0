package storage_test

import (
	"errors"
	"strings"
	"testing"

	"lectern/storage"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"simple", "a", true},
		{"nested", "lectures/l1/seg-0001.m4s", true},
		{"dotfile", "a/.hidden", true},
		{"dots inside", "a/b..c/...", true},
		{"unicode", "vorlesung/übung-1.mp4", true},
		{"spaces and colons", "a b/2026-01-01T10:00:00Z.json", true},
		{"max length", strings.Repeat("k", storage.MaxKeyLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("k", storage.MaxKeyLen+1), false},
		{"absolute", "/abs", false},
		{"root", "/", false},
		{"parent", "../x", false},
		{"parent only", "..", false},
		{"dot only", ".", false},
		{"parent inside", "a/../b", false},
		{"parent at end", "a/..", false},
		{"dot segment", "a/./b", false},
		{"leading dot segment", "./a", false},
		{"empty segment", "a//b", false},
		{"trailing slash", "a/", false},
		{"backslash", `a\b`, false},
		{"backslash parent", `..\x`, false},
		{"NUL", "a\x00b", false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"DEL", "a\x7f", false},
		{"C1 control", "a\u0085b", false},
		{"invalid UTF-8", "a\xffb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storage.ValidateKey(tt.key)
			if tt.ok && err != nil {
				t.Fatalf("ValidateKey(%q) = %v, want nil", tt.key, err)
			}
			if !tt.ok && !errors.Is(err, storage.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, want ErrInvalidKey", tt.key, err)
			}
		})
	}
}
