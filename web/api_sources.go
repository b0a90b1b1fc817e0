package web

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/sfu/rtsp"
)

// rtspSources is what the HTTP layer needs of the RTSP pull sources (IP cameras,
// encoders brought into a session).
type rtspSources interface {
	Add(sessionID string, spec rtsp.SourceSpec) (rtsp.SourceInfo, error)
	List(sessionID string) []rtsp.SourceInfo
	Remove(sessionID, id string) error
	RemoveAll(sessionID string)
}

func (s *Server) sourceRoutes(r chi.Router) {
	r.Post("/sources", s.addSource)
	r.Get("/sources", s.listSources)
	r.Delete("/sources/{source}", s.removeSource)
}

// addSource brings an RTSP camera or encoder into the session: POST
// {"url":"rtsp://…","name":"…","as":"trainer"|"site"}. Admin or the trainer.
func (s *Server) addSource(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	if s.cfg.Sources == nil {
		s.httpError(w, r, fmt.Errorf("%w: RTSP sources are disabled on this server", errNotFound))
		return
	}
	var spec rtsp.SourceSpec
	if err := s.decodeJSON(w, r, &spec); err != nil {
		s.httpError(w, r, err)
		return
	}
	info, err := s.cfg.Sources.Add(c.ID, spec)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	s.log.Info("rtsp source added", "session", c.ID, "source", info.ID, "name", info.Name, "as", info.As, "url", info.URL)
	w.Header().Set("Location", "/api/sessions/"+c.ID+"/sources/"+info.ID)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	list := []rtsp.SourceInfo{}
	if s.cfg.Sources != nil {
		list = append(list, s.cfg.Sources.List(c.ID)...)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) removeSource(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	if s.cfg.Sources == nil {
		s.httpError(w, r, fmt.Errorf("%w: RTSP sources are disabled on this server", errNotFound))
		return
	}
	if err := s.cfg.Sources.Remove(c.ID, chi.URLParam(r, "source")); err != nil {
		s.httpError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
