package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lectern/catalog"
	"lectern/cluster"
	"lectern/cluster/relay"
	"lectern/events"
	"lectern/floor"
	"lectern/recorder"
	"lectern/sfu"
)

// The request paths of a cluster (issue 13). Everything here is a no-op when
// Config.Cluster is nil: a single node behaves as before.
//
//   - WHIP: the node that accepts a publication claims it in Redis first (the
//     session's origin for the trainer). A publication live on another node gets
//     307 to that node, so there is one source per publication, whoever asks
//     first; with Redis down a new publication gets 503 (a trainer reconnecting
//     to the node it publishes on is still taken).
//   - WHEP, RTSP reading, pages: a publication live on another node is pulled
//     here (relay.Manager.Pull: one relay per publication, however many local
//     consumers) before subscribing as usual. Origin unreachable or Redis down:
//     503 with the reason.
//   - Placement: a WHIP/WHEP POST may get 307 to a node cluster.Place prefers
//     (the client's region from ?region= or X-Lectern-Region, then load). The
//     redirect adds placed=1; a request carrying it is never placed again.
//   - A background loop (clusterState.loop) claims publications that appear here
//     without WHIP (RTSP publishers, the programme), releases the claims of
//     publications gone, records this node's subscriber counts (and announces
//     the cluster's totals to the pages), and pulls the publications other
//     nodes source for every session watched here or whose trainer publishes
//     here: the origin hears a classroom's talk-back published on an edge, an
//     edge follows the trainer to a new origin.
//   - Deleting a session ends it on every node (deleted, endDeleted): the node
//     serving the DELETE tells the others, which end their pages' event streams
//     at once and then its relays, subscribers, publishers and RTSP sources as
//     the single node does. Pub/sub delivers at most once, so the loop also ends
//     what is live or watched here of a session the catalogue no longer has.

// Query parameter and header of placement.
const (
	placedParam  = "placed"
	regionParam  = "region"
	regionHeader = "X-Lectern-Region"
)

// clusterEventClaimed tells the other nodes that a publication's source is
// here now, so that they pull it without waiting for their next round.
const clusterEventClaimed = "cluster.claimed"

// clusterEventDeleted tells the other nodes that a session was deleted: they
// end what they hold of it.
const clusterEventDeleted = "cluster.deleted"

// endingQueue bounds the deleted sessions waiting for the loop to end them; a
// full queue is caught up by the loop's catalogue check.
const endingQueue = 64

// Timing of the cluster's request paths and loop.
const (
	clusterRound       = time.Second      // the loop's period
	clusterCallTimeout = 3 * time.Second  // one Redis call
	pullTimeout        = 15 * time.Second // one relay to connect
	// claimSettle: a claim made by WHIP before its publication exists is not
	// released by the loop for that long.
	claimSettle = 10 * time.Second
)

// errClusterUnavailable refuses what needs another node or Redis and cannot
// have them now (503 with Retry-After).
var errClusterUnavailable = errors.New("service unavailable")

// pubKey names a publication of a session.
type pubKey struct{ session, publication string }

// clusterState is the web layer's part of a cluster node.
type clusterState struct {
	s       *Server
	c       *cluster.Cluster
	relays  *relay.Manager
	cancel  context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup
	unwatch func()
	kick    chan struct{}
	ending  chan string // sessions deleted on another node, to end here

	// origins are the nodes' origins (scheme://host:port), which the pages'
	// Content-Security-Policy must let them connect to: a redirected WHEP offer
	// and its resource are another node's.
	origins atomic.Pointer[string]

	mu      sync.Mutex
	closed  bool
	claimed map[pubKey]time.Time // publications this node sources, since when
	pulled  map[pubKey]string    // publications relayed here, from which node
	pulling map[pubKey]bool      // a Pull in flight
	counts  map[string]int       // sessions' local subscriber counts last recorded
	totals  map[string]int       // sessions' cluster-wide counts last announced
	warned  map[pubKey]bool      // a claim refused by another node was logged
	watched map[string]int       // sessions' open event streams here
}

