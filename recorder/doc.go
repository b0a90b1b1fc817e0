// Package recorder archives every live publication of every session to an object
// store as CMAF fragmented MP4 with an HLS media playlist, crash-safely.
//
// The recorder is an ordinary subscriber of the hub: [Recorder.Attach] watches a
// session, and every track of every publication gets an [sfu.Queue] sink like any
// other consumer; the sfu never knows the recorder exists. One recording is made per
// publication per live period: it starts with the publication's first track and ends
// when its last track ends (the publication was removed, after the reconnect grace
// period), so a trainer who reconnects within the grace period continues the same
// recording, with the pause kept as a gap.
//
// Pipeline, per recording (all goroutines owned by the recording, stopped and waited
// for by [Recorder.Close]):
//
//	track reader (one per track): Queue → reorder → depacketize (RFC 6184 H.264,
//	    RFC 7587 Opus, RFC 3640 AAC) → timestamp unwrap → access units
//	mux (one per recording): access units → renditions → fMP4 segments cut at the
//	    first keyframe after ~4 s → spool file (fsync) → journal line (fsync)
//	uploader (one per recording): spool → store, with retries and backoff; a
//	    segment enters index.m3u8 only once stored, and its spool file is deleted
//	    only then.
//
// The H.264 and AAC payload formats are gortsplib's decoders' (pkg/format/rtph264,
// rtpmpeg4audio), with the quirks of the cameras they know; the reorderer, and the
// policy after a loss (drop the damaged access unit and wait for a keyframe), are
// the recorder's. The decoders keep slices of the pooled packets' payloads until
// an access unit is whole: those packets stay retained until then.
//
// A segment that cannot reach the spool (it is full because the store is
// unreachable, or the disk refuses writes) is lost, but keeps its place: the
// playlist lists it as an EXT-X-GAP entry of its duration, so replay time stays
// wall-clock time, and meta.json (and the index) count it in lost_media.
// [Recorder.Degraded] reports the loss while it lasts.
//
// Renditions: the camera ("video", or the first video track when there is no
// camera) and the audio are muxed into the main rendition: index.m3u8, init.mp4,
// seg-NNNNNN.m4s under recordings/{session}/{id}/. Every other video track (the
// screen share) is its own silent rendition under recordings/{session}/{id}/{local}/
// (e.g. screen/index.m3u8) on the same timeline, so players show the lecture with
// sound and a page can show the slides next to it, in sync.
//
// A track that appears after its recording started (a screen share switched on
// mid-lecture) becomes a new rendition; an audio track that appears late is not
// recorded (it cannot join an init segment already written). H.264 parameter
// changes that keep the picture's shape travel in-band. One that changes it
// (coded size, profile, chroma format or bit depth: the programme switching to
// a classroom's camera, a reconnect at another resolution) cuts a segment at
// its keyframe and writes a new init segment, init-1.mp4, init-2.mp4... (the
// first stays init.mp4; a shape seen before gets a new one too); the playlist
// has EXT-X-DISCONTINUITY and EXT-X-MAP before the first segment that needs it,
// so players set up the picture anew rather than squeeze it into the first
// init's box. The audio of the rendition goes on across the cut (it is in every
// init). meta.json lists the init segments (RenditionInfo.Inits) and each
// segment names its own; the MP4 download starts with the largest picture's
// init (see downloadInit). Audio is Opus (from
// WebRTC and RTSP publishers) or AAC (MPEG4-GENERIC from RTSP encoders and
// cameras, stored as MPEG-4 Audio with the AudioSpecificConfig of the SDP). Other
// codecs are logged as not recorded, G.711 among them: fMP4 can only hold it
// decoded to LPCM, which browsers cannot play (see recordable).
//
// Crash safety: the spool directory holds, per recording, a journal (JSON lines,
// fsynced) and the segments not yet stored. A segment is written to a temporary
// file and fsynced, journaled, then renamed: a crash loses at most the segment
// being written. [New] scans the spool: segments left over are uploaded and
// recordings interrupted by a crash are finalised (VOD playlist with ENDLIST,
// meta.json marked interrupted). Recordings the index says are in progress but
// that no spool knows (the server was lost with its disk) are finalised from the
// store: their playlists list every stored segment.
//
// Index: recordings/index.json in the store is the source of truth for the list
// of recordings; it is loaded at start (rebuilt from every meta.json when lost),
// kept in memory, and rewritten (coalesced) whenever a recording starts, ends or
// is deleted. Listing never touches the store. One server per store prefix: two
// servers sharing a bucket must use different prefixes.
package recorder
