package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/sfu"
)

// sessionSummary is a session in the lobby's list as anyone, or a participant, sees
// it: what the lobby shows (title, description, schedule, live now) and sorts by
// (created_at, for sessions without a schedule). The settings (listed,
// public_replays, programme_video) are the admin's business: adminSessionSummary.
type sessionSummary struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Description string     `json:"description,omitempty"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	Live        bool       `json:"live"`
}

// adminSessionSummary is a session in the admin's list: its whole definition.
type adminSessionSummary struct {
	catalog.Session
	Live bool `json:"live"`
}

// sessionState is a session with its live state: its whole definition, for those
// who manage it (the admin, its trainer). Other members get memberState.
type sessionState struct {
	catalog.Session
	Live         bool                  `json:"live"`
	Publications []sfu.PublicationInfo `json:"publications"`
	Subscribers  int                   `json:"subscribers"`
	Hands        []Hand                `json:"hands"`
	Speakers     []Speaker             `json:"speakers"`
}

// memberState is a session's state as a member who does not manage it (a
// classroom, a viewer, an embed, a device code) sees it: what the lobby shows
// (sessionSummary, live included) and the live state the pages follow. The
// settings (listed, public_replays, programme_video) stay with the admin and the
// trainer, as in the lobby's list: no page a member opens reads them (the room
// page reads the title, the schedule and the live state; the programme's picture
// is the server's business, the room plays the trainer's tracks and the
// speakers' own).
type memberState struct {
	sessionSummary
	Publications []sfu.PublicationInfo `json:"publications"`
	Subscribers  int                   `json:"subscribers"`
	Hands        []Hand                `json:"hands"`
	Speakers     []Speaker             `json:"speakers"`
}

// summary is session c as the lobby shows it.
func summary(c catalog.Session, live bool) sessionSummary {
	return sessionSummary{ID: c.ID, Title: c.Title, Description: c.Description,
		ScheduledAt: c.ScheduledAt, CreatedAt: c.CreatedAt, Live: live}
}

// manages tells whether p may see the whole definition of the session it is a
// member of: the admin, or the session's trainer (member has checked the session).
func (p principal) manages() bool {
	return p.admin || (p.claims != nil && p.claims.Role == auth.RoleTrainer)
}

// stateFor is st as p sees it: the whole of it for those who manage the session,
// memberState for the others.
func stateFor(p principal, st sessionState) any {
	if p.manages() {
		return st
	}
	return memberState{sessionSummary: summary(st.Session, st.Live), Publications: st.Publications,
		Subscribers: st.Subscribers, Hands: st.Hands, Speakers: st.Speakers}
}

type createSessionRequest struct {
	Title         string     `json:"title"`
	Description   string     `json:"description"`
	ScheduledAt   *time.Time `json:"scheduled_at"`
	PublicReplays bool       `json:"public_replays"`
	Listed        bool       `json:"listed"`
	// ProgrammeVideo is "trainer" (the default when omitted) or "speaker".
	ProgrammeVideo string `json:"programme_video"`
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	if err := s.requireAdmin(r); err != nil {
		s.httpError(w, r, err)
		return
	}
	var req createSessionRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	sess, err := s.cfg.Catalog.Create(catalog.NewSession{Title: req.Title, Description: req.Description, ScheduledAt: req.ScheduledAt,
		PublicReplays: req.PublicReplays, Listed: req.Listed, ProgrammeVideo: req.ProgrammeVideo})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	s.log.Info("session created", "session", sess.ID, "title", sess.Title)
	w.Header().Set("Location", "/api/sessions/"+sess.ID)
	writeJSON(w, http.StatusCreated, sess)
}

// listSessions is the lobby's list: what is live and what is scheduled (joining
// needs a token). Anyone sees the listed sessions (every session with LobbyPublic);
// the admin sees all; a participant's token adds its own session. A bad token is an
// error rather than silently the public list. Only the admin sees the sessions'
// settings (adminSessionSummary); everyone else gets what the lobby shows
// (sessionSummary).
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	show := func(c catalog.Session) bool { return c.Listed || s.cfg.LobbyPublic }
	if _, err := auth.BearerToken(r); err == nil {
		p, err := s.authenticate(r)
		if err != nil {
			s.httpError(w, r, err)
			return
		}
		switch {
		case p.admin:
			list := s.cfg.Catalog.List()
			out := make([]adminSessionSummary, 0, len(list))
			for _, c := range list {
				out = append(out, adminSessionSummary{Session: c, Live: s.live(c.ID)})
			}
			writeJSON(w, http.StatusOK, out)
			return
		case p.claims.Role != auth.RoleEmbed:
			mine := p.claims.Session
			show = func(c catalog.Session) bool { return c.Listed || s.cfg.LobbyPublic || c.ID == mine }
		}
	}
	list := s.cfg.Catalog.List()
	out := make([]sessionSummary, 0, len(list))
	for _, c := range list {
		if show(c) {
			out = append(out, summary(c, s.live(c.ID)))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) live(id string) bool {
	if ls, ok := s.cfg.Registry.Lookup(id); ok {
		return ls.Live()
	}
	return false
}

func (s *Server) state(c catalog.Session) sessionState {
	st := sessionState{Session: c, Publications: []sfu.PublicationInfo{}}
	if ls, ok := s.cfg.Registry.Lookup(c.ID); ok {
		st.Live = ls.Live()
		st.Publications = ls.Publications()
		st.Subscribers = ls.Subscribers()
	}
	var err error
	st.Hands, st.Speakers, err = s.floor.Snapshot(context.Background(), c.ID)
	if err != nil { // a clustered floor's backend is down: the rest of the state still serves
		s.log.Warn("floor snapshot", "session", c.ID, "err", err)
		st.Hands, st.Speakers = []Hand{}, []Speaker{}
	}
	s.cluster.sessionState(&st) // cluster.go: every node's subscribers; live on another node
	return st
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.member(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, stateFor(p, s.state(c)))
}

// adminSession is the session named in the path, for the admin only; when the
// caller is not the admin or there is no such session, it has answered the
// error and returns false.
func (s *Server) adminSession(w http.ResponseWriter, r *http.Request) (catalog.Session, bool) {
	if err := s.requireAdmin(r); err != nil {
		s.httpError(w, r, err)
		return catalog.Session{}, false
	}
	c, err := s.session(r)
	if err != nil {
		s.httpError(w, r, err)
		return catalog.Session{}, false
	}
	return c, true
}

// updateSession handles PATCH /api/sessions/{session} (admin): the fields the body
// names change, the others stay (JSON merge patch, RFC 7396: "scheduled_at": null
// unschedules). A field that cannot change (id, created_at) or is unknown is a 400,
// so a typo is not silently ignored. A live session's programme takes a new
// programme_video at its next switch (the next floor change).
func (s *Server) updateSession(w http.ResponseWriter, r *http.Request) {
	c, ok := s.adminSession(w, r)
	if !ok {
		return
	}
	var req map[string]json.RawMessage
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	if req == nil {
		s.httpError(w, r, fmt.Errorf("%w: the body must be a JSON object of the fields to change", errBadRequest))
		return
	}
	var edits []func(*catalog.Session) error
	for field, raw := range req {
		var edit func(*catalog.Session) error
		switch field {
		case "title":
			edit = setJSON(field, raw, func(c *catalog.Session) any { return &c.Title })
		case "description":
			edit = setJSON(field, raw, func(c *catalog.Session) any { return &c.Description })
		case "scheduled_at":
			edit = setJSON(field, raw, func(c *catalog.Session) any { c.ScheduledAt = nil; return &c.ScheduledAt }) // null: nil
		case "public_replays":
			edit = setJSON(field, raw, func(c *catalog.Session) any { return &c.PublicReplays })
		case "listed":
			edit = setJSON(field, raw, func(c *catalog.Session) any { return &c.Listed })
		case "programme_video":
			edit = setJSON(field, raw, func(c *catalog.Session) any { return &c.ProgrammeVideo })
		default:
			s.httpError(w, r, fmt.Errorf("%w: field %.40q cannot be changed (title, description, scheduled_at, public_replays, listed, programme_video can)", errBadRequest, field))
			return
		}
		edits = append(edits, edit)
	}
	// The edits apply to the session as it is under the catalog's lock, and the
	// catalog validates the result as at creation.
	sess, err := s.cfg.Catalog.Update(c.ID, func(cur *catalog.Session) error {
		for _, edit := range edits {
			if err := edit(cur); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	s.log.Info("session updated", "session", sess.ID, "programme_video", sess.VideoMode())
	writeJSON(w, http.StatusOK, s.state(sess))
}

// setJSON returns an edit that decodes raw into the field (named name) that field points to.
func setJSON(name string, raw json.RawMessage, field func(*catalog.Session) any) func(*catalog.Session) error {
	return func(c *catalog.Session) error {
		if err := json.Unmarshal(raw, field(c)); err != nil {
			return fmt.Errorf("%w: %s: %v", errBadRequest, name, err)
		}
		return nil
	}
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	c, ok := s.adminSession(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Catalog.Delete(c.ID); err != nil {
		s.httpError(w, r, err)
		return
	}
	if s.cfg.Sources != nil {
		s.cfg.Sources.RemoveAll(c.ID)
	}
	// The session's event streams get one last session.ended and end: the pages
	// learn it is gone, and no stream keeps pinging for a session that no longer
	// exists. This comes before closing the publications, whose own session.ended
	// then reaches nobody (it was sent twice).
	s.cfg.Events.End(c.ID, events.TypeSessionEnded, map[string]bool{"deleted": true})
	// cluster.go: the other nodes end theirs; told before the registry closes here,
	// so that their pages hear of the deletion before the publications' ends.
	s.cluster.deleted(r.Context(), c.ID)
	s.cfg.Registry.Close(c.ID) // ends publications; their connections close
	if err := s.floor.Forget(r.Context(), c.ID); err != nil {
		s.log.Warn("floor: forget a deleted session", "session", c.ID, "err", err)
	}
	s.log.Info("session deleted", "session", c.ID)
	w.WriteHeader(http.StatusNoContent)
}

type mintRequest struct {
	Role    auth.Role `json:"role"`
	Name    string    `json:"name"`
	Display string    `json:"display"`
	// TTL is a Go duration ("12h", "90m"); default 24h.
	TTL string `json:"ttl"`
}

type mintResponse struct {
	Token     string            `json:"token"`
	ExpiresAt time.Time         `json:"expires_at"`
	Role      auth.Role         `json:"role"`
	Name      string            `json:"name"`
	Links     map[string]string `json:"links"`
}

func (s *Server) mintToken(w http.ResponseWriter, r *http.Request) {
	c, ok := s.adminSession(w, r)
	if !ok {
		return
	}
	var req mintRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			s.httpError(w, r, fmt.Errorf("%w: ttl %q is not a duration like \"12h\"", errBadRequest, req.TTL))
			return
		}
	}
	if req.Role == auth.RoleEmbed {
		s.httpError(w, r, fmt.Errorf("%w: embed tokens are made for a recording: POST /api/recordings/{id}/embeds", errBadRequest))
		return
	}
	if req.Name == "" {
		req.Name = string(req.Role)
	}
	tok, exp, err := s.cfg.Tokens.Mint(auth.MintRequest{Session: c.ID, Role: req.Role, Name: req.Name, Display: req.Display, TTL: ttl})
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, mintResponse{Token: tok, ExpiresAt: exp.UTC(), Role: req.Role, Name: req.Name, Links: s.links(c.ID, req.Role, tok)})
}

// links are the URLs a token holder uses, for invitations.
func (s *Server) links(session string, role auth.Role, tok string) map[string]string {
	base := s.cfg.PublicURL
	q := "?token=" + url.QueryEscape(tok)
	l := map[string]string{}
	switch role {
	case auth.RoleTrainer:
		l["studio"] = base + "/studio/" + session + q
		l["whip"] = base + "/whip/" + session
	case auth.RoleSite, auth.RoleViewer:
		l["room"] = base + "/room/" + session + q
		l["whep"] = base + "/whep/" + session
	case auth.RoleLearner:
		l["replays"] = base + "/replays" + q
	}
	return l
}

// classroom is member for the hand endpoints: only a classroom (a site token) has a
// hand to raise, not the admin.
func (s *Server) classroom(w http.ResponseWriter, r *http.Request) (catalog.Session, *auth.Claims, bool) {
	c, p, ok := s.member(w, r, auth.RoleSite)
	if ok && p.admin {
		s.httpError(w, r, fmt.Errorf("%w: only a classroom (site token) raises or lowers a hand", errForbidden))
		return c, nil, false
	}
	return c, p.claims, ok
}

func (s *Server) raiseHand(w http.ResponseWriter, r *http.Request) {
	c, site, ok := s.classroom(w, r)
	if !ok {
		return
	}
	if err := s.floor.Raise(r.Context(), c.ID, site.Name, site.Display); err != nil {
		s.httpError(w, r, fmt.Errorf("floor: %w", err))
		return
	}
	hands, _, err := s.floor.Snapshot(r.Context(), c.ID)
	if err != nil {
		s.httpError(w, r, fmt.Errorf("floor: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, hands)
}

func (s *Server) lowerHand(w http.ResponseWriter, r *http.Request) {
	c, site, ok := s.classroom(w, r)
	if !ok {
		return
	}
	if _, err := s.floor.Lower(r.Context(), c.ID, site.Name); err != nil {
		s.httpError(w, r, fmt.Errorf("floor: %w", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) grantFloor(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	participant := chi.URLParam(r, "participant")
	if !auth.ValidName(participant) {
		s.httpError(w, r, fmt.Errorf("%w: %q is not a participant name", errBadRequest, participant))
		return
	}
	sp, err := s.floor.Grant(r.Context(), c.ID, participant)
	if err != nil {
		s.httpError(w, r, fmt.Errorf("floor: %w", err))
		return
	}
	s.log.Info("floor granted", "session", c.ID, "participant", participant)
	writeJSON(w, http.StatusOK, sp)
}

func (s *Server) revokeFloor(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.member(w, r, auth.RoleTrainer)
	if !ok {
		return
	}
	participant := chi.URLParam(r, "participant")
	revoked, err := s.floor.Revoke(r.Context(), c.ID, participant)
	if err != nil {
		s.httpError(w, r, fmt.Errorf("floor: %w", err))
		return
	}
	if !revoked {
		s.httpError(w, r, fmt.Errorf("%w: %q does not have the floor", errUnknownParticipant, participant))
		return
	}
	if ls, ok := s.cfg.Registry.Lookup(c.ID); ok {
		// Its WHIP connection closes. A relayed copy (the classroom publishes on
		// another cluster node, which ends it there: cluster.go's floorChanged) is
		// left to end with its relay, as its source's end is what the pages hear.
		if p, ok := ls.Publication(sitePublication(participant)); ok && !p.Relayed() {
			ls.RemovePublication(sitePublication(participant))
		}
	}
	s.log.Info("floor taken back", "session", c.ID, "participant", participant)
	w.WriteHeader(http.StatusNoContent)
}
