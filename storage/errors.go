package storage

import "errors"

// Sentinel errors. Methods wrap them with context (operation and key), so
// match them with [errors.Is], never with ==.
var (
	// ErrNotFound reports that no object exists under the key.
	ErrNotFound = errors.New("storage: object not found")

	// ErrInvalidKey reports a key or prefix that [ValidateKey] (or a store's
	// own reservation) rejects. Nothing was read or written.
	ErrInvalidKey = errors.New("storage: invalid key")

	// ErrInvalidRange reports an Open range that cannot be satisfied: a
	// negative offset or length below -1, or an offset beyond the end of
	// the object. An HTTP layer maps it to 416 Range Not Satisfiable.
	ErrInvalidRange = errors.New("storage: invalid range")

	// ErrNotSupported reports an operation the store cannot perform, such
	// as PresignGet on a [Dir].
	ErrNotSupported = errors.New("storage: operation not supported")
)
