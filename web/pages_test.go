package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"lectern/web/ui"
)

func newTestPages(t *testing.T) *Pages {
	t.Helper()
	p, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPagesRoutes(t *testing.T) {
	p := newTestPages(t)
	v := p.Version()
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType        string
		contains           string
	}{
		{"lobby", "GET", "/", 200, "text/html", "page-lobby"},
		{"studio", "GET", "/studio/abcdefghij", 200, "text/html", "page-studio"},
		{"room", "GET", "/room/abcdefghij", 200, "text/html", "page-room"},
		{"room with slash", "GET", "/room/abcdefghij/", 200, "text/html", "page-room"},
		{"replays", "GET", "/replays", 200, "text/html", "page-replays"},
		{"replay", "GET", "/replays/rec_01-x", 200, "text/html", "page-replay"},
		{"embed", "GET", "/replays/rec_01-x/embed", 200, "text/html", "page-embed"},
		{"head", "HEAD", "/", 200, "text/html", ""},
		{"malformed session id", "GET", "/studio/ABC", 404, "text/html", "page-notfound"},
		{"unknown page", "GET", "/nothing/here", 404, "text/html", "page-notfound"},
		{"unknown api path", "GET", "/api/nothing", 404, "application/json", `"status":404`},
		{"recording api before it exists", "GET", "/api/recordings", 404, "application/json", `"error"`},
		{"replay files before they exist", "GET", "/replay/x/index.m3u8", 404, "application/json", `"error"`},
		{"module", "GET", "/assets/" + v + "/js/room.js", 200, "text/javascript", "Viewer"},
		{"vendored module", "GET", "/assets/" + v + "/vendor/whep.js", 200, "text/javascript", "WHEPClient"},
		{"stylesheet", "GET", "/assets/" + v + "/css/app.css", 200, "text/css", ".stage"},
		{"icon", "GET", "/assets/" + v + "/img/icon.svg", 200, "image/svg+xml", "<svg"},
		{"asset of an older version", "GET", "/assets/0123456789ab/js/room.js", 200, "text/javascript", "Viewer"},
		{"unknown asset", "GET", "/assets/" + v + "/js/nope.js", 404, "application/json", "nope.js"},
		{"post", "POST", "/", 405, "application/json", "method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD with a body")
			}
		})
	}
}

func TestPagesHeaders(t *testing.T) {
	p := newTestPages(t)
	get := func(path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		return rec
	}
	t.Run("pages are revalidated and keep tokens to themselves", func(t *testing.T) {
		h := get("/room/abcdefghij").Header()
		for k, want := range map[string]string{"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer", "X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "nosniff"} {
			if h.Get(k) != want {
				t.Errorf("%s: %q, want %q", k, h.Get(k), want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'self'") {
			t.Errorf("CSP %q", csp)
		}
	})
	t.Run("the embeddable player may be framed by a portal", func(t *testing.T) {
		h := get("/replays/r1/embed").Header()
		if h.Get("X-Frame-Options") != "" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors *") {
			t.Errorf("embed headers: %v", h)
		}
	})
	t.Run("versioned assets are immutable", func(t *testing.T) {
		if cc := get("/assets/" + p.Version() + "/js/room.js").Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("Cache-Control %q", cc)
		}
		if cc := get("/assets/000000000000/js/room.js").Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("old version Cache-Control %q", cc)
		}
	})
	t.Run("pages link the current asset version", func(t *testing.T) {
		body := get("/").Body.String()
		if strings.Contains(body, assetsPlaceholder) || !strings.Contains(body, "/assets/"+p.Version()+"/js/lobby.js") {
			t.Errorf("lobby links: %s", body)
		}
	})
	t.Run("gzip when accepted", func(t *testing.T) {
		plain := get("/assets/" + p.Version() + "/js/studio.js")
		rec := get("/assets/"+p.Version()+"/js/studio.js", "Accept-Encoding", "br, gzip;q=0.8")
		if rec.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
			t.Fatalf("headers %v", rec.Header())
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(zr)
		if !bytes.Equal(got, plain.Body.Bytes()) {
			t.Error("gzipped body differs")
		}
		if rec.Header().Get("ETag") == plain.Header().Get("ETag") {
			t.Error("both encodings have the same ETag")
		}
		if get("/assets/"+p.Version()+"/js/studio.js", "Accept-Encoding", "gzip;q=0").Header().Get("Content-Encoding") != "" {
			t.Error("gzip sent with q=0")
		}
	})
	t.Run("304 when current", func(t *testing.T) {
		first := get("/")
		for _, enc := range []string{"", "gzip"} {
			rec := get("/", "If-None-Match", first.Header().Get("ETag"), "Accept-Encoding", enc)
			if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
				t.Errorf("Accept-Encoding %q: %d with %d bytes", enc, rec.Code, rec.Body.Len())
			}
		}
		if rec := get("/", "If-None-Match", `"something-else"`); rec.Code != http.StatusOK {
			t.Errorf("stale ETag: %d", rec.Code)
		}
	})
}

