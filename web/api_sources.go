package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/catalog"
	"lectern/sfu/rtsp"
)

// rtspSources is what the HTTP layer needs of the RTSP pull sources (IP cameras,
// encoders brought into a session).
type rtspSources interface {
	Add(sessionID string, spec rtsp.SourceSpec) (rtsp.SourceInfo, error)
	List(sessionID string) []rtsp.SourceInfo
	Remove(sessionID, id string) error
	RemoveAll(sessionID string)
	TrainersMayAdd() bool
}

func (s *Server) sourceRoutes(r chi.Router) {
	r.Post("/sources", s.addSource)
	r.Get("/sources", s.listSources)
	r.Delete("/sources/{source}", s.removeSource)
}

// sourcesMember is member for the sources routes that change something: a
// trainer of the session (or the admin), on a server with RTSP sources; when
// not, it has answered the error and ok is false.
func (s *Server) sourcesMember(w http.ResponseWriter, r *http.Request) (c catalog.Session, p principal, ok bool) {
	c, p, ok = s.member(w, r, auth.RoleTrainer)
	if ok && s.cfg.Sources == nil {
		s.httpError(w, r, fmt.Errorf("%w: RTSP sources are disabled on this server", errNotFound))
		ok = false
	}
	return c, p, ok
}

// addSource brings an RTSP camera or encoder into the session: POST
// {"url":"rtsp://…","name":"…","as":"trainer"|"site"}. The admin, or the trainer
// when the server lets trainers (then only within the admin's allow-list): a
// source makes the server connect wherever its URL says.
func (s *Server) addSource(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.sourcesMember(w, r)
	if !ok {
		return
	}
	if !p.admin && !s.cfg.Sources.TrainersMayAdd() {
		s.httpError(w, r, fmt.Errorf("%w: only the admin may add RTSP sources on this server (-rtsp-source-trainers lets trainers, within -rtsp-source-allow)", errForbidden))
		return
	}
	var spec rtsp.SourceSpec
	if err := s.decodeJSON(w, r, &spec); err != nil {
		s.httpError(w, r, err)
		return
	}
	info, err := s.cfg.Sources.Add(c.ID, spec)
	if errors.Is(err, rtsp.ErrDestinationRefused) {
		err = fmt.Errorf("%w: %w", errForbidden, err)
	}
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
	c, _, ok := s.sourcesMember(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Sources.Remove(c.ID, chi.URLParam(r, "source")); err != nil {
		s.httpError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
