package web

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"lectern/recorder"
)

// Chapter kinds.
const (
	ChapterLecture  = "lecture"  // the trainer teaches
	ChapterQuestion = "question" // a classroom holds the floor
	ChapterSlides   = "slides"   // the trainer shows slides, nobody else holds the floor
)

// Chapter is one chapter of a replay: [Start, End) in seconds from the
// recording's start.
type Chapter struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Kind  string  `json:"kind"`
	// Participant and Name are the classroom holding the floor (a question).
	Participant string `json:"participant,omitempty"`
	Name        string `json:"name,omitempty"`
}

// chapterLangs are the languages chapters are titled in; the first is the default.
var chapterLangs = []string{"vi", "en"}

// Title is the chapter's title in lang ("vi" or "en"; anything else is "vi").
// The replay page (i18n.js chapter.*) uses the same words.
func (c Chapter) Title(lang string) string {
	who := c.Name
	if who == "" {
		who = c.Participant
	}
	switch {
	case c.Kind == ChapterQuestion && lang == "en":
		return "Question from " + who
	case c.Kind == ChapterQuestion:
		return "Câu hỏi từ " + who
	case c.Kind == ChapterSlides && lang == "en":
		return "Slides"
	case c.Kind == ChapterSlides:
		return "Trình chiếu"
	case lang == "en":
		return "Lecture"
	}
	return "Bài giảng"
}

// Chapters cuts a recording of duration seconds into chapters by its timeline.
// The rule:
//   - it starts with the lecture, at 0;
//   - a "floor" entry starts a question of that classroom ("Câu hỏi từ Huế"),
//     which lasts until its "floor_end" (a floor_end without a participant
//     ends every floor: the trainer took it back);
//   - when several classrooms hold the floor at once, the chapter is the
//     question of the one given the floor last; when it ends, the chapter goes
//     back to the question of the classroom granted last among those still
//     holding it;
//   - with nobody holding the floor, "slides" (the trainer's screen share
//     started) to "slides_end" is a slides chapter, else the lecture;
//   - hands are not chapters; unknown types are ignored;
//   - entries are taken in time order (stable: the same time keeps their
//     order), times before 0 count as 0, entries at or past the duration are
//     ignored, and an end that never came ends with the recording;
//   - chapters of no length vanish, and neighbours that are the same merge.
//
// It returns nil when the timeline makes no chapter other than the lecture
// (no timeline, hands only, an unknown duration): such a replay shows and
// serves no chapters.
func Chapters(timeline []recorder.TimelineEntry, duration float64) []Chapter {
	if len(timeline) == 0 || !(duration > 0) || math.IsInf(duration, 0) {
		return nil
	}
	entries := slices.Clone(timeline)
	slices.SortStableFunc(entries, func(a, b recorder.TimelineEntry) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	var (
		out    []Chapter
		floor  []recorder.TimelineEntry // the classrooms holding the floor, in grant order
		slides bool
	)
	current := func() Chapter {
		if n := len(floor); n > 0 {
			f := floor[n-1]
			return Chapter{Kind: ChapterQuestion, Participant: f.Participant, Name: f.Name}
		}
		if slides {
			return Chapter{Kind: ChapterSlides}
		}
		return Chapter{Kind: ChapterLecture}
	}
	open := func(at float64) {
		c := current()
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Kind == c.Kind && last.Participant == c.Participant && last.Name == c.Name {
				return // nothing changed
			}
			if last.Start == at { // the last one had no length: the new one replaces it
				out = out[:n-1]
				if n > 1 {
					prev := out[n-2]
					if prev.Kind == c.Kind && prev.Participant == c.Participant && prev.Name == c.Name {
						return // back to what ran before: it goes on
					}
				}
			}
		}
		out = append(out, c)
		out[len(out)-1].Start = at
	}
	open(0)
	for _, e := range entries {
		at := max(e.At, 0)
		if math.IsNaN(at) || at >= duration {
			continue
		}
		who := func(f recorder.TimelineEntry) bool { return f.Participant == e.Participant }
		switch e.Type {
		case recorder.TimelineFloor:
			if e.Participant == "" && e.Name == "" {
				continue // a floor of nobody: nothing to title it with
			}
			if i := slices.IndexFunc(floor, who); i >= 0 {
				floor[i] = e // already holding it: the name may have changed
				continue
			}
			floor = append(floor, e)
		case recorder.TimelineFloorEnd:
			if e.Participant == "" {
				floor = floor[:0]
			} else {
				floor = slices.DeleteFunc(floor, who)
			}
		case recorder.TimelineSlides:
			slides = true
		case recorder.TimelineSlidesEnd:
			slides = false
		default:
			continue
		}
		open(at)
	}
	for i := range out {
		if i+1 < len(out) {
			out[i].End = out[i+1].Start
		} else {
			out[i].End = duration
		}
	}
	if len(out) == 1 && out[0].Kind == ChapterLecture {
		return nil
	}
	return out
}

// ChaptersVTT renders chapters as a WebVTT file (cues titled in lang), the
// chapters track of the HLS replay.
func ChaptersVTT(chapters []Chapter, lang string) []byte {
	var b strings.Builder
	b.WriteString("WEBVTT\n")
	for i, c := range chapters {
		// A cue's text may hold no "-->" and no blank line (names become one
		// line), and & < > are markup there (a name is text, never a tag).
		title := vttText.Replace(strings.ReplaceAll(strings.Join(strings.Fields(c.Title(lang)), " "), "-->", "→"))
		fmt.Fprintf(&b, "\n%d\n%s --> %s\n%s\n", i+1, vttTime(c.Start), vttTime(c.End), title)
	}
	return []byte(b.String())
}