// newClusterState starts the loop; nil when the node is not clustered.
func newClusterState(s *Server) *clusterState {
	if s.cfg.Cluster == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs := &clusterState{s: s, c: s.cfg.Cluster, cancel: cancel, ctx: ctx, kick: make(chan struct{}, 1),
		ending:  make(chan string, endingQueue),
		claimed: map[pubKey]time.Time{}, pulled: map[pubKey]string{}, pulling: map[pubKey]bool{},
		counts: map[string]int{}, totals: map[string]int{}, warned: map[pubKey]bool{}, watched: map[string]int{}}
	cs.relays = s.cfg.Relays
	cs.unwatch = cs.c.OnEvent(func(session, typ string, _ json.RawMessage, from string) {
		switch typ {
		case clusterEventClaimed:
			cs.poke()
		case clusterEventDeleted:
			if !catalog.ValidID(session) {
				cs.s.log.Warn("cluster: dropped a deletion of a malformed session id", "node", from)
				return
			}
			// The pages' streams end here, on the receiving goroutine (End does not
			// block), so that nothing the other nodes send after the deletion (the
			// trainer's publication ending there) reaches them first; the rest, which
			// closes connections, is the loop's.
			cs.s.cfg.Events.End(session, events.TypeSessionEnded, map[string]bool{"deleted": true})
			select {
			case cs.ending <- session:
			default: // the loop's catalogue check ends it
			}
		}
	})
	cs.wg.Add(1)
	go cs.loop()
	return cs
}

// Close stops the cluster loop and the pulls it started; the claims are left to
// cluster.Close (which releases them) or to their expiry.
func (s *Server) Close() error {
	if cs := s.cluster; cs != nil {
		cs.unwatch()
		cs.mu.Lock()
		cs.closed = true
		cs.mu.Unlock()
		cs.cancel()
		cs.wg.Wait()
	}
	return nil
}

func (cs *clusterState) poke() {
	select {
	case cs.kick <- struct{}{}:
	default:
	}
}

func (cs *clusterState) loop() {
	defer cs.wg.Done()
	t := time.NewTicker(clusterRound)
	defer t.Stop()
	for {
		select {
		case <-cs.ctx.Done():
			return
		case <-t.C:
		case <-cs.kick:
		case id := <-cs.ending:
			cs.endDeleted(id)
			continue
		}
		cs.round()
	}
}

// round brings Redis and the local sessions in line, see the file's comment.
func (cs *clusterState) round() {
	reg := cs.s.cfg.Registry
	self := cs.c.Self().ID
	local := map[pubKey]bool{}
	cs.endGone()
	for _, id := range reg.IDs() {
		sess, ok := reg.Lookup(id)
		if !ok {
			continue
		}
		// What a node pulls without being asked: the origin (the trainer
		// publishes here) pulls the classrooms' talk-back for its programme, and a
		// publication already relayed here follows its source to a new node.
		// Everything else is pulled on demand (prepare: a classroom's WHEP offer,
		// an RTSP reader), one publication at a time, so an edge whose classrooms
		// play the programme carries only the programme.
		interested := false
		origin := false
		for _, info := range sess.Publications() {
			if info.Relayed {
				interested = true
				continue
			}
			if info.Name == sfu.TrainerPublication {
				interested, origin = true, true
			}
			k := pubKey{id, info.Name}
			local[k] = true
			cs.ensureClaimed(k)
		}
		cs.recordSubscribers(id, sess.Subscribers())
		if !interested {
			continue
		}
		ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
		pubs, err := cs.c.Publications(ctx, id)
		cancel()
		if err != nil {
			continue // Redis down: what flows keeps flowing; the next round retries
		}
		for name, n := range pubs {
			if n.ID == self {
				continue
			}
			k := pubKey{id, name}
			p, here := sess.Publication(name)
			if !here && !(origin && strings.HasPrefix(name, sitePublication(""))) {
				continue // not wanted here until someone asks (prepare)
			}
			if here && !p.Relayed() {
				// Sourced here too: another node took the claim while this one
				// was deemed dead (Redis lost it). Theirs stands; say so.
				cs.mu.Lock()
				delete(cs.claimed, k)
				cs.mu.Unlock()
				cs.ensureClaimed(k)
				continue
			}
			cs.pullAsync(k, n)
		}
	}
	cs.releaseGone(local)
	cs.announceTotals()
	cs.refreshOrigins()
	cs.forgetEnded()
}

