package web

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"lectern/cluster"
	"lectern/cluster/relay"
)

// processStarted is when this process started (near enough: when the package was
// initialised), the "started" of a single node.
var processStarted = time.Now().UTC()

// nodesView is the answer of GET /api/nodes (admin): the cluster's live nodes with
// their region, URL, load and sessions, the regions, and this node's relays. A
// single node lists itself, with clustered false.
type nodesView struct {
	Clustered bool `json:"clustered"`
	// Self is this node's id ("" for a single node).
	Self string `json:"self"`
	// Healthy: the coordinator (Redis) answered; always true for a single node.
	// When it did not, Nodes holds this node alone and Error says why.
	Healthy bool         `json:"healthy"`
	Error   string       `json:"error,omitempty"`
	Nodes   []nodeView   `json:"nodes"`
	Regions []regionView `json:"regions"`
	// Relays are this node's: publications pulled from other nodes ("in") and
	// served to other nodes ("out").
	Relays []relay.Info `json:"relays"`
}

type nodeView struct {
	cluster.Node
	Self bool `json:"self"`
}

// regionView sums a region's nodes.
type regionView struct {
	Region      string   `json:"region"`
	Nodes       []string `json:"nodes"`
	Subscribers int      `json:"subscribers"`
}

// listNodes answers GET /api/nodes.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if err := s.requireAdmin(r); err != nil {
		s.httpError(w, r, err)
		return
	}
	v := nodesView{Healthy: true, Nodes: []nodeView{}, Regions: []regionView{}, Relays: []relay.Info{}}
	if c := s.cfg.Cluster; c == nil {
		v.Nodes = append(v.Nodes, nodeView{Self: true, Node: cluster.Node{Region: "default", URL: s.cfg.PublicURL,
			Load: s.nodeLoad(), Started: processStarted, Seen: time.Now().UTC()}})
	} else {
		v.Clustered, v.Self = true, c.Self().ID
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		nodes, err := c.Nodes(ctx)
		cancel()
		if err != nil {
			// Still worth an answer: what this node knows of itself, and why the
			// others are missing.
			s.log.Warn("api/nodes: the cluster's nodes unavailable", "err", err)
			v.Healthy, v.Error = false, err.Error()
			self := c.Self()
			self.Load = s.nodeLoad()
			nodes = []cluster.Node{self}
		}
		for _, n := range nodes {
			v.Nodes = append(v.Nodes, nodeView{Node: n, Self: n.ID == v.Self})
		}
	}
	for i := range v.Nodes {
		if v.Nodes[i].Load.Sessions == nil {
			v.Nodes[i].Load.Sessions = []string{}
		}
	}
	v.Regions = regionsOf(v.Nodes)
	if s.cfg.Relays != nil {
		v.Relays = append(v.Relays, s.cfg.Relays.Relays()...)
	}
	if s.cfg.RelayOrigin != nil {
		v.Relays = append(v.Relays, s.cfg.RelayOrigin.Relays()...)
	}
	slices.SortFunc(v.Relays, func(a, b relay.Info) int {
		return cmp.Or(cmp.Compare(a.Session, b.Session), cmp.Compare(a.Publication, b.Publication),
			cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Peer, b.Peer))
	})
	writeJSON(w, http.StatusOK, v)
}

// nodeLoad samples this node's load: Config.NodeLoad, else the registry's
// subscribers and sessions.
func (s *Server) nodeLoad() cluster.Load {
	if s.cfg.NodeLoad != nil {
		return s.cfg.NodeLoad()
	}
	l := cluster.Load{Sessions: []string{}}
	for _, id := range s.cfg.Registry.IDs() {
		sess, ok := s.cfg.Registry.Lookup(id)
		if !ok {
			continue
		}
		n := sess.Subscribers()
		l.Subscribers += n
		if n > 0 || sess.Connecting() > 0 || len(sess.Publications()) > 0 {
			l.Sessions = append(l.Sessions, id)
		}
	}
	return l
}

// regionsOf groups nodes by region, in region order.
func regionsOf(nodes []nodeView) []regionView {
	by := map[string]*regionView{}
	for _, n := range nodes {
		rv := by[n.Region]
		if rv == nil {
			rv = &regionView{Region: n.Region, Nodes: []string{}}
			by[n.Region] = rv
		}
		rv.Nodes = append(rv.Nodes, n.ID)
		rv.Subscribers += n.Load.Subscribers
	}
	out := make([]regionView, 0, len(by))
	for _, rv := range by {
		out = append(out, *rv)
	}
	slices.SortFunc(out, func(a, b regionView) int { return cmp.Compare(a.Region, b.Region) })
	return out
}
