package web

import (
	"context"
	"strings"
	"testing"

	"lectern/storage"
)

// TestPagesMediaOrigin: the pages' CSP lets connections and media reach a configured
// store origin (and only its origin); what is not an http(s) origin is refused, so
// nothing can be smuggled into the policy.
func TestPagesMediaOrigin(t *testing.T) {
	plain, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.csp, "connect-src 'self';") || !strings.Contains(plain.csp, "media-src 'self' blob: mediastream:;") {
		t.Fatalf("default CSP %q", plain.csp)
	}
	p, err := NewPages(WithMediaOrigin("HTTPS://S3.Example.org:9000/"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"connect-src 'self' https://s3.example.org:9000;", "media-src 'self' blob: mediastream: https://s3.example.org:9000;"} {
		if !strings.Contains(p.csp, want) {
			t.Errorf("CSP %q lacks %q", p.csp, want)
		}
	}
	for _, bad := range []string{"", "s3.example.org", "ftp://s3.example.org", "https://s3.example.org/bucket",
		"https://s3.example.org; script-src *", "https://user:pw@s3.example.org", "https://s3.example.org?x=1", "javascript:alert(1)"} {
		if _, err := NewPages(WithMediaOrigin(bad)); err == nil {
			t.Errorf("media origin %q accepted", bad)
		}
	}

	dir, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if origin, err := PresignedOrigin(context.Background(), dir); origin != "" || err != nil {
		t.Fatalf("PresignedOrigin(local dir) = %q, %v; want nothing", origin, err)
	}
}