// deleted is called when this node deleted a session (its streams ended, its
// registry session about to close): its relays here stop, and the other nodes
// are told to end theirs. Redis unreachable: their loops' catalogue checks do.
func (cs *clusterState) deleted(ctx context.Context, session string) {
	if cs == nil {
		return
	}
	cs.stopRelays(session)
	ctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
	defer cancel()
	if err := cs.c.Publish(ctx, session, clusterEventDeleted, nil); err != nil {
		cs.s.log.Warn("cluster: the other nodes were not told of a deletion; they end the session within a round of the catalogue",
			"session", session, "err", err)
	}
}

// endDeleted ends what this node holds of a session deleted elsewhere, as
// deleteSession does on its node: the RTSP sources pulling into it, the event
// streams (one last session.ended, deleted), the relays, then the registry's
// session (its publishers' and subscribers' connections close).
func (cs *clusterState) endDeleted(session string) {
	s := cs.s
	if s.cfg.Sources != nil {
		s.cfg.Sources.RemoveAll(session)
	}
	s.cfg.Events.End(session, events.TypeSessionEnded, map[string]bool{"deleted": true})
	cs.stopRelays(session)
	s.cfg.Registry.Close(session)
	s.log.Info("cluster: session deleted on another node; ended here", "session", session)
}

// stopRelays stops the relays of session pulled here.
func (cs *clusterState) stopRelays(session string) {
	if cs.relays == nil {
		return
	}
	for _, r := range cs.relays.Relays() {
		if r.Session == session {
			cs.relays.Stop(session, r.Publication)
		}
	}
}

// endGone ends the sessions live or watched here that the catalogue no longer
// has: a deletion whose event this node missed (pub/sub delivers at most once;
// Redis was unreachable), or a relay that re-created a session as it was
// deleted. Only a definite "not found" counts: a catalogue that cannot be read
// ends nothing.
func (cs *clusterState) endGone() {
	ids := cs.s.cfg.Registry.IDs()
	cs.mu.Lock()
	for id := range cs.watched {
		ids = append(ids, id)
	}
	cs.mu.Unlock()
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := cs.s.cfg.Catalog.Get(id); errors.Is(err, catalog.ErrNotFound) {
			cs.endDeleted(id)
		}
	}
}

// watch counts an open event stream of session until the returned func is
// called (endGone looks at the sessions watched here).
func (cs *clusterState) watch(session string) (done func()) {
	if cs == nil {
		return func() {}
	}
	cs.mu.Lock()
	cs.watched[session]++
	cs.mu.Unlock()
	return func() {
		cs.mu.Lock()
		if cs.watched[session]--; cs.watched[session] <= 0 {
			delete(cs.watched, session)
		}
		cs.mu.Unlock()
	}
}

// floorChanged is the floor's hook on a cluster node, which sees every node's
// changes: the floor taken back on another node ends the classroom's talk-back
// where it publishes (here), as revokeFloor does on the node it was taken back
// on. A relayed copy is left to its relay (its source's end is what the pages
// hear). It runs on the cluster's receiving goroutine: RemovePublication does
// not wait for the connection to close.
func (cs *clusterState) floorChanged(e floor.Event) {
	if cs == nil || e.Change != floor.Revoked {
		return
	}
	ls, ok := cs.s.cfg.Registry.Lookup(e.Session)
	if !ok {
		return
	}
	name := sitePublication(e.Participant)
	if p, ok := ls.Publication(name); ok && !p.Relayed() {
		ls.RemovePublication(name)
	}
}

