package web

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"lectern/storage"
)

// PagesOption configures NewPages.
type PagesOption func(*pagesOptions) error

type pagesOptions struct {
	mediaOrigins []string // besides 'self', in connect-src and media-src
}

// WithMediaOrigin lets the pages fetch media from origin ("https://s3.example.org",
// "http://127.0.0.1:9000") besides their own: the object store that replay segments
// are redirected to (ReplayConfig.Redirect). The pages' Content-Security-Policy
// otherwise allows 'self' only, and the browser refuses to follow the redirect
// ("Refused to connect ... violates connect-src"). See PresignedOrigin.
func WithMediaOrigin(origin string) PagesOption {
	return func(o *pagesOptions) error {
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(u.Host, " ;,'\"") {
			return fmt.Errorf("web: media origin %q is not an http(s)://host[:port] origin", origin)
		}
		o.mediaOrigins = append(o.mediaOrigins, u.Scheme+"://"+strings.ToLower(u.Host))
		return nil
	}
}

// contentSecurityPolicy is the pages' policy but for frame-ancestors, which each
// page adds: everything from the server itself, plus the media origins.
func contentSecurityPolicy(o pagesOptions) string {
	media := ""
	if len(o.mediaOrigins) > 0 {
		media = " " + strings.Join(o.mediaOrigins, " ")
	}
	return "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:" + media + "; " +
		"worker-src 'self' blob:; style-src 'self'; connect-src 'self'" + media + "; object-src 'none'; base-uri 'none'; frame-ancestors "
}

// presignProbeKey is the key presigned to learn a store's URL origin (never fetched).
const presignProbeKey = "origin-probe"

// PresignedOrigin is the origin (scheme://host[:port]) of the URLs store presigns,
// where replay redirects send players: give it to WithMediaOrigin. It is "" for a
// store that cannot presign (a local directory: nothing is redirected). It signs a
// URL locally; with a store whose region is not configured, the first call may ask
// the store for its region.
func PresignedOrigin(ctx context.Context, store interface {
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}) (string, error) {
	raw, err := store.PresignGet(ctx, presignProbeKey, time.Minute)
	if errors.Is(err, storage.ErrNotSupported) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("web: learning the store's URL origin: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("web: the store presigned %q, not an absolute URL", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}
