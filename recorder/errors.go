package recorder

import "errors"

// Sentinel errors. They are wrapped with context; match them with [errors.Is].
var (
	// ErrNotFound reports an unknown recording, rendition or file.
	ErrNotFound = errors.New("recording not found")
	// ErrSpoolFull reports a segment that was dropped because the spool reached its
	// configured size (uploads are failing or too slow).
	ErrSpoolFull = errors.New("recording spool full")
	// ErrClosed reports a call on a closed Recorder.
	ErrClosed = errors.New("recorder closed")
	// ErrUnsupportedCodec reports a track whose codec the recorder cannot store.
	ErrUnsupportedCodec = errors.New("codec not recordable")
)
