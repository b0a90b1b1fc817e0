package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/catalog"
)

// Device access codes: a hall decoder or a studio encoder speaking RTSP cannot hold
// a ~300-character token (ffmpeg cuts URL userinfo at 127 bytes, many decoders take
// 16-32 character passwords), so the admin or the session's trainer mints a short
// code for it, bound to the session, a role and a name:
//
//	POST   /api/sessions/{id}/codes         {role: site|viewer|trainer, name?, display?, ttl?}
//	                                        → 201 {id, code, role, name, expires_at, rtsp_url, …}
//	GET    /api/sessions/{id}/codes         {codes: [{id, role, name, display, created_by, created_at, expires_at}]}
//	DELETE /api/sessions/{id}/codes/{code}  revoke → 204
//
// The code is shown once, in the answer to POST: the catalogue keeps only its
// SHA-256 (auth/codes.go says why a fast hash is enough). A code is taken wherever a
// token is (the RTSP password, ?token=, Bearer), through auth.Authenticator.

// defaultCodeTTL is a code's lifetime when none is asked for: as a token's.
const defaultCodeTTL = 24 * time.Hour

// codeRoutes registers the code endpoints under /api/sessions/{session}.
func (s *Server) codeRoutes(r chi.Router) {
	r.Post("/codes", s.createCode)
	r.Get("/codes", s.listCodes)
	r.Delete("/codes/{code}", s.deleteCode)
}

// CatalogCodes resolves device codes from the catalogue: give
// Issuer.WithCodes(CatalogCodes(cat)) to every edge that authenticates (web.New does
// so for the HTTP layer when its Issuer has none).
func CatalogCodes(cat *catalog.Catalog) auth.CodeResolver { return catalogCodes{cat} }

type catalogCodes struct{ cat *catalog.Catalog }

func (c catalogCodes) ResolveCode(hash [sha256.Size]byte) (auth.CodeGrant, bool) {
	code, ok := c.cat.CodeByHash(hex.EncodeToString(hash[:]))
	if !ok {
		return auth.CodeGrant{}, false
	}
	return auth.CodeGrant{ID: code.ID, Session: code.Session, Role: auth.Role(code.Role), Name: code.Name,
		Display: code.Display, IssuedAt: code.CreatedAt, ExpiresAt: code.ExpiresAt}, true
}

// RTSPBaseURL returns the rtsp:// (rtsps:// with tls) base URL devices use, from the
// public URL's host and the RTSP listener's port, or "" when RTSP is off.
func RTSPBaseURL(publicURL, rtspAddr string, tls bool) string {
	if rtspAddr == "" || rtspAddr == "off" {
		return ""
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(rtspAddr)
	if err != nil || port == "" {
		return ""
	}
	scheme := "rtsp"
	if tls {
		scheme = "rtsps"
	}
	return scheme + "://" + net.JoinHostPort(u.Hostname(), port)
}

type codeRequest struct {
	Role    auth.Role `json:"role"`
	Name    string    `json:"name"`
	Display string    `json:"display"`
	// TTL is a Go duration ("720h"); default 24h, at most auth.MaxTTL.
	TTL string `json:"ttl"`
}

// codeInfo is a code's record as the API shows it: never the hash.
type codeInfo struct {
	ID        string    `json:"id"`
	Role      auth.Role `json:"role"`
	Name      string    `json:"name"`
	Display   string    `json:"display,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func infoOf(c catalog.Code) codeInfo {
	return codeInfo{ID: c.ID, Role: auth.Role(c.Role), Name: c.Name, Display: c.Display,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt}
}

type codeResponse struct {
	codeInfo
	// Code is the credential itself, shown this once.
	Code string `json:"code"`
	// RTSPURL is what to give the device: rtsp://<name>:<code>@host:port/<session>
	// (absent when RTSP is off).
	RTSPURL string `json:"rtsp_url,omitempty"`
}

func (s *Server) createCode(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	var req codeRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	if !slices.Contains(auth.CodeRoles(), req.Role) {
		s.httpError(w, r, fmt.Errorf("%w: role %q: a device code is for a site, a viewer or a trainer (learners use their link)", errBadRequest, req.Role))
		return
	}
	if req.Name == "" {
		req.Name = string(req.Role)
	}
	if !auth.ValidName(req.Name) {
		s.httpError(w, r, fmt.Errorf("%w: name %q: 1-63 of a-z 0-9 _ -, starting with a letter or digit", errBadRequest, req.Name))
		return
	}
	ttl := defaultCodeTTL
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			s.httpError(w, r, fmt.Errorf("%w: ttl %q is not a duration like \"720h\"", errBadRequest, req.TTL))
			return
		}
	}
	if ttl < auth.MinTTL || ttl > auth.MaxTTL {
		s.httpError(w, r, fmt.Errorf("%w: ttl %v is outside %v..%v", errBadRequest, ttl, auth.MinTTL, auth.MaxTTL))
		return
	}
	now := time.Now()
	exp := now.Add(ttl).Truncate(time.Second)
	// A trainer's code never outlives the trainer's own credential: minting codes
	// must not be a way to stay in a session longer than the admin allowed.
	if !p.admin && p.claims.ExpiresAt != nil && p.claims.ExpiresAt.Before(exp) {
		exp = p.claims.ExpiresAt.Time
	}
	code, hash, err := auth.GenerateCode()
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	id, err := codeID()
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	rec, err := s.cfg.Catalog.AddCode(catalog.Code{ID: id, Hash: hex.EncodeToString(hash[:]), Session: sess.ID,
		Role: string(req.Role), Name: req.Name, Display: req.Display, CreatedBy: p.name(), CreatedAt: now, ExpiresAt: exp})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	resp := codeResponse{codeInfo: infoOf(rec), Code: code}
	if s.cfg.RTSPURL != "" {
		resp.RTSPURL = s.cfg.RTSPURL + "/" + sess.ID
		if u, err := url.Parse(resp.RTSPURL); err == nil {
			u.User = url.UserPassword(req.Name, code)
			resp.RTSPURL = u.String()
		}
	}
	s.log.Info("device code minted", "session", sess.ID, "code_id", rec.ID, "role", rec.Role, "name", rec.Name,
		"by", p.name(), "expires", rec.ExpiresAt)
	w.Header().Set("Location", "/api/sessions/"+sess.ID+"/codes/"+url.PathEscape(rec.ID))
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) listCodes(w http.ResponseWriter, r *http.Request) {
	sess, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	list := []codeInfo{}
	for _, c := range s.cfg.Catalog.Codes(sess.ID) {
		list = append(list, infoOf(c))
	}
	writeJSON(w, http.StatusOK, map[string][]codeInfo{"codes": list})
}

func (s *Server) deleteCode(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	id := chi.URLParam(r, "code")
	if err := s.cfg.Catalog.DeleteCode(sess.ID, id); err != nil {
		s.httpError(w, r, err)
		return
	}
	s.log.Info("device code revoked", "session", sess.ID, "code_id", id, "by", p.name())
	w.WriteHeader(http.StatusNoContent)
}

// codeID returns a random id naming a code in URLs (not the code: it admits nothing).
func codeID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("device code id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
