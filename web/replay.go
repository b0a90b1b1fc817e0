package web

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/internal/limit"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/storage"
)

// ReplayConfig wires the replay endpoints: the recording list and descriptions,
// the HLS files and the MP4 download of every recording.
type ReplayConfig struct {
	// Recorder owns the recording index and knows every recording's objects.
	Recorder *recorder.Recorder
	// Store is where the recorder stores them.
	Store replayStore
	// Redirect answers media segment and init requests, once access is checked,
	// with a 302 to a presigned URL of the object store (when the store can presign:
	// S3), so the bytes do not cross this server. Clients must be able to reach the
	// store's endpoint. Playlists, downloads and stores that cannot presign are
	// served directly.
	Redirect bool
	// Cache, when set, keeps media and init segments (immutable once stored) in
	// memory as they are served, so the next learners get them without a store
	// request. Playlists, meta.json and downloads are never cached. Register it
	// with the Prometheus registry for its lectern_replay_cache_* metrics.
	Cache *ReplayCache
	// MaxDownloadsPerAddr bounds the MP4 downloads one client address receives
	// at once (each holds a copy buffer and a store reader while it lasts);
	// beyond it a download is refused with 429. Zero means
	// DefaultMaxDownloadsPerAddr; negative means no limit.
	MaxDownloadsPerAddr int
	// WriteIdle is how long a replay response (download, segment, playlist) may
	// make no progress before the client is disconnected: a reader that stops
	// reading gives its buffer, store reader and download slot back. Zero means
	// DefaultReplayWriteIdle.
	WriteIdle time.Duration
}

// Defaults of ReplayConfig. Four downloads per address leave room for a few
// learners behind one school NAT, or a player's parallel range requests.
const (
	DefaultMaxDownloadsPerAddr = 4
	DefaultReplayWriteIdle     = 30 * time.Second
)

// replayStore is what replays read from the object store.
type replayStore interface {
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error)
	Stat(ctx context.Context, key string) (storage.ObjectInfo, error)
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// presignExpiry is how long a redirect target stays valid: long enough for a
// slow connection to fetch a segment, short enough that a link shared after the
// token expired soon stops working.
const presignExpiry = 10 * time.Minute

// replays serves recordings; its handlers are registered by replayRoutes.
type replays struct {
	s        *Server
	rec      *recorder.Recorder
	st       replayStore
	redirect bool
	cache    *ReplayCache // nil: no cache
	// downloads counts the MP4 downloads in progress per client address.
	downloads *limit.Counter
	// idle is how long a response may make no progress (ReplayConfig.WriteIdle).
	idle time.Duration
}

// replayRoutes registers the replay endpoints on r (nothing when cfg is nil):
//
//	GET    /api/recordings                        the lectures, newest first (?session=&from=&to=&limit=&cursor=&all=)
//	GET    /api/recordings/{id}                   one recording, with its sources (a lecture) or its lecture
//	DELETE /api/recordings/{id}                   remove it and its objects (admin)
//	GET    /replay/{id}/download.mp4              the whole main rendition as one MP4
//	GET    /replay/{id}/{rendition}/download.mp4  another rendition (e.g. screen) as one MP4
//	GET    /replay/{id}/index.m3u8 (and init.mp4, seg-NNNNNN.m4s, screen/index.m3u8, ...)
//	GET    /replay/{id}/master.m3u8, chapters.vtt, ...  made from the timeline (replay_chapters.go)
//
// Access: the admin token; a token of the recording's session (any role: a
// learner, a classroom, the trainer); or none when the session has public replays.
func (s *Server) replayRoutes(r chi.Router, cfg *ReplayConfig) {
	if cfg == nil || cfg.Recorder == nil || cfg.Store == nil {
		return
	}
	maxDownloads := cfg.MaxDownloadsPerAddr
	if maxDownloads == 0 {
		maxDownloads = DefaultMaxDownloadsPerAddr
	}
	idle := cfg.WriteIdle
	if idle <= 0 {
		idle = DefaultReplayWriteIdle
	}
	p := &replays{s: s, rec: cfg.Recorder, st: cfg.Store, redirect: cfg.Redirect, cache: cfg.Cache,
		downloads: limit.NewCounter(maxDownloads), idle: idle}
	r.Get("/api/recordings", p.list)
	r.Get("/api/recordings/{id}", p.get)
	r.Delete("/api/recordings/{id}", p.delete)
	r.Get("/replay/{id}/download.mp4", p.download)
	r.Head("/replay/{id}/download.mp4", p.download)
	r.Get("/replay/{id}/{rendition}/download.mp4", p.download)
	r.Head("/replay/{id}/{rendition}/download.mp4", p.download)
	p.chapterRoutes(r) // before the catch-all: made, not stored
	r.Get("/replay/{id}/*", p.file)
	r.Head("/replay/{id}/*", p.file)
}

