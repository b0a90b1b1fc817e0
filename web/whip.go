package web

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"lectern/auth"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// programmePublication is the publication of a session's programme
// (programme.Publication; recorder.ProgrammePublication names the same).
const programmePublication = recorder.ProgrammePublication

const (
	mimeSDP     = "application/sdp"
	mimeSDPFrag = "application/trickle-ice-sdpfrag"
)

// whipPublish handles POST /whip/{session} (RFC 9725 §4.2). The trainer publishes the
// session's main publication; a classroom publishes only while it holds the floor.
func (s *Server) whipPublish(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.member(w, r, auth.RoleTrainer, auth.RoleSite)
	if !ok {
		return
	}
	publication := sfu.TrainerPublication
	if !p.admin && p.claims.Role == auth.RoleSite {
		holds, err := s.floor.Holds(r.Context(), c.ID, p.claims.Name)
		if err != nil {
			s.httpError(w, r, fmt.Errorf("floor: %w", err))
			return
		}
		if !holds {
			s.httpError(w, r, errNoFloor)
			return
		}
		publication = sitePublication(p.claims.Name)
	}
	if !s.cluster.place(w, r) { // cluster.go: 307 to a better node
		return
	}
	offer, err := s.readBody(w, r, mimeSDP)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	if !s.cluster.claim(w, r, c.ID, publication) { // 307 to the node it is live on, or 503
		return
	}
	res, answer, err := s.cfg.WebRTC.Publish(s.cfg.Registry.Session(c.ID), publication, string(offer))
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	s.cluster.published(c.ID, publication)
	s.log.Info("whip publish", "session", c.ID, "publication", publication, "participant", p.name(), "resource", res.ID())
	s.writeAnswer(w, r, c.ID, p, "/whip/"+c.ID+"/"+res.ID(), res, answer)
}

// whepSubscribe handles POST /whep/{session} (the programme: what everyone should
// see and hear) and /whep/{session}/{publication} (one publication: the trainer's
// own tracks, a classroom with the floor).
//
// Media sections are filled in offer order per kind. Video: the camera (the main
// picture), then the screen share. Audio: the publication's microphone (the
// programme's mix). So a generic player with one video and one audio section gets
// the lecture, questions included; a page that wants the slides adds a second video
// section. The pages, which show each site in its own tile, play
// /whep/{session}/trainer beside the classrooms instead, so no voice plays twice.
//
// The programme is made when the trainer publishes; an offer that comes before gets
// its tracks when they appear, as a viewer of the trainer did before (downtracks
// follow their track names). Without a programme (Config.Programme off and none
// live), /whep/{session} is the trainer's.
//
// Offers still connecting are limited per token and per address (whepLimits), and
// have their own budget in the session (sfu.Session.Reserve), so offers that never
// connect cannot keep out classrooms that do. A classroom (site token) has one
// place per publication: its new connection replaces its previous one.
func (s *Server) whepSubscribe(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.member(w, r, auth.LiveWatchRoles()...) // the same roles as RTSP reading
	if !ok {
		return
	}
	publication := chi.URLParam(r, "publication")
	// cluster.go: 307 to a better node; what another node sources is relayed here.
	if !s.cluster.place(w, r) || !s.cluster.prepareWHEP(w, r, c.ID, publication) {
		return
	}
	sess := s.cfg.Registry.Session(c.ID)
	if publication == "" {
		publication = sfu.TrainerPublication
		if _, live := sess.Publication(programmePublication); live || s.cfg.Programme {
			publication = programmePublication
		}
	} else if _, ok := sess.Publication(publication); !ok && !s.awaited(publication) {
		s.httpError(w, r, fmt.Errorf("%w: %q", errNotLive, publication))
		return
	}
	offer, err := s.readBody(w, r, mimeSDP)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	layout := peer.Layout{
		Video: []string{publication + "/" + peer.LocalVideo, publication + "/" + peer.LocalScreen},
		Audio: []string{publication + "/" + peer.LocalAudio},
	}
	token, _ := auth.BearerToken(r) // member has checked it
	var role auth.Role
	if !p.admin {
		role = p.claims.Role
	}
	settled, closed, err := s.whep.acquire(r, token, role)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	opts := peer.SubscribeOptions{OnSettled: settled, OnClose: closed}
	if role == auth.RoleSite {
		opts.Key = c.ID + "/" + p.claims.Name + "/" + publication
	}
	res, answer, err := s.cfg.WebRTC.SubscribeWith(sess, layout, string(offer), opts)
	if err != nil {
		settled()
		closed()
		s.httpError(w, r, err)
		return
	}
	w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="%s"`, s.cluster.absolute(r, "/whep/"+c.ID+"/"+res.ID()+"/layer"), whepLayerRel))
	s.writeAnswer(w, r, c.ID, p, "/whep/"+c.ID+"/"+res.ID(), res, answer)
}

// awaited reports whether a viewer may subscribe to the publication before it is
// live, its tracks coming when it starts: the trainer's (the classroom page opens
// before the lecture begins) and, on a server that makes it, the programme, which
// comes with the trainer. A classroom's publication exists only while it holds the
// floor.
func (s *Server) awaited(publication string) bool {
	return publication == sfu.TrainerPublication || publication == programmePublication && s.cfg.Programme
}

func (s *Server) writeAnswer(w http.ResponseWriter, r *http.Request, session string, p principal, location string, res *peer.Resource, answer string) {
	h := w.Header()
	h.Set("Location", s.cluster.absolute(r, location)) // a node the client was redirected to names itself
	h.Set("ETag", res.ETag())
	h.Set("Content-Type", mimeSDP)
	h.Set("Accept-Patch", mimeSDPFrag)
	s.linkICEServers(h)
	s.linkTURNServers(h, r, session, p)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

// linkICEServers advertises the configured STUN/TURN servers (RFC 9725 §4.6).
func (s *Server) linkICEServers(h http.Header) {
	for _, srv := range s.cfg.WebRTC.ICEServers() {
		for _, u := range srv.URLs {
			link := fmt.Sprintf(`<%s>; rel="ice-server"`, u)
			if srv.Username != "" {
				cred, _ := srv.Credential.(string)
				link += fmt.Sprintf(`; username="%s"; credential="%s"; credential-type="password"`, quoteSafe(srv.Username), quoteSafe(cred))
			}
			h.Add("Link", link)
		}
	}
}

// linkTURNServers advertises the embedded TURN server with credentials minted
// for this participant (the TURN REST API scheme), expiring with its token at the
// latest. Only answers to an authenticated offer carry them: OPTIONS is open to
// anyone and gets the static servers only.
func (s *Server) linkTURNServers(h http.Header, r *http.Request, session string, p principal) {
	if s.cfg.TURNServers == nil {
		return
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	var expiry time.Time
	if p.claims != nil && p.claims.ExpiresAt != nil {
		expiry = p.claims.ExpiresAt.Time
	}
	for _, srv := range s.cfg.TURNServers(host, session+"/"+p.name(), expiry) {
		cred, _ := srv.Credential.(string)
		for _, u := range srv.URLs {
			h.Add("Link", fmt.Sprintf(`<%s>; rel="ice-server"; username="%s"; credential="%s"; credential-type="password"`, u, quoteSafe(srv.Username), quoteSafe(cred)))
		}
	}
}

func quoteSafe(s string) string { return strings.NewReplacer(`"`, "", `\`, "").Replace(s) }

// whipOptions answers OPTIONS on WHIP/WHEP URLs: CORS preflight (headers set by the
// CORS middleware) and ICE server discovery.
func (s *Server) whipOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if chi.URLParam(r, "resource") == "" {
		h.Set("Accept-Post", mimeSDP)
	} else {
		h.Set("Accept-Patch", mimeSDPFrag)
	}
	s.linkICEServers(h)
	w.WriteHeader(http.StatusNoContent)
}

