package main

import (
	"net/http/httptest"
	"strings"
	"testing"

	"lectern/internal/testenv"
)

// TestReplayRedirectCSP: with -replay-redirect and recordings in S3, the pages'
// Content-Security-Policy lets players reach the store's origin, where segment
// requests are redirected (the replay page's hls.js follows them); without
// redirects the pages reach their own origin only.
func TestReplayRedirectCSP(t *testing.T) {
	m := testenv.StartMinIO(t)
	for _, redirect := range []string{"on", "off"} {
		a := testApp(t, "-s3-endpoint", m.URL(), "-s3-bucket", testenv.NewBucketName(t),
			"-s3-access-key", m.AccessKey, "-s3-secret-key", m.SecretKey, "-s3-path-style", "on",
			"-replay-redirect", redirect)
		rec := httptest.NewRecorder()
		a.http.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/replays", nil))
		csp := rec.Header().Get("Content-Security-Policy")
		allowed := strings.Contains(csp, "connect-src 'self' "+m.URL()+";") && strings.Contains(csp, "media-src 'self' blob: mediastream: "+m.URL()+";")
		if rec.Code != 200 || allowed != (redirect == "on") {
			t.Errorf("-replay-redirect %s: %d, CSP %q (store %s)", redirect, rec.Code, csp, m.URL())
		}
	}
}
