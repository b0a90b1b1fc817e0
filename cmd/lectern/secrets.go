package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lectern/auth"
)

// persistedSecret returns configured when it is set, or else the secret kept in the
// data dir (what, e.g. "token secret", in the file "token-secret"), generated on the
// first start so that what was signed with it survives a restart. A kept secret
// shorter than min bytes is an error saying to delete the file, and what deleting
// it costs (lost, e.g. "this revokes all tokens"; "" when nothing).
func persistedSecret(configured, dataDir, what string, min int, lost string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	path := filepath.Join(dataDir, strings.ReplaceAll(what, " ", "-"))
	if b, err := os.ReadFile(path); err == nil {
		if len(b) < min {
			if lost != "" {
				lost = " (" + lost + ")"
			}
			return nil, fmt.Errorf("%s holds %d bytes, need %d: delete it to generate a new one%s", path, len(b), min, lost)
		}
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	secret, err := auth.GenerateSecret(32)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, fmt.Errorf("persist %s: %w", what, err)
	}
	return secret, nil
}