// vttText escapes cue text (WebVTT §4.2.2: & and < start markup; > too, to be safe).
var vttText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// vttTime formats seconds as a WebVTT timestamp, hh:mm:ss.ttt.
func vttTime(s float64) string {
	ms := int64(math.Round(s * 1000))
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// chaptersPlaylist is the one-segment HLS media playlist of the chapters track in lang.
func chaptersPlaylist(duration float64, lang, query string) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(math.Ceil(duration)))
	b.WriteString("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n")
	fmt.Fprintf(&b, "#EXTINF:%.3f,\nchapters-%s.vtt%s\n#EXT-X-ENDLIST\n", duration, lang, query)
	return []byte(b.String())
}

// masterPlaylist is the replay's HLS master playlist: the main rendition
// (index.m3u8) and, when there are chapters, the chapters track in each
// language as a SUBTITLES group the variant names.
func masterPlaylist(m recorder.Meta, chapters []Chapter, query string) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if len(chapters) > 0 {
		for _, lang := range chapterLangs {
			name := "Chương"
			if lang == "en" {
				name = "Chapters"
			}
			fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"chapters\",NAME=%q,LANGUAGE=%q,DEFAULT=NO,AUTOSELECT=NO,URI=\"chapters-%s.m3u8%s\"\n",
				name, lang, lang, query)
		}
	}
	// BANDWIDTH (required) from what is stored: every rendition's bytes over
	// the main one's duration, an upper bound of the main rendition's rate.
	bandwidth := int64(1)
	if m.Duration > 0 {
		bandwidth = max(1, int64(float64(m.Bytes)*8/m.Duration))
	}
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", bandwidth)
	if len(m.Codecs) > 0 {
		fmt.Fprintf(&b, ",CODECS=%q", strings.Join(m.Codecs, ","))
	}
	for _, rd := range m.Renditions {
		if rd.Name != recorder.MainRendition {
			continue
		}
		for _, tr := range rd.Tracks {
			if tr.Width > 0 && tr.Height > 0 {
				fmt.Fprintf(&b, ",RESOLUTION=%dx%d", tr.Width, tr.Height)
				break
			}
		}
	}
	if len(chapters) > 0 {
		b.WriteString(`,SUBTITLES="chapters"`)
	}
	fmt.Fprintf(&b, "\nindex.m3u8%s\n", query)
	return []byte(b.String())
}

// chapterRoutes registers the chapters of a replay:
//
//	GET /replay/{id}/master.m3u8              the master playlist (main rendition + chapters tracks)
//	GET /replay/{id}/chapters-{vi,en}.m3u8    the chapters track's media playlist
//	GET /replay/{id}/chapters-{vi,en}.vtt     the chapters as WebVTT
//	GET /replay/{id}/chapters.vtt?lang=vi|en  the same (default vi)
//
// Access is the replay's. They are made from meta (the index), never stored.
func (p *replays) chapterRoutes(r chi.Router) {
	// HEAD as GET: net/http sends the headers and drops the body.
	get := func(pattern string, h http.HandlerFunc) { r.Get(pattern, h); r.Head(pattern, h) }
	get("/replay/{id}/master.m3u8", p.master)
	get("/replay/{id}/chapters.vtt", func(w http.ResponseWriter, r *http.Request) {
		lang := r.URL.Query().Get("lang")
		if lang == "" {
			lang = chapterLangs[0]
		}
		if !slices.Contains(chapterLangs, lang) {
			p.fail(w, r, fmt.Errorf("%w: lang must be vi or en", errBadRequest))
			return
		}
		p.chaptersFile(w, r, lang, false)
	})
	for _, lang := range chapterLangs {
		get("/replay/{id}/chapters-"+lang+".vtt", func(w http.ResponseWriter, r *http.Request) { p.chaptersFile(w, r, lang, false) })
		get("/replay/{id}/chapters-"+lang+".m3u8", func(w http.ResponseWriter, r *http.Request) { p.chaptersFile(w, r, lang, true) })
	}
}

// tokenQuery is "?token=..." when the request carried its token in the query
// (players cannot set headers): the URIs of a made playlist carry it on.
func tokenQuery(r *http.Request) string {
	if token := r.URL.Query().Get("token"); token != "" {
		return "?token=" + url.QueryEscape(token)
	}
	return ""
}

func (p *replays) master(w http.ResponseWriter, r *http.Request) {
	m, _, err := p.recording(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache") // a live recording's chapters grow
	_, _ = w.Write(masterPlaylist(m, Chapters(m.Timeline, m.Duration), tokenQuery(r)))
}

// chaptersFile serves the chapters in lang: the WebVTT, or (playlist) its
// one-segment media playlist. A recording without chapters has neither (404).
func (p *replays) chaptersFile(w http.ResponseWriter, r *http.Request, lang string, playlist bool) {
	m, _, err := p.recording(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	chapters := Chapters(m.Timeline, m.Duration)
	if len(chapters) == 0 {
		p.fail(w, r, fmt.Errorf("%w: recording %q has no chapters", recorder.ErrNotFound, m.ID))
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	if playlist {
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		_, _ = w.Write(chaptersPlaylist(m.Duration, lang, tokenQuery(r)))
		return
	}
	w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
	_, _ = w.Write(ChaptersVTT(chapters, lang))
}