// recordingView is a recording as the API shows it, with the links a player needs.
type recordingView struct {
	recorder.Meta
	Links map[string]string `json:"links"`
	// Chapters are the lecture's chapters by its timeline (replay_chapters.go);
	// absent when it has none.
	Chapters []Chapter `json:"chapters,omitempty"`
	// Sources are, for a programme recording (the lecture), the session's other
	// recordings of the same time: each publication's own (the trainer's, the
	// classrooms'), "Bản ghi riêng / Separate recordings" on the replay page.
	Sources []recordingRef `json:"sources,omitempty"`
	// Lecture is, for a publication's own recording, the programme recording of
	// the same time, when there is one.
	Lecture *recordingRef `json:"lecture,omitempty"`
}

// recordingRef names a related recording, with what a link to it shows.
type recordingRef struct {
	ID          string     `json:"id"`
	Publication string     `json:"publication"`
	Role        string     `json:"role"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	Duration    float64    `json:"duration"`
	// Page is the replay page (/replays/{id}); the API's and the playlist's links
	// are in GET /api/recordings/{id}.
	Page string `json:"page"`
}

// withRelated fills v's Sources or Lecture from the session's other recordings of
// the same time. A caller who may watch v may watch them: they are of its session.
func (p *replays) withRelated(v recordingView) recordingView {
	programme := v.RoleOrSource() == recorder.RoleProgramme
	for _, o := range p.rec.Related(v.Meta) {
		ref := recordingRef{ID: o.ID, Publication: o.Publication, Role: o.RoleOrSource(), Status: o.Status,
			StartedAt: o.StartedAt, EndedAt: o.EndedAt, Duration: o.Duration, Page: "/replays/" + o.ID}
		switch {
		case programme && ref.Role == recorder.RoleSource:
			v.Sources = append(v.Sources, ref)
		case !programme && ref.Role == recorder.RoleProgramme && v.Lecture == nil:
			v.Lecture = &ref
		}
	}
	// The trainer first, then the classrooms by name; each one's in time order.
	slices.SortStableFunc(v.Sources, func(a, b recordingRef) int {
		if c := cmp.Compare(sourceRank(a.Publication), sourceRank(b.Publication)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Publication, b.Publication); c != 0 {
			return c
		}
		return a.StartedAt.Compare(b.StartedAt)
	})
	return v
}

func sourceRank(pub string) int {
	if pub == sfu.TrainerPublication {
		return 0
	}
	return 1
}

func view(m recorder.Meta) recordingView {
	base := "/replay/" + m.ID + "/"
	links := map[string]string{"playlist": base + "index.m3u8", "download": base + "download.mp4"}
	for _, rd := range m.Renditions {
		if rd.Name != recorder.MainRendition {
			links[rd.Name+"_playlist"] = base + rd.Dir + "index.m3u8"
			links[rd.Name+"_download"] = base + rd.Dir + "download.mp4"
		}
	}
	chapters := Chapters(m.Timeline, m.Duration)
	if len(chapters) > 0 { // only then: the links of a replay without a timeline stay as they were
		links["master"] = base + "master.m3u8"
		links["chapters"] = base + "chapters.vtt"
	}
	return recordingView{Meta: m, Links: links, Chapters: chapters}
}

// recordingSummary is a recording in a list: what a catalogue page shows. The
// details (renditions, tracks, gaps) are in GET /api/recordings/{id}.
type recordingSummary struct {
	ID          string `json:"id"`
	Session     string `json:"session"`
	Title       string `json:"title"`
	Publication string `json:"publication"`
	// Role is "programme" (the lecture as everyone saw and heard it) or "source"
	// (one publication's own recording).
	Role        string `json:"role"`
	Status      string `json:"status"`
	Interrupted bool   `json:"interrupted,omitempty"`
	// LostMedia says how much of the recording never reached the store (the
	// recording spool was full or unwritable); its time is kept as a gap.
	LostMedia  *recorder.LostMedia `json:"lost_media,omitempty"`
	StartedAt  time.Time           `json:"started_at"`
	EndedAt    *time.Time          `json:"ended_at,omitempty"`
	Duration   float64             `json:"duration"`
	Segments   int                 `json:"segments"`
	Bytes      int64               `json:"bytes"`
	Codecs     []string            `json:"codecs"`
	Renditions []string            `json:"renditions"`
	Links      map[string]string   `json:"links"`
}

func summarize(m recorder.Meta) recordingSummary {
	v := view(m)
	names := make([]string, 0, len(m.Renditions))
	for _, rd := range m.Renditions {
		names = append(names, rd.Name)
	}
	return recordingSummary{ID: m.ID, Session: m.Session, Title: m.Title, Publication: m.Publication, Role: m.RoleOrSource(), Status: m.Status,
		Interrupted: m.Interrupted, LostMedia: m.LostMedia, StartedAt: m.StartedAt, EndedAt: m.EndedAt, Duration: m.Duration, Segments: m.Segments,
		Bytes: m.Bytes, Codecs: m.Codecs, Renditions: names, Links: v.Links}
}

type recordingPage struct {
	Recordings []recordingSummary `json:"recordings"`
	Next       string             `json:"next,omitempty"`
}

func (p *replays) list(w http.ResponseWriter, r *http.Request) {
	q, err := listQuery(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if q.Allow, err = p.visible(r); err != nil {
		p.fail(w, r, err)
		return
	}
	page, err := p.rec.List(q)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	out := recordingPage{Recordings: make([]recordingSummary, 0, len(page.Recordings)), Next: page.Next}
	for _, m := range page.Recordings {
		out.Recordings = append(out.Recordings, summarize(m))
	}
	if page.Next != "" { // RFC 8288, for clients that page without parsing the body
		next := *r.URL
		v := next.Query()
		v.Set("cursor", page.Next)
		next.RawQuery = v.Encode()
		w.Header().Set("Link", "<"+next.RequestURI()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

// listQuery reads ?session=&from=&to=&limit=&cursor=&all=; from and to are RFC
// 3339 times or dates (YYYY-MM-DD, UTC; to is then inclusive of that day). The list
// holds the lectures (recorder.Query.Lectures: a session's programme recording, not
// the publications' own of the same time, which its GET names as sources), or
// every recording with all=true.
func listQuery(r *http.Request) (recorder.Query, error) {
	v := r.URL.Query()
	q := recorder.Query{Session: v.Get("session"), Cursor: v.Get("cursor"), Lectures: true}
	switch v.Get("all") {
	case "", "false", "0":
	case "true", "1":
		q.Lectures = false
	default:
		return q, fmt.Errorf("%w: all must be true or false", errBadRequest)
	}
	var err error
	if q.From, err = parseWhen(v.Get("from"), false); err != nil {
		return q, fmt.Errorf("%w: from: %v", errBadRequest, err)
	}
	if q.To, err = parseWhen(v.Get("to"), true); err != nil {
		return q, fmt.Errorf("%w: to: %v", errBadRequest, err)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > recorder.MaxPageSize {
			return q, fmt.Errorf("%w: limit must be 1-%d", errBadRequest, recorder.MaxPageSize)
		}
		q.Limit = n
	}
	return q, nil
}

func parseWhen(s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a YYYY-MM-DD date", s)
	}
	if endOfDay {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

// visible returns which sessions' recordings the caller may list: all for the
// admin, the token's session and public ones for a participant, public ones for
// anyone else. An invalid token is an error (it is better said than ignored).
func (p *replays) visible(r *http.Request) (func(string) bool, error) {
	public := map[string]bool{}
	for _, c := range p.s.cfg.Catalog.List() {
		if c.PublicReplays {
			public[c.ID] = true
		}
	}
	if _, err := auth.BearerToken(r); err != nil {
		return func(session string) bool { return public[session] }, nil
	}
	who, err := p.s.authenticate(r)
	if err != nil {
		return nil, err
	}
	if who.admin {
		return nil, nil
	}
	if who.claims.Role == auth.RoleEmbed { // it plays one recording, and lists nothing more
		return func(session string) bool { return public[session] }, nil
	}
	return func(session string) bool { return public[session] || session == who.claims.Session }, nil
}

// authorize checks that the caller may watch the recordings of session.
func (p *replays) authorize(r *http.Request, session string) (public bool, err error) {
	if c, err := p.s.cfg.Catalog.Get(session); err == nil && c.PublicReplays {
		return true, nil
	}
	_, err = p.s.authorize(r, session)
	return false, err
}

// recording resolves {id} and checks access.
func (p *replays) recording(r *http.Request) (recorder.Meta, bool, error) {
	m, err := p.rec.Get(chi.URLParam(r, "id"))
	if err != nil {
		return m, false, err
	}
	public, err := p.authorize(r, m.Session)
	return m, public, err
}

func (p *replays) get(w http.ResponseWriter, r *http.Request) {
	m, _, err := p.recording(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := view(m)
	// An embed plays its one recording: it is not told of the others.
	if _, err := auth.BearerToken(r); err != nil {
		v = p.withRelated(v)
	} else if who, err := p.s.authenticate(r); err == nil && (who.admin || who.claims.Role != auth.RoleEmbed) {
		v = p.withRelated(v)
	}
	writeJSON(w, http.StatusOK, v)
}

func (p *replays) delete(w http.ResponseWriter, r *http.Request) {
	if err := p.s.requireAdmin(r); err != nil {
		p.fail(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	m, getErr := p.rec.Get(id)
	err := p.rec.Delete(r.Context(), id)
	if getErr == nil && p.cache != nil {
		// Also when the store failed half way: what is left is unreachable anyway.
		p.cache.evictPrefix(m.Prefix)
	}
	// Its embed tokens go with it: they could play nothing, yet stay listed until
	// they expire (a year). Whenever it is gone: deleted now, or half way (the
	// store failed, but the index no longer has it), or by an earlier request whose
	// removal of them failed (which this one, answered 404, finishes).
	if _, gone := p.rec.Get(id); errors.Is(gone, recorder.ErrNotFound) {
		n, eerr := p.s.cfg.Catalog.DeleteEmbeds(id)
		switch {
		case eerr != nil && err == nil:
			err = fmt.Errorf("the recording is deleted, its embed tokens not (delete it again): %w", eerr)
		case eerr != nil:
			p.s.log.Warn("embed tokens of a deleted recording", "recording", id, "err", eerr)
		case n > 0:
			p.s.log.Info("embed tokens of a deleted recording revoked", "recording", id, "embeds", n)
		}
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// file serves one stored file of a recording: playlists, init and media segments.
func (p *replays) file(w http.ResponseWriter, r *http.Request) {
	pw := newProgressWriter(w, p.idle)
	defer pw.done()
	w = pw
	m, public, err := p.recording(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	name := chi.URLParam(r, "*")
	key, err := p.rec.Key(m.ID, name)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	cache := "private, max-age=31536000, immutable" // segments never change
	if public {
		cache = "public, max-age=31536000, immutable"
	}
	if strings.HasSuffix(name, ".m3u8") {
		p.playlist(w, r, key)
		return
	}
	// What is left are init and media segments: immutable once stored.
	if p.redirect {
		if u, err := p.st.PresignGet(r.Context(), key, presignExpiry); err == nil {
			w.Header().Set("Cache-Control", "private, no-store") // the target expires
			http.Redirect(w, r, u, http.StatusFound)
			return
		} else if !errors.Is(err, storage.ErrNotSupported) {
			p.s.log.Warn("presign failed; serving the object directly", "key", key, "err", err)
		}
	}
	p.serveObject(w, r, key, cache, true)
}

// playlist serves a playlist, revalidated on every use (it grows while live).
// When the request carried its token in the query (players cannot set headers),
// the token is added to the playlist's URIs so segment requests carry it too.
func (p *replays) playlist(w http.ResponseWriter, r *http.Request, key string) {
	token := r.URL.Query().Get("token")
	if token == "" {
		p.serveObject(w, r, key, "no-cache", false)
		return
	}
	rc, info, err := p.st.Open(r.Context(), key, 0, -1)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(rc, 32<<20))
	rc.Close()
	if err != nil {
		p.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", info.ContentType)
	w.Header().Set("Cache-Control", "no-cache")
	p.serveContent(w, r, info.ModTime, bytes.NewReader(withToken(body, token)))
}

// withToken appends ?token= to every URI of an HLS playlist.
func withToken(pl []byte, token string) []byte {
	q := "?token=" + url.QueryEscape(token)
	var b strings.Builder
	for line := range strings.Lines(string(pl)) {
		trimmed := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(trimmed, "#EXT-X-MAP:URI="):
			uri := strings.Trim(strings.TrimPrefix(trimmed, "#EXT-X-MAP:URI="), `"`)
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", uri+q)
		case trimmed != "" && !strings.HasPrefix(trimmed, "#"):
			b.WriteString(trimmed + q + "\n")
		default:
			b.WriteString(trimmed + "\n")
		}
	}
	return []byte(b.String())
}

