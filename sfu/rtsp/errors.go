package rtsp

import (
	"errors"

	"lectern/sfu"
)

// Errors returned by the edge; match them with errors.Is. The web layer maps them to
// HTTP status codes, the server to RTSP ones (see statusOf).
var (
	// ErrSessionNotFound: no session with that id (404). It is sfu.ErrNoSession, so a
	// Sessions func may return either.
	ErrSessionNotFound = sfu.ErrNoSession
	// ErrSourceNotFound: no pull source with that id in the session (404).
	ErrSourceNotFound = errors.New("rtsp source not found")
	// ErrSourceExists: the session already has a pull source with that name (409).
	ErrSourceExists = errors.New("rtsp source with that name exists")
	// ErrInvalidSource: the source spec is not usable: URL, name or role (400).
	ErrInvalidSource = errors.New("invalid rtsp source")
	// ErrBadSDP: an SDP body (ANNOUNCE, or a camera's DESCRIBE answer) is malformed.
	ErrBadSDP = errors.New("malformed SDP")
	// ErrUnsupportedCodec: the media offers nothing Lectern forwards, or offers a video
	// codec other than H.264.
	ErrUnsupportedCodec = errors.New("unsupported codec: Lectern accepts H.264 video (no H.265) and Opus, G.711 (PCMU/PCMA) or AAC audio")
	// ErrClosed: the server or the sources manager is closed.
	ErrClosed = errors.New("rtsp edge closed")
	// ErrUnavailable: what a reader asked for is live elsewhere and could not be
	// brought here now (Config.Prepare failed); retry later (503).
	ErrUnavailable = errors.New("unavailable on this node now")
)
