package recorder

import (
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// Recording statuses.
const (
	StatusRecording = "recording" // live: segments are still being added
	StatusComplete  = "complete"  // finalised: VOD playlist with ENDLIST
)

// MainRendition names the rendition holding the camera (or first video track) and
// the audio.
const MainRendition = "main"

// Meta describes a recording. It is stored as meta.json next to the media and, without
// the segment lists, in the recording index.
type Meta struct {
	ID          string `json:"id"`
	Session     string `json:"session"`
	Title       string `json:"title"`
	Publication string `json:"publication"`
	// Role says what the recording is to the session: RoleProgramme, the lecture as
	// everyone saw and heard it (the session's main recording), or RoleSource, one
	// publication's own (the trainer's, a classroom's). Recordings made before
	// roles existed have none: read them with [Meta.RoleOrSource].
	Role   string `json:"role,omitempty"`
	Status string `json:"status"`
	// Interrupted is set on recordings finalised after a crash: they hold every
	// segment stored before it.
	Interrupted bool       `json:"interrupted,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	// Duration is the length of the main rendition in seconds.
	Duration float64 `json:"duration"`
	// Segments is the number of stored segments of the main rendition.
	Segments int `json:"segments"`
	// Bytes is the stored size of every rendition's media.
	Bytes int64 `json:"bytes"`
	// Codecs are the RFC 6381 codec strings of the main rendition, e.g.
	// "avc1.42e01f" and "opus" (or "mp4a.40.2" for AAC).
	Codecs     []string        `json:"codecs"`
	Renditions []RenditionInfo `json:"renditions"`
	// Gaps are pauses in the media (reconnects, loss), at most 100 per rendition.
	Gaps []gap `json:"gaps,omitempty"`
	// LostMedia, when set, says that segments of the main rendition were lost
	// before they reached the store (the spool was full or unwritable). They keep
	// their place in the timeline (EXT-X-GAP in the playlist), and Duration
	// counts them, so replay time stays wall-clock time.
	LostMedia *LostMedia `json:"lost_media,omitempty"`
	// Prefix is the store key prefix of the recording's objects.
	Prefix string `json:"prefix"`
	// Timeline is what happened in the lecture while it was recorded (floor
	// grants, hands, slides), in order; only on the session's main recording
	// (the programme's; the trainer publication's when there is no programme
	// recording), at most maxTimeline entries.
	Timeline []TimelineEntry `json:"timeline,omitempty"`
}

// Recording roles (Meta.Role).
const (
	RoleProgramme = "programme"
	RoleSource    = "source"
)

// ProgrammePublication is the name of the publication the server makes of every
// session's programme (programme.Publication): its recording is the session's main
// one.
const ProgrammePublication = "programme"

// roleOf is the role of a recording of the publication named pub.
func roleOf(pub string) string {
	if pub == ProgrammePublication {
		return RoleProgramme
	}
	return RoleSource
}

// RoleOrSource returns m.Role, or RoleSource for a recording made before roles
// existed (every one of those was a publication's own).
func (m Meta) RoleOrSource() string {
	if m.Role == "" {
		return RoleSource
	}
	return m.Role
}

// Timeline entry types.
const (
	TimelineFloor     = "floor"      // a participant was given the floor
	TimelineFloorEnd  = "floor_end"  // the floor was taken back (or given up)
	TimelineHand      = "hand"       // a participant raised a hand
	TimelineHandDown  = "hand_down"  // a raised hand was lowered
	TimelineSlides    = "slides"     // the trainer's screen share started
	TimelineSlidesEnd = "slides_end" // the trainer's screen share ended
)

// TimelineEntry is one event of the lecture, kept in meta.json for the replay's chapters.
type TimelineEntry struct {
	At          float64 `json:"at"`                    // seconds from the recording's start (its StartedAt, wall clock)
	Type        string  `json:"type"`                  // "floor", "floor_end", "hand", "hand_down", "slides", "slides_end"
	Participant string  `json:"participant,omitempty"` // the site's participant id, e.g. "hue"
	Name        string  `json:"name,omitempty"`        // its display name, e.g. "Huế"
}

// maxTimeline bounds a recording's timeline: a lecture with more events than this
// keeps the first ones (meta.json stays small).
const maxTimeline = 1000

// LostMedia is what a recording (or a rendition) lost.
type LostMedia struct {
	Segments int     `json:"segments"`
	Seconds  float64 `json:"seconds"`
}

// RenditionInfo describes one rendition of a recording.
type RenditionInfo struct {
	Name     string      `json:"name"`
	Dir      string      `json:"dir"` // "" for main, "screen/" for the screen share
	Tracks   []TrackInfo `json:"tracks"`
	Segments int         `json:"segments"`
	Duration float64     `json:"duration"`
	// Timescale is the primary track's clock rate: segment times are in its ticks.
	Timescale int64 `json:"timescale"`
	// PrimaryID is the MP4 track ID segments are cut on.
	PrimaryID int `json:"primary_id"`
	// SegmentList is the stored segments, in order; only in meta.json.
	SegmentList []segmentRecord `json:"segment_list,omitempty"`
	// Offset is when the rendition starts, in seconds from the recording's start.
	Offset float64 `json:"offset"`
	// LostMedia counts the segments of the rendition lost before the store.
	LostMedia *LostMedia `json:"lost_media,omitempty"`
	// Inits lists the rendition's init segments, in order, when it has more
	// than one: its video changed shape while recording (the programme
	// switching to a classroom's camera), and the segments from the change on
	// need an init segment of their own (init-1.mp4, init-2.mp4...; each
	// segment record says which). Tracks always describe the first init
	// segment (init.mp4). Absent when there is only init.mp4.
	Inits []InitInfo `json:"inits,omitempty"`
}

// InitInfo describes one init segment of a rendition.
type InitInfo struct {
	File   string   `json:"file"`   // "init.mp4", "init-1.mp4", ...
	Codecs []string `json:"codecs"` // RFC 6381 codec strings of its tracks
	Width  int      `json:"width,omitempty"`
	Height int      `json:"height,omitempty"`
}

// initInfo describes init segment k of a rendition whose tracks it holds.
func initInfo(k int, tracks []TrackInfo) InitInfo {
	in := InitInfo{File: initName(k), Codecs: make([]string, 0, len(tracks))}
	for _, t := range tracks {
		in.Codecs = append(in.Codecs, t.Codec)
		if t.Kind == "video" && in.Width == 0 {
			in.Width, in.Height = t.Width, t.Height
		}
	}
	return in
}

// addInit records that init segment k of the rendition hdr describes (its
// header when that init was written) is stored; k = 0, or the first stored,
// makes the rendition known. False when it already was recorded (a
// recovered spool storing it again).
func (m *Meta) addInit(hdr *RenditionInfo, k int) bool {
	rd, ok := m.rendition(hdr.Name)
	if !ok {
		r := *hdr
		r.SegmentList, r.Inits = nil, nil
		if k > 0 { // the first init could not be spooled: the rendition starts here
			r.Inits = []InitInfo{initInfo(k, hdr.Tracks)}
		}
		m.Renditions = append(m.Renditions, r)
		return true
	}
	if k == 0 {
		return false
	}
	if len(rd.Inits) == 0 {
		rd.Inits = []InitInfo{initInfo(0, rd.Tracks)}
	}
	for _, in := range rd.Inits {
		if in.File == initName(k) {
			return false
		}
	}
	rd.Inits = append(rd.Inits, initInfo(k, hdr.Tracks))
	return true
}

// downloadInit names the init segment a download of the rendition starts with:
// the one of its largest picture. A download is one MP4 file with one sample
// description; the segments of the other shapes carry their SPS and PPS in-band
// (WebRTC and RTSP send them before every IDR), and decoders (ffmpeg, VLC,
// Chromium's) take them and show those pictures at their own size, while a
// player that sizes its window from the file shows the largest one unscaled.
func (r *RenditionInfo) downloadInit() string {
	best, area := initName(0), -1
	for _, in := range r.Inits {
		if a := in.Width * in.Height; a > area {
			best, area = in.File, a
		}
	}
	return best
}

// TrackInfo describes one track of a rendition.
type TrackInfo struct {
	ID       int    `json:"id"` // MP4 track ID
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Codec    string `json:"codec"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
	Channels int    `json:"channels,omitempty"`
}

// segmentRecord is a stored (or spooled) segment.
type segmentRecord struct {
	N        int   `json:"n"`
	Start    int64 `json:"start"`    // primary ticks since the recording's zero
	Duration int64 `json:"duration"` // primary ticks
	Size     int64 `json:"size"`
	// Discontinuity is set when segments before this one were lost.
	Discontinuity bool `json:"discontinuity,omitempty"`
	// Lost marks a segment that never reached the store: it holds its place in
	// the timeline (an EXT-X-GAP entry) and has no object.
	Lost bool `json:"lost,omitempty"`
	// Init is the init segment the segment needs: 0 is init.mp4, k is
	// init-k.mp4 (see RenditionInfo.Inits).
	Init int `json:"init,omitempty"`
}

// keptSegments returns the segments of list that reached the store (not lost).
func keptSegments(list []segmentRecord) []segmentRecord {
	out := make([]segmentRecord, 0, len(list))
	for _, s := range list {
		if !s.Lost {
			out = append(out, s)
		}
	}
	return out
}

// segmentFile names segment n.
func segmentFile(n int) string { return fmt.Sprintf("seg-%06d.m4s", n) }

// initFile is the name of a rendition's (first) init segment.
const initFile = "init.mp4"

// initName names a rendition's init segment k: the first keeps its name
// (recordings made before there could be several, and their URLs, are
// unchanged), the next are init-1.mp4, init-2.mp4...
func initName(k int) string {
	if k == 0 {
		return initFile
	}
	return fmt.Sprintf("init-%d.mp4", k)
}

// playlistFile and metaFile are the names of the playlist and the description.
const (
	playlistFile = "index.m3u8"
	metaFile     = "meta.json"
)

// summary returns m without the segment lists, as the index keeps it.
func (m Meta) summary() Meta {
	rs := make([]RenditionInfo, len(m.Renditions))
	for i, r := range m.Renditions {
		r.SegmentList = nil
		rs[i] = r
	}
	m.Renditions = rs
	return m
}

// rendition returns the rendition with the given name.
func (m *Meta) rendition(name string) (*RenditionInfo, bool) {
	for i := range m.Renditions {
		if m.Renditions[i].Name == name {
			return &m.Renditions[i], true
		}
	}
	return nil, false
}

// codecString returns the RFC 6381 codec string of an fMP4 codec.
func codecString(c mp4.Codec) string {
	switch c := c.(type) {
	case *mp4.CodecH264:
		if len(c.SPS) >= 4 {
			return fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
		}
		return "avc1"
	case *mp4.CodecOpus:
		return "opus"
	case *mp4.CodecMPEG4Audio:
		ot := c.Config.Type // 2: AAC-LC
		if c.Config.ExtensionType != 0 {
			ot = c.Config.ExtensionType // 5: HE-AAC (SBR), 29: HE-AACv2 (PS)
		}
		return fmt.Sprintf("mp4a.40.%d", ot)
	}
	return strings.ToLower(fmt.Sprintf("%T", c))
}
