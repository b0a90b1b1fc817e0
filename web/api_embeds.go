package web

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/catalog"
	"lectern/recorder"
)

// Embed tokens: a replay embedded in another site (a training portal) carries its
// own credential, never a learner's token. An embed token reads one recording's
// replay and nothing else, lives as long as asked (a year by default), and is
// revoked by deleting it. The trainer of the recording's session or the admin mints,
// lists and revokes them:
//
//	POST   /api/recordings/{id}/embeds          {ttl?, label?} → 201 {id, token, expires_at, embed_url, embed_html}
//	GET    /api/recordings/{id}/embeds          {embeds: [{id, label, created_by, created_at, expires_at}]}
//	DELETE /api/recordings/{id}/embeds/{embed}  revoke → 204
//
// The tokens themselves are not kept: a lost embed code is revoked and minted again.

// defaultEmbedTTL is an embed token's lifetime when none is asked for.
const defaultEmbedTTL = 365 * 24 * time.Hour

// embedRoutes registers the embed endpoints (nothing without replays).
func (s *Server) embedRoutes(r chi.Router) {
	if s.cfg.Replays == nil || s.cfg.Replays.Recorder == nil {
		return
	}
	r.Post("/api/recordings/{id}/embeds", s.createEmbed)
	r.Get("/api/recordings/{id}/embeds", s.listEmbeds)
	r.Delete("/api/recordings/{id}/embeds/{embed}", s.deleteEmbed)
}

// embedAllows says whether an embed token may make request r in session: only
// reading (GET, HEAD) its own recording: its description and its replay files.
func embedAllows(r *http.Request, c *auth.Claims, session string) error {
	if c.Session != session {
		return fmt.Errorf("%w: embed token is for session %q, not %q", auth.ErrWrongSession, c.Session, session)
	}
	pattern := ""
	if rc := chi.RouteContext(r.Context()); rc != nil {
		pattern = rc.RoutePattern()
	}
	reads := r.Method == http.MethodGet || r.Method == http.MethodHead
	replay := pattern == "/api/recordings/{id}" || strings.HasPrefix(pattern, "/replay/{id}/")
	if !reads || !replay || chi.URLParam(r, "id") != c.Recording {
		return fmt.Errorf("%w: an embed token only plays its own recording", auth.ErrWrongRole)
	}
	return nil
}

// embedRecording resolves {id} and checks that the caller is the admin or the
// trainer of the recording's session.
func (s *Server) embedRecording(w http.ResponseWriter, r *http.Request) (recorder.Meta, principal, bool) {
	m, err := s.cfg.Replays.Recorder.Get(chi.URLParam(r, "id"))
	var p principal
	if err == nil {
		p, err = s.authorize(r, m.Session, auth.RoleTrainer)
	}
	if err != nil {
		s.httpError(w, r, err)
		return m, p, false
	}
	return m, p, true
}

type embedRequest struct {
	// TTL is a Go duration ("8760h"); default a year, at most auth.MaxEmbedTTL.
	TTL   string `json:"ttl"`
	Label string `json:"label"`
}

type embedResponse struct {
	catalog.Embed
	Token     string `json:"token"`
	EmbedURL  string `json:"embed_url"`
	EmbedHTML string `json:"embed_html"`
}

func (s *Server) createEmbed(w http.ResponseWriter, r *http.Request) {
	m, p, ok := s.embedRecording(w, r)
	if !ok {
		return
	}
	var req embedRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	ttl := defaultEmbedTTL
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			s.httpError(w, r, fmt.Errorf("%w: ttl %q is not a duration like \"8760h\"", errBadRequest, req.TTL))
			return
		}
	}
	tok, exp, err := s.cfg.Tokens.Mint(auth.MintRequest{Session: m.Session, Role: auth.RoleEmbed, Name: "embed", Recording: m.ID, TTL: ttl})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	c, err := s.cfg.Tokens.Verify(tok) // for its id
	if err != nil {
		s.httpError(w, r, fmt.Errorf("reading the embed token just minted: %w", err))
		return
	}
	e, err := s.cfg.Catalog.AddEmbed(catalog.Embed{ID: c.ID, Session: m.Session, Recording: m.ID, Label: req.Label,
		CreatedBy: p.name(), CreatedAt: time.Now(), ExpiresAt: exp})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	src := s.cfg.PublicURL + "/replays/" + url.PathEscape(m.ID) + "/embed?token=" + url.QueryEscape(tok)
	title := m.Title
	if title == "" {
		title = "Lectern"
	}
	code := fmt.Sprintf(`<iframe src="%s" width="960" height="540" allow="fullscreen; autoplay" allowfullscreen title="%s"></iframe>`,
		html.EscapeString(src), html.EscapeString(title))
	s.log.Info("embed token minted", "recording", m.ID, "embed", e.ID, "by", p.name(), "expires", exp)
	w.Header().Set("Location", "/api/recordings/"+url.PathEscape(m.ID)+"/embeds/"+url.PathEscape(e.ID))
	writeJSON(w, http.StatusCreated, embedResponse{Embed: e, Token: tok, EmbedURL: src, EmbedHTML: code})
}

func (s *Server) listEmbeds(w http.ResponseWriter, r *http.Request) {
	m, _, ok := s.embedRecording(w, r)
	if !ok {
		return
	}
	list := s.cfg.Catalog.Embeds(m.ID)
	if list == nil {
		list = []catalog.Embed{}
	}
	writeJSON(w, http.StatusOK, map[string][]catalog.Embed{"embeds": list})
}

func (s *Server) deleteEmbed(w http.ResponseWriter, r *http.Request) {
	m, p, ok := s.embedRecording(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "embed")
	if err := s.cfg.Catalog.DeleteEmbed(m.ID, id); err != nil {
		s.httpError(w, r, err)
		return
	}
	s.log.Info("embed token revoked", "recording", m.ID, "embed", id, "by", p.name())
	w.WriteHeader(http.StatusNoContent)
}