func TestPagesThroughRouter(t *testing.T) {
	s := newStack(t, stackOptions{pages: newTestPages(t)})
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/", "text/html", 200},
		{"/room/abcdefghij", "text/html", 200},
		{"/api/sessions", "application/json", 200},
		{"/healthz", "text/plain", 200},
		{"/api/sessions/zzzzzzzzzz", "application/json", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, _ := s.do("GET", tc.path, testAdmin, "", "")
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType)
			}
		})
	}
}

// What pages and modules refer to must be embedded: {{assets}}/… in HTML, relative
// imports in JavaScript, url(…) in CSS.
func TestPagesReferencesResolve(t *testing.T) {
	refs := map[string]*regexp.Regexp{
		".html": regexp.MustCompile(`\{\{assets\}\}/([^"' >]+)`),
		".js":   regexp.MustCompile(`(?:from|import)\s*\(?\s*'(\.{1,2}/[^']+)'`),
		".css":  regexp.MustCompile(`url\((\.{1,2}/[^)]+)\)`),
	}
	err := fs.WalkDir(ui.Files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(name, "assets/vendor/") {
			return err
		}
		re := refs[path.Ext(name)]
		if re == nil {
			return nil
		}
		body, _ := fs.ReadFile(ui.Files, name)
		for _, m := range re.FindAllStringSubmatch(string(body), -1) {
			target := "assets/" + m[1]
			if path.Ext(name) != ".html" {
				target = path.Join(path.Dir(name), m[1])
			}
			if _, err := fs.Stat(ui.Files, target); err != nil {
				t.Errorf("%s refers to %s, which is not embedded", name, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every text key the pages use exists in Vietnamese and in English.
func TestPagesTranslations(t *testing.T) {
	src, err := fs.ReadFile(ui.Files, "assets/js/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	dict := func(lang string) map[string]bool {
		start := strings.Index(string(src), "const "+lang+" = {")
		end := strings.Index(string(src)[start:], "\n};")
		keys := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s+'([a-zA-Z.]+)':`).FindAllStringSubmatch(string(src)[start:start+end], -1) {
			keys[m[1]] = true
		}
		return keys
	}
	vi, en := dict("vi"), dict("en")
	if len(vi) < 100 {
		t.Fatalf("found only %d Vietnamese texts", len(vi))
	}
	for k := range vi {
		if !en[k] {
			t.Errorf("%q has no English text", k)
		}
	}
	for k := range en {
		if !vi[k] {
			t.Errorf("%q has no Vietnamese text", k)
		}
	}
	uses := regexp.MustCompile(`data-i18n="([^"]+)"|[:;]([a-zA-Z]+\.[a-zA-Z.]+)[;"]|\bt\('([a-zA-Z.]+)'`)
	_ = fs.WalkDir(ui.Files, "pages", func(name string, d fs.DirEntry, err error) error { return checkKeys(t, name, uses, vi) })
	_ = fs.WalkDir(ui.Files, "assets/js", func(name string, d fs.DirEntry, err error) error { return checkKeys(t, name, uses, vi) })
}

func checkKeys(t *testing.T, name string, uses *regexp.Regexp, keys map[string]bool) error {
	t.Helper()
	body, err := fs.ReadFile(ui.Files, name)
	if err != nil {
		return nil // a directory
	}
	for _, m := range uses.FindAllStringSubmatch(string(body), -1) {
		key := m[1] + m[2] + m[3]
		dynamic := strings.HasSuffix(key, ".") // t("role." + role): a family of keys
		if !keys[key] && !dynamic && strings.Contains(key, ".") && !strings.HasSuffix(key, ".js") && !strings.HasSuffix(key, ".css") {
			t.Errorf("%s uses the text %q, which i18n.js does not have", name, key)
		}
	}
	return nil
}

// The budget: all JavaScript but hls.js under 300 KB gzipped.
func TestPagesJavaScriptBudget(t *testing.T) {
	var total, hls int
	err := fs.WalkDir(ui.Files, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (path.Ext(name) != ".js" && path.Ext(name) != ".mjs") {
			return err
		}
		body, _ := fs.ReadFile(ui.Files, name)
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if strings.Contains(name, "hls") {
			hls += buf.Len()
		} else {
			total += buf.Len()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("JavaScript gzipped: %d KB of our own and vendored (budget 300 KB), hls.js %d KB", total/1024, hls/1024)
	if total > 300<<10 {
		t.Errorf("JavaScript is %d KB gzipped, over the 300 KB budget", total/1024)
	}
}

// The vendored files are the npm packages of package-lock.json, as scripts/build-ui.sh
// copies them. Checked when node_modules is installed (scripts/test-deps.sh does it).
func TestPagesVendoredFilesMatchNPM(t *testing.T) {
	list, err := os.ReadFile(filepath.Join("ui", "vendor.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("ui", "node_modules")); err != nil {
		t.Skip("web/ui/node_modules is not installed (scripts/test-deps.sh installs it); vendored files not compared")
	}
	var listed []string
	for line := range strings.SplitSeq(string(list), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		listed = append(listed, f[1])
		want, err := os.ReadFile(filepath.Join("ui", "node_modules", f[0]))
		if err != nil {
			t.Errorf("%s: %v (run scripts/build-ui.sh)", f[0], err)
			continue
		}
		got, err := fs.ReadFile(ui.Files, "assets/vendor/"+f[1])
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("assets/vendor/%s differs from node_modules/%s: run scripts/build-ui.sh and commit", f[1], f[0])
		}
	}
	entries, _ := fs.ReadDir(ui.Files, "assets/vendor")
	for _, e := range entries {
		if !slices.Contains(listed, e.Name()) {
			t.Errorf("assets/vendor/%s is not listed in vendor.txt", e.Name())
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip", true},
		{"br;q=1.0, GZIP;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"br", false},
		{"x-gzip", false},
	} {
		t.Run(tc.header, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Accept-Encoding", tc.header)
			if got := acceptsGzip(r); got != tc.want {
				t.Errorf("acceptsGzip(%q) = %v", tc.header, got)
			}
		})
	}
}

func TestETagMatches(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         bool
	}{
		{"empty", "", false},
		{"same", `"abc"`, true},
		{"gzip variant", `"abc-gz"`, true},
		{"weak", `W/"abc"`, true},
		{"in a list", `"x", "abc"`, true},
		{"star", `*`, true},
		{"other", `"abd"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := etagMatches(tc.header, `"abc"`); got != tc.want {
				t.Errorf("etagMatches(%q) = %v", tc.header, got)
			}
		})
	}
}

func TestPageFor(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/", "lobby"},
		{"/studio/abcdefghij", "studio"},
		{"/studio/abcdefghij/x", ""},
		{"/studio/abc", ""},
		{"/room/0123456789", "room"},
		{"/replays", "replays"},
		{"/replays/r", "replay"},
		{"/replays/.hidden", ""},
		{"/replays/r/embed", "embed"},
		{"/replays/r/other", ""},
		{"/lobby", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := pageFor(strings.Split(strings.Trim(tc.path, "/"), "/")); got != tc.want {
				t.Errorf("pageFor(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}
