package storage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest key, in bytes, that [ValidateKey] accepts. It is
// the S3 limit, so a key valid for one store is valid for all.
const MaxKeyLen = 1024

// ValidateKey reports whether key is a valid object key: non-empty, at most
// [MaxKeyLen] bytes of valid UTF-8, relative and slash-separated, without
// empty, "." or ".." segments, backslashes, or control characters (NUL
// included). The error wraps [ErrInvalidKey] and says why.
//
// These rules make every key a safe relative file path below a [Dir] root
// and an unambiguous S3 object name.
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, truncateForError(key), reason)
	}
	return nil
}

// validatePrefix accepts "" or a valid key followed by "/".
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	reason := ""
	if !strings.HasSuffix(prefix, "/") {
		reason = `prefix must be "" or end with "/"`
	} else {
		reason = keyProblem(strings.TrimSuffix(prefix, "/"))
	}
	if reason != "" {
		return fmt.Errorf("%w: prefix %q: %s", ErrInvalidKey, truncateForError(prefix), reason)
	}
	return nil
}

// keyProblem returns why key is invalid, or "" when it is valid.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	case strings.HasPrefix(key, "/"):
		return "absolute"
	case strings.Contains(key, `\`):
		return "contains a backslash"
	case strings.ContainsFunc(key, isControl):
		return "contains a control character"
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return "contains an empty segment"
		case ".", "..":
			return fmt.Sprintf("contains a %q segment", seg)
		}
	}
	return ""
}

// isControl reports C0 controls (NUL included), DEL and C1 controls.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r < 0xa0)
}

// truncateForError keeps error messages short for absurdly long keys.
func truncateForError(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// clipRange checks a Store.Open range against an object of size bytes and
// returns how many bytes to read.
func clipRange(offset, length, size int64) (int64, error) {
	if offset < 0 || length < -1 || offset > size {
		return 0, fmt.Errorf("%w: offset %d length %d for %d-byte object", ErrInvalidRange, offset, length, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}