// download streams a rendition as one MP4, with Range support for seeking. One
// address receives at most a few at once (ReplayConfig.MaxDownloadsPerAddr).
func (p *replays) download(w http.ResponseWriter, r *http.Request) {
	pw := newProgressWriter(w, p.idle)
	defer pw.done()
	w = pw
	m, _, err := p.recording(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		addr := limit.ClientAddr(r)
		release, ok := p.downloads.Acquire(addr)
		if !ok {
			w.Header().Set("Retry-After", "10")
			p.fail(w, r, fmt.Errorf("%w: %d downloads from %s already in progress", errTooManyDownloads, p.downloads.Max(), addr))
			return
		}
		defer release()
	}
	rendition := chi.URLParam(r, "rendition")
	if rendition == "" {
		rendition = recorder.MainRendition
	}
	d, err := p.rec.Download(r.Context(), m.ID, rendition)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", d.Name))
	cache := "no-cache"
	if d.Complete {
		cache = "private, max-age=3600"
	}
	p.serveComposite(w, r, d, cache)
}

var (
	errRangeNotSatisfiable = errors.New("range not satisfiable")
	errTooManyDownloads    = errors.New("too many downloads at once: wait for one to finish")
	errPreconditionFailed  = errors.New("precondition failed: the object does not match If-Match or If-Unmodified-Since")
	// errObjectChanged: a stored part of a download has another size than the
	// recording's index says (it was rewritten or is damaged).
	errObjectChanged = errors.New("stored object changed")
)
