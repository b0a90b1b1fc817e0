package catalog

import (
	"crypto/rand"
	"fmt"
)

// IDLength is the length of a session id.
const IDLength = 10

// idAlphabet is lower-case and URL-, path- and object-key-safe: ids appear in URLs, RTSP paths
// and storage keys. 36^10 ≈ 3.7e15 ids.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns IDLength characters drawn uniformly from idAlphabet with crypto/rand. Bytes
// ≥ 252 (the largest multiple of 36 that fits a byte) are rejected so that every character is
// equally likely.
func newID() (string, error) {
	const limit = 256 - 256%len(idAlphabet)
	id := make([]byte, 0, IDLength)
	buf := make([]byte, 2*IDLength)
	for len(id) < IDLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("catalog: generating id: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(id) < IDLength {
				id = append(id, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(id), nil
}

// ValidID reports whether id has the shape of a session id (IDLength characters from [a-z0-9]).
// It says nothing about whether the session exists; edges use it to reject a malformed id
// before a lookup, and Open uses it to check the file.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
