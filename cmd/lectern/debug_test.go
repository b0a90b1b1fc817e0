package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The debug listener serves the profiler's pages and nothing of the API.
func TestDebugHandler(t *testing.T) {
	h := debugHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/heap?debug=1", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Fatalf("heap profile: %d %.200q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/sessions", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/api/sessions on the debug listener: %d, want 404", rec.Code)
	}
}
