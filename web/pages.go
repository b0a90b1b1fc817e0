package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"lectern/catalog"
	"lectern/web/ui"
)

// Pages serves Lectern's web pages and their assets from files embedded in the binary
// (package lectern/web/ui): the lobby at /, the studio at /studio/{session}, the
// classroom at /room/{session}, the replay library at /replays, a replay at
// /replays/{recording} and its embeddable player at /replays/{recording}/embed.
//
// The pages are plain ES modules that the browser loads as they are, under
// /assets/{version}/, where version is a hash of every asset: asset URLs change
// whenever any asset does, so they are cached for a year, while the HTML pages are
// revalidated on every load (ETag). Text assets are gzipped once, at construction.
//
// Pages is immutable after NewPages and safe for concurrent use. Set it as
// Config.Pages: the router hands it every request the API does not match.
type Pages struct {
	version string
	pages   map[string]*staticFile // page name ("lobby") → rendered HTML
	assets  map[string]*staticFile // path under assets/ ("js/room.js") → file
	csp     string                 // Content-Security-Policy, up to its frame-ancestors
}

// staticFile is one file ready to serve.
type staticFile struct {
	body        []byte
	gz          []byte // gzip-compressed body; nil when compression does not pay
	contentType string
	etag        string // strong ETag of body, quoted
}

// assetsPlaceholder is replaced in every page by the versioned assets path.
const assetsPlaceholder = "{{assets}}"

// contentTypes are the media types of the files the pages use; an asset of another
// type is refused at construction, so that what is served never depends on the
// host's MIME tables.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".txt":         "text/plain; charset=utf-8",
	".webmanifest": "application/manifest+json; charset=utf-8",
}

// apiPrefixes are the first path segments of machine interfaces: an unknown URL under
// them gets a JSON 404, like the API's own errors, rather than an HTML page.
var apiPrefixes = []string{"api", "whip", "whep", "replay", "healthz", "readyz", "metrics"}

// recordingID matches what a recording id may look like in a page URL.
var recordingID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// NewPages returns the handler of the embedded web pages.
func NewPages(opts ...PagesOption) (*Pages, error) {
	var o pagesOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	p, err := newPages(ui.Files)
	if err != nil {
		return nil, err
	}
	p.csp = contentSecurityPolicy(o)
	return p, nil
}

// newPages builds Pages from a file system laid out like lectern/web/ui: pages/*.html
// and assets/**.
func newPages(fsys fs.FS) (*Pages, error) {
	p := &Pages{pages: map[string]*staticFile{}, assets: map[string]*staticFile{}, csp: contentSecurityPolicy(pagesOptions{})}
	sum := sha256.New()
	err := fs.WalkDir(fsys, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		f, err := newStaticFile(name, body)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(name, "assets/")
		p.assets[rel] = f
		fmt.Fprintf(sum, "%s\x00%s\x00", rel, f.etag)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: loading page assets: %w", err)
	}
	p.version = hex.EncodeToString(sum.Sum(nil))[:12]
	names, err := fs.Glob(fsys, "pages/*.html")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("web: no pages embedded (%v)", err)
	}
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("web: loading page: %w", err)
		}
		body = bytes.ReplaceAll(body, []byte(assetsPlaceholder), []byte("/assets/"+p.version))
		f, err := newStaticFile(name, body)
		if err != nil {
			return nil, err
		}
		p.pages[strings.TrimSuffix(path.Base(name), ".html")] = f
	}
	for _, want := range []string{"lobby", "studio", "room", "replays", "replay", "embed", "notfound"} {
		if p.pages[want] == nil {
			return nil, fmt.Errorf("web: page %s.html is missing", want)
		}
	}
	return p, nil
}

func newStaticFile(name string, body []byte) (*staticFile, error) {
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		return nil, fmt.Errorf("web: %s: no content type known for %q files", name, path.Ext(name))
	}
	h := sha256.Sum256(body)
	f := &staticFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(h[:])[:20] + `"`}
	if strings.HasPrefix(ct, "text/") || strings.Contains(ct, "json") || strings.Contains(ct, "svg") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			f.gz = buf.Bytes()
		}
	}
	return f, nil
}

// Version is the hash of the assets, the second segment of their URLs.
func (p *Pages) Version() string { return p.version }

// ServeHTTP serves a page or an asset; anything else gets a 404 page (or a JSON 404
// under the API's prefixes).
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed", Status: http.StatusMethodNotAllowed})
		return
	}
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case seg[0] == "assets" && len(seg) >= 3:
		p.serveAsset(w, r, seg[1], strings.Join(seg[2:], "/"))
		return
	case slices.Contains(apiPrefixes, seg[0]):
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not found: " + r.URL.Path, Status: http.StatusNotFound})
		return
	}
	if name := pageFor(seg); name != "" {
		p.servePage(w, r, name, http.StatusOK)
		return
	}
	p.servePage(w, r, "notfound", http.StatusNotFound)
}

// pageFor returns the page that serves a path (split into segments), or "".
func pageFor(seg []string) string {
	switch {
	case len(seg) == 1 && seg[0] == "":
		return "lobby"
	case len(seg) == 1 && seg[0] == "replays":
		return "replays"
	case len(seg) == 2 && seg[0] == "studio" && catalog.ValidID(seg[1]):
		return "studio"
	case len(seg) == 2 && seg[0] == "room" && catalog.ValidID(seg[1]):
		return "room"
	case len(seg) == 2 && seg[0] == "replays" && recordingID.MatchString(seg[1]):
		return "replay"
	case len(seg) == 3 && seg[0] == "replays" && recordingID.MatchString(seg[1]) && seg[2] == "embed":
		return "embed"
	}
	return ""
}

func (p *Pages) servePage(w http.ResponseWriter, r *http.Request, name string, status int) {
	h := w.Header()
	// Pages carry tokens in their URLs: never send them on as a referrer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	frameAncestors := "'self'"
	if name == "embed" {
		frameAncestors = "*" // a training portal embeds the replay player
	} else {
		h.Set("X-Frame-Options", "SAMEORIGIN")
	}
	h.Set("Content-Security-Policy", p.csp+frameAncestors)
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self)")
	p.serveFile(w, r, p.pages[name], "no-cache", status)
}

func (p *Pages) serveAsset(w http.ResponseWriter, r *http.Request, version, name string) {
	f, ok := p.assets[name]
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such asset: " + name, Status: http.StatusNotFound})
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cache := "public, max-age=31536000, immutable"
	if version != p.version {
		cache = "no-cache" // a page from before an upgrade: serve what we have, keep nothing
	}
	p.serveFile(w, r, f, cache, http.StatusOK)
}

// serveFile writes f (gzipped when the client accepts it) or a 304 when the client's
// copy is current.
func (p *Pages) serveFile(w http.ResponseWriter, r *http.Request, f *staticFile, cacheControl string, status int) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", cacheControl)
	body, etag := f.body, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if status == http.StatusOK && etagMatches(r.Header.Get("If-None-Match"), f.etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// etagMatches reports whether an If-None-Match header names etag, in either of its
// encodings (both stand for the same content).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	gz := strings.TrimSuffix(etag, `"`) + `-gz"`
	for part := range strings.SplitSeq(header, ",") {
		tag := strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if tag == "*" || tag == etag || tag == gz {
			return true
		}
	}
	return false
}
