package peer

import "errors"

// Errors returned by the edge. The HTTP layer maps them to status codes.
var (
	// ErrBadOffer: the body is not a usable SDP offer.
	ErrBadOffer = errors.New("invalid SDP offer")
	// ErrUnsupportedCodec: the offer has no codec Lectern forwards.
	ErrUnsupportedCodec = errors.New("unsupported codec: Lectern accepts H.264 (packetization-mode=1) video and Opus audio")
	// ErrResourceNotFound: no WHIP/WHEP resource with that id.
	ErrResourceNotFound = errors.New("resource not found")
	// ErrETagMismatch: a PATCH's If-Match does not name the resource's current ICE session.
	ErrETagMismatch = errors.New("ETag does not match the resource's ICE session")
	// ErrBadFragment: a PATCH body is not a usable trickle-ice-sdpfrag.
	ErrBadFragment = errors.New("invalid trickle-ice-sdpfrag")
	// ErrClosed: the edge is shutting down.
	ErrClosed = errors.New("webrtc edge closed")
)