// resource finds the WHIP/WHEP resource of the URL and checks the caller may act on it.
func (s *Server) resource(r *http.Request) (*peer.Resource, error) {
	session := chi.URLParam(r, "session")
	if _, err := s.authorize(r, session); err != nil {
		return nil, err
	}
	kind := peer.KindWHIP
	if strings.HasPrefix(r.URL.Path, "/whep/") {
		kind = peer.KindWHEP
	}
	id := chi.URLParam(r, "resource")
	res, ok := s.cfg.WebRTC.Resource(id)
	if !ok || res.Session() != session || res.Kind() != kind {
		return nil, fmt.Errorf("%w: %s", peer.ErrResourceNotFound, r.URL.Path)
	}
	return res, nil
}

// patchResource handles trickle ICE and ICE restarts (RFC 9725 §4.3, RFC 8840).
func (s *Server) patchResource(w http.ResponseWriter, r *http.Request) {
	res, err := s.resource(r)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	body, err := s.readBody(w, r, mimeSDPFrag)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	reply, etag, err := res.Patch(string(body), r.Header.Get("If-Match"))
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag)
	if reply == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", mimeSDPFrag)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(reply))
}

// deleteResource ends a WHIP/WHEP session (RFC 9725 §4.2).
func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) {
	res, err := s.resource(r)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	res.Delete()
	w.WriteHeader(http.StatusOK)
}

// whepLayerRel is the link relation of the WHEP draft's layer extension: the
// resource's URL for choosing the layer a subscriber gets.
const whepLayerRel = "urn:ietf:params:whep:ext:core:layer"

// layerRequest is the body of POST .../layer: {"layer": "auto|high|medium|low|audio"},
// or the WHEP layer extension's {"encodingId": ...} with the same names or the
// usual simulcast rids (f, h, q).
type layerRequest struct {
	Layer      *string `json:"layer"`
	EncodingID *string `json:"encodingId"`
}

// encodingLayers maps the common simulcast rids to layer names.
var encodingLayers = map[string]string{"f": peer.PinHigh, "h": peer.PinMedium, "q": peer.PinLow}

// getLayer handles GET /whep/{session}/{resource}/layer: the layer the
// subscriber gets, its pin and estimate (peer.LayerState).
func (s *Server) getLayer(w http.ResponseWriter, r *http.Request) {
	res, err := s.resource(r)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res.LayerState())
}

// setLayer handles POST /whep/{session}/{resource}/layer: the subscriber pins a
// layer (or goes back to auto). It answers with the new state.
func (s *Server) setLayer(w http.ResponseWriter, r *http.Request) {
	res, err := s.resource(r)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	var req layerRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		s.httpError(w, r, err)
		return
	}
	var pin string
	switch {
	case req.Layer != nil:
		pin = *req.Layer
	case req.EncodingID != nil:
		pin = *req.EncodingID
		if l, ok := encodingLayers[pin]; ok {
			pin = l
		}
	default:
		s.httpError(w, r, fmt.Errorf("%w: the body names no layer: want {\"layer\": \"auto|high|medium|low|audio\"}", errBadRequest))
		return
	}
	if err := res.SetLayerPin(pin); err != nil {
		s.httpError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res.LayerState())
}

// layerOptions answers OPTIONS on a resource's layer URL (CORS preflight; the
// headers are set by the CORS middleware and answerOptions).
func (s *Server) layerOptions(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}
