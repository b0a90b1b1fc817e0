package web

import (
	"net/http"
	"strings"
	"time"
)

// DefaultRequestTimeout is Config.RequestTimeout's default: ample for an SDP offer
// or a JSON body over a poor link, and for a page's scripts to be sent.
const DefaultRequestTimeout = 60 * time.Second

// deadlines bounds how long an ordinary request may hold its connection: its
// body must arrive within RequestTimeout (else 408), and its answer be written
// within twice that (time left to answer a body that came late), so a client
// sending or reading a byte a second cannot hold a connection for ever.
//
// These are deadlines on the connection, per request, rather than the
// http.Server's ReadTimeout and WriteTimeout, which apply to every route: an
// event stream or a replay download legitimately lasts an hour. Those routes
// (streamingRoute) start with no deadline at all (one left by an earlier request
// on the same keep-alive connection is cleared) and bound their clients' idle
// time themselves, renewing a deadline as they write.
//
// A read deadline reached while the handler still runs also ends its context
// (the server reads in the background to notice a client going away): handlers
// of ordinary routes finish well within RequestTimeout.
func (s *Server) deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		var read, write time.Time // zero: no deadline
		if !streamingRoute(r.URL.Path) {
			now := time.Now()
			read, write = now.Add(s.cfg.RequestTimeout), now.Add(2*s.cfg.RequestTimeout)
		}
		// Errors mean the connection cannot take deadlines (a test recorder);
		// there is nothing to bound then.
		_ = rc.SetReadDeadline(read)
		_ = rc.SetWriteDeadline(write)
		next.ServeHTTP(w, r)
	})
}

// streamingRoute reports the routes whose answers last as long as the client
// reads: a session's event stream (SSE) and everything under /replay/ (HLS
// playlists and segments, download.mp4).
func streamingRoute(path string) bool {
	return strings.HasPrefix(path, "/replay/") ||
		(strings.HasPrefix(path, "/api/sessions/") && strings.HasSuffix(path, "/events"))
}
