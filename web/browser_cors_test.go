package web

import (
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testrec"
	"lectern/recorder"
	"lectern/web/ui"
)

// portalPage is a training portal's page on another origin: it calls Lectern's API
// with a Bearer token, plays the live lecture with a WHEP client that trickles its
// ICE candidates (PATCH), asks the WHEP endpoint what it supports as a WHIP client
// does (OPTIONS), and plays a replay with hls.js sending the token as a header. The
// libraries are the ones the pages vendor, served by the portal itself. {{lectern}}
// is Lectern's base URL.
const portalPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Portal</title></head>
<body>
<video id="live" muted autoplay playsinline></video>
<video id="replay" muted playsinline></video>
<script type="module">
import Hls from '/vendor/hls.light.min.mjs';
import { WHEPClient } from '/vendor/whep.js';
const lectern = '{{lectern}}';
const seen = { patches: [], errors: [] };
// Every PATCH the WHEP client sends, with its status (or its failure).
const nativeFetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const patch = init && init.method === 'PATCH';
  try {
    const r = await nativeFetch(input, init);
    if (patch) seen.patches.push(r.status);
    return r;
  } catch (e) {
    if (patch) seen.patches.push('failed: ' + e.message);
    throw e;
  }
};
window.addEventListener('unhandledrejection', (e) => seen.errors.push(String(e.reason)));
window.portal = {
  seen,
  async api(p, token) {
    try {
      const r = await fetch(lectern + p, { headers: { Authorization: 'Bearer ' + token } });
      return { status: r.status, body: await r.json() };
    } catch (e) {
      return { status: 0, error: e.message };
    }
  },
  async options(p, token) {
    try {
      const r = await fetch(lectern + p, { method: 'OPTIONS', headers: { Authorization: 'Bearer ' + token } });
      return { status: r.status, methods: r.headers.get('Access-Control-Allow-Methods') || '', acceptPost: r.headers.get('Accept-Post') || '' };
    } catch (e) {
      return { status: 0, error: e.message };
    }
  },
  async whep(p, token) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      const v = document.getElementById('live');
      v.srcObject = stream;
      v.play().catch(() => {});
    };
    window.portal.pc = pc;
    await new WHEPClient().view(pc, lectern + p, token);
    return true;
  },
  async framesDecoded() {
    let n = 0;
    (await window.portal.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0;
    });
    return n;
  },
  replay(id, token) {
    const video = document.getElementById('replay');
    const hls = new Hls({
      enableWorker: false,
      xhrSetup: (xhr, url) => {
        xhr.open('GET', url, true);
        xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      },
    });
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (d.fatal) seen.errors.push('hls: ' + d.details + ' ' + ((d.response && d.response.code) || ''));
    });
    hls.loadSource(lectern + '/replay/' + id + '/index.m3u8');
    hls.attachMedia(video);
    video.play().catch((e) => seen.errors.push('play: ' + e.message));
    return true;
  },
};
window.portalReady = true;
</script>
</body></html>`

// startPortal serves portalPage and the vendored libraries on its own loopback port
// (another origin than Lectern's). It returns the portal's origin and a function
// that starts serving, given Lectern's URL (known only once the stack is up, and
// the stack needs the portal's origin first).
func startPortal(t *testing.T) (origin string, serve func(lecternURL string)) {
	t.Helper()
	vendor, err := fs.Sub(ui.Files, "assets/vendor")
	if err != nil {
		t.Fatal(err)
	}
	var page string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vendor/{file}", func(w http.ResponseWriter, r *http.Request) {
		body, err := fs.ReadFile(vendor, r.PathValue("file"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if ext := path.Ext(r.PathValue("file")); ext == ".js" || ext == ".mjs" {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})
	srv := httptest.NewUnstartedServer(mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	return fmt.Sprintf("http://127.0.0.1:%d", addr.Port), func(lecternURL string) {
		page = strings.ReplaceAll(portalPage, "{{lectern}}", lecternURL)
		srv.Start()
	}
}

// publishClip publishes a looping H.264 + Opus clip over WHIP (a pion peer) as the
// trainer of session, until the returned stop is called; stop ends the WHIP session
// (DELETE), so a recording is finalised.
func publishClip(t *testing.T, s *stack, session, trainer string) (stop func()) {
	t.Helper()
	return playWHIP(t, s, session, trainer, testrec.LectureClip(t), http.StatusOK)
}

// recordedLecture waits until the session's only recording holds at least seconds
// of stored media, stops the publisher and waits until the recording is complete.
func recordedLecture(t *testing.T, s *stack, session string, seconds float64, stop func()) recordingSummary {
	t.Helper()
	var rec recordingSummary
	eventually(t, fmt.Sprintf("%.0f s of stored recording", seconds), 90*time.Second, func() bool {
		var page recordingPage
		apiGet(t, s, "/api/recordings?session="+session, &page)
		if len(page.Recordings) == 1 {
			rec = page.Recordings[0]
		}
		return rec.Duration >= seconds
	})
	stop()
	eventually(t, "the recording to be complete", 60*time.Second, func() bool {
		var v recordingView
		apiGet(t, s, "/api/recordings/"+rec.ID, &v)
		return v.Status == recorder.StatusComplete
	})
	return rec
}

// TestBrowserCrossOriginPortal: a page of another origin (a training portal) calls
// the API with a Bearer token, reads from a WHEP endpoint's OPTIONS that trickle ICE
// (PATCH) is supported, plays the live lecture with a WHEP client that trickles its
// candidates, and plays the replay with hls.js sending the token as a header. Every
// preflight must pass: no request fails and the console stays clean.
func TestBrowserCrossOriginPortal(t *testing.T) {
	origin, servePortal := startPortal(t)
	s := newStack(t, stackOptions{recorder: true, corsOrigins: []string{origin}, timeout: 5 * time.Minute})
	servePortal(s.url)
	id := s.createSession("Bài giảng cho cổng đào tạo")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	viewer := s.token(id, auth.RoleViewer, "portal")
	learner := s.token(id, auth.RoleLearner, "hv1")
	stop := publishClip(t, s, id, trainer)

	b := newBrowser(t)
	portal := b.tab("portal")
	portal.open(origin + "/")
	portal.waitJS("portal script loaded", `window.portalReady === true`, 20*time.Second)

	// The API, with a Bearer token.
	var got struct {
		Status int
		Error  string
		Body   map[string]any
	}
	if err := portal.eval(`window.portal.api('/api/sessions/`+id+`', '`+viewer+`')`, &got); err != nil {
		portal.fail("API call: %v", err)
	}
	if got.Status != http.StatusOK || got.Body["id"] != id {
		portal.fail("GET /api/sessions/%s from the portal: %d %q %v", id, got.Status, got.Error, got.Body)
	}

	// A WHIP/WHEP client's capability check.
	var opts struct {
		Status         int
		Methods, Error string
		AcceptPost     string
	}
	if err := portal.eval(`window.portal.options('/whep/`+id+`', '`+viewer+`')`, &opts); err != nil {
		portal.fail("OPTIONS: %v", err)
	}
	if opts.Status != http.StatusNoContent || !strings.Contains(opts.Methods, "PATCH") || opts.AcceptPost != mimeSDP {
		portal.fail("OPTIONS /whep from the portal: %+v", opts)
	}

	// The live lecture over WHEP, candidates trickled.
	if err := portal.eval(`window.portal.whep('/whep/`+id+`', '`+viewer+`')`, nil); err != nil {
		portal.fail("WHEP: %v", err)
	}
	portal.waitJS("live video decoded", `window.portal.framesDecoded().then((n) => n > 30)`, 30*time.Second)
	portal.waitJS("a trickle PATCH sent", `window.portal.seen.patches.length > 0`, 10*time.Second)
	var patches []any
	if err := portal.eval(`window.portal.seen.patches`, &patches); err != nil {
		portal.fail("patches: %v", err)
	}
	for _, p := range patches {
		if status, ok := p.(float64); !ok || status != http.StatusNoContent {
			portal.fail("trickle PATCH from the portal: %v, want 204 each", patches)
		}
	}

	// The replay, with hls.js sending the token as a header.
	rec := recordedLecture(t, s, id, 6, stop)
	if err := portal.eval(`window.portal.api('/api/recordings?session=`+id+`', '`+learner+`')`, &got); err != nil {
		portal.fail("recordings: %v", err)
	}
	if got.Status != http.StatusOK {
		portal.fail("GET /api/recordings from the portal: %d %q", got.Status, got.Error)
	}
	if err := portal.eval(`window.portal.replay('`+rec.ID+`', '`+learner+`')`, nil); err != nil {
		portal.fail("replay: %v", err)
	}
	portal.waitJS("replay playing", `document.getElementById('replay').currentTime > 2`, 30*time.Second)
	var errs []string
	if err := portal.eval(`window.portal.seen.errors`, &errs); err != nil || len(errs) > 0 {
		portal.fail("errors on the portal page: %q %v", errs, err)
	}
	portal.screenshot("portal-cross-origin")
	portal.noConsoleErrors()
}