// forgetEnded drops what is remembered of sessions no longer live here.
func (cs *clusterState) forgetEnded() {
	reg := cs.s.cfg.Registry
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k := range cs.pulled {
		if _, ok := reg.Lookup(k.session); !ok {
			delete(cs.pulled, k)
		}
	}
	for k := range cs.warned {
		if _, ok := reg.Lookup(k.session); !ok {
			delete(cs.warned, k)
		}
	}
}

// refreshOrigins records the live nodes' origins for the pages.
func (cs *clusterState) refreshOrigins() {
	ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
	nodes, err := cs.c.Nodes(ctx)
	cancel()
	if err != nil {
		return // the last known stay
	}
	var origins []string
	for _, n := range nodes {
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(u.Host, " ;,'\"") {
			continue
		}
		origins = append(origins, u.Scheme+"://"+strings.ToLower(u.Host))
	}
	slices.Sort(origins)
	joined := strings.Join(slices.Compact(origins), " ")
	cs.origins.Store(&joined)
}

// pages serves the web pages with the other nodes' origins in their
// Content-Security-Policy's connect-src.
func (cs *clusterState) pages(h http.Handler) http.Handler {
	if cs == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&cspWriter{ResponseWriter: w, origins: cs.origins.Load()}, r)
	})
}

// cspWriter adds origins to connect-src as the page's header is written.
type cspWriter struct {
	http.ResponseWriter
	origins *string
	wrote   bool
}

