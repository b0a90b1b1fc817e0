package rtsp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"lectern/auth"
)

// realm is the Basic realm the server challenges with: RTSP clients (ffmpeg, VLC,
// hardware decoders) send the credentials of their URL only after a 401 that names
// a scheme they know.
const realm = "lectern"

// presentedToken returns the token a request carries: the password of a Basic
// Authorization header (any user name; a Bearer header is accepted too), or else the
// token query parameter of its URL.
func presentedToken(header base.Header, query url.Values) string {
	if v := header["Authorization"]; len(v) > 0 && v[0] != "" {
		h := v[0]
		scheme, rest, _ := strings.Cut(h, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToLower(scheme) {
		case "basic":
			raw, err := base64.StdEncoding.DecodeString(rest)
			if err == nil {
				if _, pass, ok := strings.Cut(string(raw), ":"); ok && pass != "" {
					return pass
				}
			}
		case "bearer":
			if rest != "" {
				return rest
			}
		}
	}
	return query.Get("token")
}

// authorize checks token, presented from the client address addr, for an
// operation on session by one of roles (any role when none are given). The admin
// token is accepted for every session. Failures count in Config.AuthFailures (see
// auth.Authenticator). The error matches auth.ErrMissingToken, ErrInvalidToken or
// ErrExpiredToken (401), ErrWrongSession or ErrWrongRole (403), or
// ErrTooManyFailures (503).
func (s *Server) authorize(addr, token, session string, roles ...auth.Role) error {
	if token == "" {
		return fmt.Errorf("%w: give the token as the RTSP password (rtsp://any:TOKEN@host/…) or as ?token=", auth.ErrMissingToken)
	}
	if s.cfg.Tokens == nil { // the admin token only
		if retry, ok := s.cfg.AuthFailures.Allow(addr); !ok {
			return &auth.TooManyFailuresError{Retry: retry}
		}
		if auth.AdminTokenMatches(token, s.cfg.AdminToken) {
			return nil
		}
		s.cfg.AuthFailures.Failed(addr)
		return fmt.Errorf("%w: not the admin token", auth.ErrInvalidToken)
	}
	authn := auth.Authenticator{Issuer: s.cfg.Tokens, AdminToken: s.cfg.AdminToken, Failures: s.cfg.AuthFailures}
	claims, admin, err := authn.Authenticate(addr, token)
	if admin {
		return nil
	}
	if errors.Is(err, auth.ErrInvalidToken) {
		return fmt.Errorf("%w (clients that cut long passwords, as ffmpeg does past 127 characters, must give the token as ?token=)", err)
	}
	if err != nil {
		return err
	}
	return claims.Allows(session, roles...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
