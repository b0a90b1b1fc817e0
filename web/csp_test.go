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

// FuzzWithMediaOrigin: whatever origin is accepted, the policy keeps its directives
// (nothing can be added or cut short through the origin) and names the origin in
// connect-src and media-src only.
func FuzzWithMediaOrigin(f *testing.F) {
	for _, seed := range []string{"http://127.0.0.1:9000", "https://s3.example.org", "https://s3.example.org; script-src *",
		"https://a.example/ 'unsafe-inline'", "http://[::1]:9000", "https://x\n.example", "https://ex ample.org", ""} {
		f.Add(seed)
	}
	base := contentSecurityPolicy(pagesOptions{})
	f.Fuzz(func(t *testing.T, origin string) {
		var o pagesOptions
		if err := WithMediaOrigin(origin)(&o); err != nil {
			return
		}
		csp := contentSecurityPolicy(o)
		if strings.Count(csp, ";") != strings.Count(base, ";") || strings.ContainsAny(o.mediaOrigins[0], " \t\r\n;,'\"") {
			t.Fatalf("origin %q gives the policy %q", origin, csp)
		}
		if strings.Count(csp, o.mediaOrigins[0]) != 2 {
			t.Fatalf("origin %q appears %d times in %q, want in connect-src and media-src", origin, strings.Count(csp, o.mediaOrigins[0]), csp)
		}
	})
}