func (w *cspWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		h := w.ResponseWriter.Header()
		if csp := h.Get("Content-Security-Policy"); csp != "" && w.origins != nil && *w.origins != "" {
			h.Set("Content-Security-Policy", strings.Replace(csp, "connect-src 'self'", "connect-src 'self' "+*w.origins, 1))
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *cspWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// ensureClaimed claims k unless this node holds it already.
func (cs *clusterState) ensureClaimed(k pubKey) {
	cs.mu.Lock()
	_, held := cs.claimed[k]
	cs.mu.Unlock()
	if held {
		return
	}
	ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
	err := cs.c.ClaimPublication(ctx, k.session, k.publication)
	cancel()
	var taken *cluster.ClaimedError
	switch {
	case err == nil:
		cs.claimedNow(k)
	case errors.As(err, &taken):
		cs.mu.Lock()
		warned := cs.warned[k]
		cs.warned[k] = true
		cs.mu.Unlock()
		if !warned {
			cs.s.log.Warn("cluster: a publication live here is sourced by another node; clients there do not get this one",
				"session", k.session, "publication", k.publication, "owner", taken.Owner.ID)
		}
	}
}

// claimedNow records a claim and tells the other nodes.
func (cs *clusterState) claimedNow(k pubKey) {
	cs.mu.Lock()
	_, had := cs.claimed[k]
	cs.claimed[k] = time.Now()
	delete(cs.warned, k)
	delete(cs.pulled, k)
	cs.mu.Unlock()
	if had {
		return
	}
	ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
	defer cancel()
	_ = cs.c.Publish(ctx, k.session, clusterEventClaimed, map[string]string{"publication": k.publication})
}

// releaseGone releases the claims of publications no longer live here.
func (cs *clusterState) releaseGone(local map[pubKey]bool) {
	var gone []pubKey
	cs.mu.Lock()
	for k, since := range cs.claimed {
		if !local[k] && time.Since(since) > claimSettle {
			gone = append(gone, k)
		}
	}
	cs.mu.Unlock()
	for _, k := range gone {
		ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
		err := cs.c.ReleasePublication(ctx, k.session, k.publication)
		cancel()
		if err != nil {
			continue // the next round retries; the claim also expires if this node dies
		}
		cs.mu.Lock()
		if since, ok := cs.claimed[k]; ok && time.Since(since) > claimSettle {
			delete(cs.claimed, k)
		}
		cs.mu.Unlock()
		cs.s.log.Info("cluster: publication released", "session", k.session, "publication", k.publication)
	}
}

// recordSubscribers records a session's local count when it changed.
func (cs *clusterState) recordSubscribers(session string, n int) {
	cs.mu.Lock()
	last, ok := cs.counts[session]
	cs.counts[session] = n
	cs.mu.Unlock()
	if !ok || last != n {
		cs.c.SetSubscribers(session, n)
	}
}

// announceTotals sends the pages of the sessions watched here their cluster-wide
// subscriber count when it changed.
func (cs *clusterState) announceTotals() {
	cs.mu.Lock()
	sessions := make([]string, 0, len(cs.counts))
	for id := range cs.counts {
		sessions = append(sessions, id)
	}
	cs.mu.Unlock()
	for _, id := range sessions {
		if _, ok := cs.s.cfg.Registry.Lookup(id); !ok {
			cs.c.SetSubscribers(id, 0)
			cs.mu.Lock()
			delete(cs.counts, id)
			delete(cs.totals, id)
			cs.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
		n, err := cs.c.Subscribers(ctx, id)
		cancel()
		if err != nil {
			continue
		}
		cs.mu.Lock()
		last, ok := cs.totals[id]
		cs.totals[id] = n
		cs.mu.Unlock()
		if !ok || last != n {
			cs.s.cfg.Events.Publish(id, sfu.EventSubscribers, n)
		}
	}
}

// pullAsync starts pulling k from node n unless it is relayed from n already or
// a pull of it is under way.
func (cs *clusterState) pullAsync(k pubKey, n cluster.Node) {
	if cs.relays == nil {
		return
	}
	cs.mu.Lock()
	if cs.closed || cs.pulling[k] || cs.pulled[k] == n.ID && cs.relayedHere(k) {
		cs.mu.Unlock()
		return
	}
	cs.pulling[k] = true
	cs.wg.Add(1) // under mu: Close waits for every pull it lets start
	cs.mu.Unlock()
	go func() {
		defer cs.wg.Done()
		ctx, cancel := context.WithTimeout(cs.ctx, pullTimeout)
		defer cancel()
		if err := cs.pull(ctx, k, n); err != nil && cs.ctx.Err() == nil {
			cs.s.log.Warn("cluster: pulling a publication", "session", k.session, "publication", k.publication,
				"origin", n.ID, "err", err)
		}
	}()
}

// relayedHere reports whether k is a relayed publication of the local session.
func (cs *clusterState) relayedHere(k pubKey) bool {
	sess, ok := cs.s.cfg.Registry.Lookup(k.session)
	if !ok {
		return false
	}
	p, ok := sess.Publication(k.publication)
	return ok && p.Relayed()
}

// pull relays k here from n and waits until it is here.
func (cs *clusterState) pull(ctx context.Context, k pubKey, n cluster.Node) error {
	cs.mu.Lock()
	cs.pulling[k] = true
	cs.mu.Unlock()
	defer func() {
		cs.mu.Lock()
		delete(cs.pulling, k)
		cs.mu.Unlock()
	}()
	if err := cs.relays.Pull(ctx, k.session, k.publication, n.URL); err != nil {
		if errors.Is(err, relay.ErrNotLive) { // claimed there, its tracks not yet (or no longer) there
			return fmt.Errorf("%w: %s is not live on its origin node %s now; retry (%v)", errClusterUnavailable, k.publication, n.ID, err)
		}
		return fmt.Errorf("%w: origin node %s unreachable; retry (pulling %s: %v)", errClusterUnavailable, n.ID, k.publication, err)
	}
	cs.mu.Lock()
	cs.pulled[k] = n.ID
	cs.mu.Unlock()
	cs.s.log.Info("cluster: publication relayed here", "session", k.session, "publication", k.publication, "origin", n.ID)
	return nil
}

// prepare makes a publication of session live here if another node sources it:
// the WHEP, RTSP and page paths call it before subscribing. want lists the names
// the client would take, best first (the programme, else the trainer's); the
// first one live anywhere is pulled, and waited for. It returns nil when it is
// live here already or nowhere (the caller goes on as on a single node).
func (cs *clusterState) prepare(ctx context.Context, session string, want ...string) error {
	if cs == nil {
		return nil
	}
	sess := cs.s.cfg.Registry.Session(session)
	for _, name := range want {
		if _, ok := sess.Publication(name); ok {
			return nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
	pubs, err := cs.c.Publications(cctx, session)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: cannot learn which node serves session %s: %w", errClusterUnavailable, session, err)
	}
	self := cs.c.Self().ID
	var publication string
	var n cluster.Node
	for _, name := range want {
		if node, ok := pubs[name]; ok {
			publication, n = name, node
			break
		}
	}
	if publication == "" || n.ID == self {
		return nil
	}
	if cs.relays == nil {
		return fmt.Errorf("%w: %s is live on node %s and this node relays nothing", errClusterUnavailable, publication, n.ID)
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	return cs.pull(pctx, pubKey{session, publication}, n)
}

// prepareWHEP is prepare for a WHEP offer of publication ("" for the session's
// default); on failure it has answered.
func (cs *clusterState) prepareWHEP(w http.ResponseWriter, r *http.Request, session, publication string) bool {
	if cs == nil {
		return true
	}
	want := []string{publication}
	if publication == "" {
		want = []string{recorder.ProgrammePublication, sfu.TrainerPublication}
	}
	if err := cs.prepare(r.Context(), session, want...); err != nil {
		cs.s.httpError(w, r, err)
		return false
	}
	return true
}

// Prepare makes a publication live on another cluster node available here (for
// the RTSP edge's Config.Prepare); publication "" is the session's default (the
// programme, else the trainer's). Nil on a single node or when it is live here
// or nowhere.
func (s *Server) Prepare(ctx context.Context, session, publication string) error {
	want := []string{publication}
	if publication == "" {
		want = []string{recorder.ProgrammePublication, sfu.TrainerPublication}
	}
	return s.cluster.prepare(ctx, session, want...)
}

// claim makes this node the source of a publication about to be published by
// WHIP. It answers (and returns false) when the client must go elsewhere: 307
// to the node that sources it already, 503 when Redis cannot say.
func (cs *clusterState) claim(w http.ResponseWriter, r *http.Request, session, publication string) bool {
	if cs == nil {
		return true
	}
	k := pubKey{session, publication}
	ctx, cancel := context.WithTimeout(r.Context(), clusterCallTimeout)
	err := cs.c.ClaimPublication(ctx, session, publication)
	cancel()
	var taken *cluster.ClaimedError
	switch {
	case err == nil:
		cs.claimedNow(k)
		return true
	case errors.As(err, &taken):
		cs.s.redirect(w, r, taken.Owner, "publication live there")
		return false
	}
	cs.mu.Lock()
	_, held := cs.claimed[k]
	cs.mu.Unlock()
	if held { // Redis is down, but this node is the source: its trainer reconnects
		cs.mu.Lock()
		cs.claimed[k] = time.Now()
		cs.mu.Unlock()
		return true
	}
	cs.s.httpError(w, r, fmt.Errorf("%w: cannot make this node the source of %s: %w; retry", errClusterUnavailable, publication, err))
	return false
}

// published is called after a WHIP publication took over: a relay of the same
// publication (this node was an edge of it) has no more use.
func (cs *clusterState) published(session, publication string) {
	if cs == nil || cs.relays == nil {
		return
	}
	k := pubKey{session, publication}
	cs.mu.Lock()
	_, was := cs.pulled[k]
	delete(cs.pulled, k)
	cs.mu.Unlock()
	if was {
		cs.relays.Stop(session, publication)
	}
}

// place answers 307 (and returns false) when cluster.Place prefers another node
// for a new WHIP/WHEP client. A request placed once is not placed again; with
// Redis down the client is served here.
func (cs *clusterState) place(w http.ResponseWriter, r *http.Request) bool {
	if cs == nil || r.URL.Query().Get(placedParam) != "" || !cs.c.Healthy() { // Redis down: served here at once
		return true
	}
	region := r.URL.Query().Get(regionParam)
	if region == "" {
		region = r.Header.Get(regionHeader)
	}
	ctx, cancel := context.WithTimeout(r.Context(), clusterCallTimeout)
	n, redirect, err := cs.c.Place(ctx, region)
	cancel()
	if err != nil || !redirect || n.URL == "" {
		return true
	}
	cs.s.redirect(w, r, n, "placement")
	return false
}

// redirect answers 307 to the same path on node n, marked placed.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, n cluster.Node, why string) {
	q := r.URL.Query()
	q.Set(placedParam, "1")
	// A browser drops the Authorization header when a redirect leads to another
	// origin (another node is one), so the token goes along in the query, where
	// the API takes it too (and the access log does not write it).
	if h := r.Header.Get("Authorization"); q.Get("token") == "" && len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		q.Set("token", strings.TrimSpace(h[7:]))
	}
	loc := strings.TrimSuffix(n.URL, "/") + r.URL.EscapedPath() + "?" + q.Encode()
	if _, err := url.Parse(loc); err != nil {
		s.httpError(w, r, fmt.Errorf("%w: node %s has a bad URL", errClusterUnavailable, n.ID))
		return
	}
	s.log.Info("cluster: redirected", "path", r.URL.Path, "node", n.ID, "why", why)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusTemporaryRedirect, map[string]string{"node": n.ID, "url": loc, "reason": why})
}

// absolute returns path as a URL of this node when the client was redirected
// here (placed=1): its WHIP/WHEP library resolves the resource's Location
// against the URL it first asked, another node's, and would send its trickle
// ICE, layer choices and DELETE there. Otherwise path stays relative.
func (cs *clusterState) absolute(r *http.Request, path string) string {
	if cs == nil || r.URL.Query().Get(placedParam) == "" {
		return path
	}
	return strings.TrimSuffix(cs.c.Self().URL, "/") + path
}

// sessionState completes a session's state with the cluster's view: the
// subscribers of every node, live when its trainer is live on any node, and the
// publications other nodes source (a page asks for them here; they are pulled
// then).
func (cs *clusterState) sessionState(st *sessionState) {
	if cs == nil || !cs.c.Healthy() {
		return
	}
	ctx, cancel := context.WithTimeout(cs.ctx, clusterCallTimeout)
	defer cancel()
	if n, err := cs.c.Subscribers(ctx, st.Session.ID); err == nil && n > st.Subscribers {
		st.Subscribers = n
	}
	pubs, err := cs.c.Publications(ctx, st.Session.ID)
	if err != nil {
		return
	}
	_, trainer := pubs[sfu.TrainerPublication]
	st.Live = st.Live || trainer
	added := false
	for name := range pubs {
		if !slices.ContainsFunc(st.Publications, func(p sfu.PublicationInfo) bool { return p.Name == name }) {
			st.Publications = append(st.Publications, sfu.PublicationInfo{Name: name, Relayed: true})
			added = true
		}
	}
	if added {
		slices.SortFunc(st.Publications, func(a, b sfu.PublicationInfo) int { return strings.Compare(a.Name, b.Name) })
	}
}
