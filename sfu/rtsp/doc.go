// Package rtsp is the RTSP edge of the hub (RTSP 1.0, RFC 2326): studio encoders
// publish into a session, hardware decoders, VLC and ffmpeg read from one, and IP
// cameras are pulled into one as sources.
//
// The [Server] serves
//
//	rtsp://host:8554/{session}                the trainer's video and audio
//	rtsp://host:8554/{session}/{publication}  one publication (e.g. site-ha-noi)
//
// for reading (DESCRIBE, SETUP, PLAY) over TCP-interleaved or UDP transport, and
// accepts publishing (ANNOUNCE, SETUP, RECORD) to rtsp://host:8554/{session} with a
// trainer token, which makes the encoder the session's trainer publication. Tokens
// are Lectern's signed tokens, given as the Basic password (any user name) or as a
// token query parameter.
//
// [Sources] pulls IP cameras and encoders (DESCRIBE, SETUP, PLAY over TCP) into a
// session as the trainer or a site publication and reconnects with backoff when they
// drop, keeping the publication and its tracks so classrooms resume on the same
// streams.
//
// Media is never transcoded. H.264 from RTSP peers is re-fragmented so no packet
// payload exceeds 1200 bytes (what WebRTC paths carry) and SPS/PPS are inserted
// in-band before IDR frames when a peer only declares them in its SDP; this happens
// before [sfu.Track.WriteRTP], so every consumer benefits. Opus, G.711 and AAC pass
// through (AAC with its AudioSpecificConfig in the codec's fmtp); H.265 and other
// video codecs are refused with a reason.
//
// The protocol code is Lectern's own: the gortsplib module that go.mod names
// (v4.16.3) is a deprecation stub without code.
package rtsp
