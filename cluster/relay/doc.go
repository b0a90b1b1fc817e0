// Package relay carries a session's publications from the node where they are live
// (the origin) to other cluster nodes (edges), over WebRTC between the nodes.
//
// The origin side is an http.Handler (NewHandler) mounted at /cluster/relay/:
//
//	GET    /cluster/relay/{session}/{publication}        the publication's tracks (JSON)
//	POST   /cluster/relay/{session}/{publication}        SDP offer -> 201, SDP answer, Location
//	DELETE /cluster/relay/{session}/{publication}/{id}   ends that relay
//
// Every request carries a node credential (auth.Issuer.MintNode). A relay sends every
// track of the publication exactly: each simulcast layer on its own m-line, no layer
// choice, no adaptation; NACKs are answered from the origin tracks' caches and the
// edge's keyframe requests are coalesced by the origin tracks.
//
// The codecs are the WebRTC edge's (H.264, Opus, G.711) and AAC: a studio encoder's
// AAC over RTSP goes to the edges as it is, so that their RTSP readers (hardware
// decoders, which often play AAC and not Opus) get it as the origin's readers do.
// Both ends being Lectern nodes, AAC is negotiated on the relay's connections only
// (with each track's format, config included; never in WHIP/WHEP), and its RFC 3640
// payloads pass untouched. Its Opus variant (package transcode) is relayed beside it
// as a track of its own for the edges' WebRTC subscribers; an edge transcodes nothing
// of a relayed publication, so it makes no second variant.
//
// The edge side is a Manager: Pull makes the local session carry a remote publication
// as an ordinary publication of the same name, marked relayed (sfu.Session.ClaimRelay)
// so that the recorder leaves it to the origin. One relay per (session, publication)
// however many local consumers; the edge's own subscribers are answered from its own
// tracks' caches. A relay ends when its origin goes (the publication pauses within the
// registry's grace, and a Pull from a new origin continues its tracks) or after Linger
// without local consumers.
package relay
