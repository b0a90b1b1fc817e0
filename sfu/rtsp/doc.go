// Package rtsp is the RTSP edge of the hub (RTSP 1.0, RFC 2326): studio encoders
// publish into a session, hardware decoders, VLC and ffmpeg read from one, and IP
// cameras are pulled into one as sources.
//
// The [Server] serves
//
//	rtsp://host:8554/{session}                the programme's video and audio (the
//	                                          trainer with the classrooms that hold
//	                                          the floor; a DESCRIBE while it is being
//	                                          made waits for it, up to 3 s; the
//	                                          trainer's own where there is none)
//	rtsp://host:8554/{session}/trainer        the trainer's own video, screen and audio
//	rtsp://host:8554/{session}/{publication}  one publication (e.g. site-ha-noi)
//
// for reading (DESCRIBE, SETUP, PLAY) over TCP-interleaved or UDP transport, and
// accepts publishing (ANNOUNCE, SETUP, RECORD) to rtsp://host:8554/{session} with a
// trainer token, which makes the encoder the session's trainer publication. Tokens
// are Lectern's signed tokens (or device access codes), given as the Basic password
// (any user name), as a Bearer token or as a token query parameter.
//
// The protocol is gortsplib's (github.com/bluenviron/gortsplib/v4 v4.16.2, the last
// real v4 release): its Server parses and answers requests, negotiates transports,
// keeps RTSP sessions and sends RTCP sender reports. Lectern's handler does the rest:
// authentication (with the failed-authentication limiter shared with HTTP), the URL
// mapping, the learner policy, the trainer lease (TEARDOWN ends the publication, a
// lost connection releases it for the grace period), and one gortsplib ServerStream
// per (session, publication) URL, shared by its readers and fed from sfu queues
// (video dropped until the next keyframe when the feed falls behind; a reader whose
// own write queue overflows gets a keyframe request). Readers are set up on a
// second ServerStream of the URL, to which no RTP is written: gortsplib answers them
// and sends their RTCP, while the feeds send their RTP themselves (direct.go; a
// closure, a queue push and a goroutine wake-up per packet and reader less): TCP
// readers' is appended to their connections, which a few shared writers send
// (conn_writers.go; one more than 1 MB behind drops video until a keyframe and gets
// a keyframe request); UDP readers' goes to all of them in one sendmmsg per batch,
// a reader's run of equal-sized packets as one UDP GSO train (udp_send_linux.go,
// internal/udpgso), from the server's RTP port (one whose packets the kernel
// refuses, its address unreachable say, likewise waits for a keyframe and gets a
// keyframe request). What readers lose on the way, the server learns from their
// RTCP receiver reports: the new loss reported for the SSRCs a reader was given
// is counted (lectern_rtsp_reader_lost_packets_total, Server.Collector) and, for
// video, asks for a keyframe (reader_reports.go). A connection wrapper keeps
// Lectern's read deadlines and answers malformed requests with a 400, logged
// without credentials.
//
// [Sources] pulls IP cameras and encoders into a session as the trainer or a site
// publication with gortsplib's Client (RTP over UDP with receiver reports, or over
// TCP when the camera refuses UDP or nothing arrives; keep-alives as the camera's
// session timeout asks) and reconnects with backoff when they drop, keeping the
// publication and its tracks so classrooms resume on the same streams. Lectern
// decides where it connects: only the URL's host, checked against the allow-list on
// the address dialled (every dial), no redirects, UDP only to the camera's address.
//
// Media is never transcoded. H.264 from RTSP peers is re-fragmented so no packet
// payload exceeds 1200 bytes (what WebRTC paths carry) and SPS/PPS are inserted
// in-band before IDR frames when a peer only declares them in its SDP; this happens
// before [sfu.Track.WriteRTP], so every consumer benefits. Opus, G.711 and AAC pass
// through (AAC with its AudioSpecificConfig in the codec's fmtp); H.265 and other
// video codecs are refused with a reason.
package rtsp
