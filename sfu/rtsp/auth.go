package rtsp

import (
	"crypto/md5"
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

// clientAuth answers a camera's authentication challenge (RFC 2617 as used by RTSP:
// Basic, or Digest with MD5, with or without qop=auth).
type clientAuth struct {
	user, pass string

	scheme string // "", "basic" or "digest"
	realm  string
	nonce  string
	opaque string
	qop    bool
	nc     int
	cnonce func() string // defaults to 8 random bytes in hex; fixed in tests
}

var errAuthScheme = errors.New("camera asks for an authentication scheme Lectern does not speak")

// challenge reads the WWW-Authenticate values of a 401 response, preferring Digest.
func (a *clientAuth) challenge(values []string) error {
	var basic bool
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		switch strings.ToLower(scheme) {
		case "digest":
			params := parseAuthParams(rest)
			if alg := params["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
				continue
			}
			a.scheme, a.realm, a.nonce, a.opaque = "digest", params["realm"], params["nonce"], params["opaque"]
			a.qop = false
			for _, q := range strings.Split(params["qop"], ",") {
				if strings.TrimSpace(q) == "auth" {
					a.qop = true
				}
			}
			a.nc = 0
			return nil
		case "basic":
			basic = true
		}
	}
	if basic {
		a.scheme = "basic"
		return nil
	}
	return errAuthScheme
}

// header returns the Authorization value for a request, or "" before a challenge.
func (a *clientAuth) header(method, uri string) string {
	switch a.scheme {
	case "basic":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.pass))
	case "digest":
		ha1 := md5hex(a.user + ":" + a.realm + ":" + a.pass)
		ha2 := md5hex(method + ":" + uri)
		v := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s"`, a.user, a.realm, a.nonce, uri)
		if a.qop {
			a.nc++
			nc := fmt.Sprintf("%08x", a.nc)
			cnonce := randomHex(8)
			if a.cnonce != nil {
				cnonce = a.cnonce()
			}
			v += fmt.Sprintf(`, response="%s", qop=auth, nc=%s, cnonce="%s"`, md5hex(ha1+":"+a.nonce+":"+nc+":"+cnonce+":auth:"+ha2), nc, cnonce)
		} else {
			v += fmt.Sprintf(`, response="%s"`, md5hex(ha1+":"+a.nonce+":"+ha2))
		}
		if a.opaque != "" {
			v += fmt.Sprintf(`, opaque="%s"`, a.opaque)
		}
		return v
	}
	return ""
}

// parseAuthParams parses `key="value", key=value` lists (RFC 2617 §1.2).
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,\t")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		rest = strings.TrimLeft(rest, " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				val, rest = rest[1:], ""
			} else {
				val, rest = rest[1:1+end], rest[2+end:]
			}
		} else {
			val, rest, _ = strings.Cut(rest, ",")
			val = strings.TrimSpace(val)
		}
		out[key] = val
		s = rest
	}
	return out
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
