package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"lectern/floor"
)

// The floor in Redis: per session, floor:{session}:hands and
// floor:{session}:speakers are lists of the JSON of floor.Hand and
// floor.Speaker, in order. Each operation is one Lua script, so it is atomic
// and all nodes' operations are serialised by Redis. A change takes a number
// from one counter (floor:ver), is added to a capped log (floor:log, a sorted
// set by number, keeping the last floorLogSize) and
// published on the floor channel, all in the same script: the numbers give
// every node the one order of all changes, and a node that missed some (a
// lost connection, or its own change overtaking another node's on the wire)
// fetches them from the log before going on. One counter for every session,
// rather than one per session, is what lets a node know where it started
// listening, so that it neither replays history nor misses a change.
const (
	floorVerKey  = keyPrefix + "floor:ver"
	floorLogKey  = keyPrefix + "floor:log"
	floorLogSize = 1024
	// floorStateTTL bounds how long a session's floor outlives its last
	// change when nobody Forgets it (every node gone).
	floorStateTTL = 48 * time.Hour
)

func floorKeys(session string) []string {
	return []string{keyPrefix + "floor:" + session + ":hands", keyPrefix + "floor:" + session + ":speakers", floorVerKey, floorLogKey}
}

// floorLua is the prelude of the floor scripts.
// KEYS: hands, speakers, ver, log. ARGV: session, participant, now
// (RFC 3339), channel, state ttl ms, and the operation's argument.
const floorLua = `
local function find(key, p)
  for _, raw in ipairs(redis.call('LRANGE', key, 0, -1)) do
    local e = cjson.decode(raw)
    if e.participant == p then return raw, e end
  end
  return nil, nil
end
local function str(v) if type(v) == 'string' then return v end return '' end
local function emit(change, p, display, listname, listkey)
  local v = redis.call('INCR', KEYS[3])
  local ev = '{"v":' .. v .. ',"session":' .. cjson.encode(ARGV[1]) .. ',"change":' .. cjson.encode(change) ..
    ',"participant":' .. cjson.encode(p) .. ',"display":' .. cjson.encode(display) .. ',"at":' .. cjson.encode(ARGV[3]) ..
    ',"' .. listname .. '":[' .. table.concat(redis.call('LRANGE', listkey, 0, -1), ',') .. ']}'
  redis.call('ZADD', KEYS[4], v, ev)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -` + "1025" + `)
  redis.call('PUBLISH', ARGV[4], ev)
  return ev
end
local function touch()
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
`

// raiseScript: ARGV[6] is the hand's JSON.
var raiseScript = redis.NewScript(floorLua + `
if find(KEYS[1], ARGV[2]) then return {} end
redis.call('RPUSH', KEYS[1], ARGV[6])
touch()
return {emit('hand', ARGV[2], str(cjson.decode(ARGV[6]).display), 'hands', KEYS[1])}
`)

var lowerScript = redis.NewScript(floorLua + `
local raw, h = find(KEYS[1], ARGV[2])
if not raw then return {} end
redis.call('LREM', KEYS[1], 1, raw)
touch()
return {emit('hand_down', ARGV[2], str(h.display), 'hands', KEYS[1])}
`)

// grantScript: ARGV[6] is the publication. It returns the speaker's JSON,
// then the events (none when the participant held the floor already).
var grantScript = redis.NewScript(floorLua + `
local raw = find(KEYS[2], ARGV[2])
if raw then return {raw} end
local hraw, h = find(KEYS[1], ARGV[2])
local display = ''
if h then display = str(h.display) end
local sp = cjson.encode({participant = ARGV[2], display = display, publication = ARGV[6], since = ARGV[3]})
redis.call('RPUSH', KEYS[2], sp)
local out = {sp, emit('floor', ARGV[2], display, 'speakers', KEYS[2])}
if hraw then
  redis.call('LREM', KEYS[1], 1, hraw)
  out[3] = emit('hand_down', ARGV[2], display, 'hands', KEYS[1])
end
touch()
return out
`)

var revokeScript = redis.NewScript(floorLua + `
local raw, s = find(KEYS[2], ARGV[2])
if not raw then return {} end
redis.call('LREM', KEYS[2], 1, raw)
touch()
return {emit('floor_end', ARGV[2], str(s.display), 'speakers', KEYS[2])}
`)

// wireEvent is a floor change as the scripts write it.
type wireEvent struct {
	V           int64           `json:"v"`
	Session     string          `json:"session"`
	Change      floor.Change    `json:"change"`
	Participant string          `json:"participant"`
	Display     string          `json:"display"`
	At          string          `json:"at"`
	Hands       []floor.Hand    `json:"hands"`
	Speakers    []floor.Speaker `json:"speakers"`
}

func (w *wireEvent) event() floor.Event {
	at, _ := time.Parse(time.RFC3339Nano, w.At)
	return floor.Event{Session: w.Session, Change: w.Change, Participant: w.Participant, Display: w.Display,
		At: at, Hands: w.Hands, Speakers: w.Speakers}
}

// floorHub delivers the floor changes to this node's floors' hooks, each
// once, in the order of their numbers, whether they come from this node's own
// operations or from the subscription.
type floorHub struct {
	c *Cluster

	// mu is held while hooks run: it serialises delivery.
	mu     sync.Mutex
	inited bool  // last is known
	last   int64 // number of the last change delivered (or skipped)
	hooks  []func(floor.Event)
}

// subscribed runs on the receiving goroutine after each (re)subscription: the
// counter tells where this node starts listening, or what it missed.
func (h *floorHub) subscribed(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	v, err := h.c.rdb.Get(ctx, floorVerKey).Int64()
	if errors.Is(err, redis.Nil) {
		v, err = 0, nil
	}
	if err != nil {
		return // the next change fetches the gap
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.inited:
		h.inited, h.last = true, v
	case v < h.last:
		// Redis lost its data (no persistence): numbering restarts.
		h.c.log.Warn("cluster: floor change numbers restarted (Redis lost its data)", "was", h.last, "now", v)
		h.last = v
	case v > h.last:
		h.fill(ctx, v+1)
	}
}

// received runs on the receiving goroutine for each published change.
func (h *floorHub) received(ctx context.Context, payload string) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		h.c.log.Warn("cluster: dropped a malformed floor change", "err", err)
		return
	}
	h.deliver(ctx, []wireEvent{w})
}

// deliver hands evs (in order) to the hooks, after any change before them
// that was not delivered yet.
func (h *floorHub) deliver(ctx context.Context, evs []wireEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		w := &evs[i]
		if !h.inited {
			h.inited, h.last = true, w.V-1
		}
		if w.V <= h.last {
			continue // delivered already
		}
		if w.V > h.last+1 {
			h.fill(ctx, w.V)
		}
		h.call(w)
	}
}

// fill delivers the logged changes numbered after h.last and before upto.
// h.mu is held.
func (h *floorHub) fill(ctx context.Context, upto int64) {
	if len(h.hooks) == 0 {
		h.last = upto - 1
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	raw, err := h.c.rdb.ZRangeByScore(ctx, floorLogKey, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(h.last, 10), Max: "(" + strconv.FormatInt(upto, 10)}).Result()
	if err != nil {
		h.c.log.Warn("cluster: floor changes missed and not fetched", "from", h.last+1, "to", upto-1, "err", err)
		h.last = upto - 1
		return
	}
	for _, s := range raw {
		var w wireEvent
		if json.Unmarshal([]byte(s), &w) != nil || w.V <= h.last || w.V >= upto {
			continue
		}
		if w.V > h.last+1 {
			h.c.log.Warn("cluster: floor changes missed (no longer logged)", "from", h.last+1, "to", w.V-1)
		}
		h.call(&w)
	}
	if h.last < upto-1 {
		h.c.log.Warn("cluster: floor changes missed (no longer logged)", "from", h.last+1, "to", upto-1)
		h.last = upto - 1
	}
}

// call runs the hooks on w. h.mu is held.
func (h *floorHub) call(w *wireEvent) {
	h.last = w.V
	for _, hook := range h.hooks {
		hook(w.event())
	}
}

// redisFloor is the floor.Floor kept in Redis.
type redisFloor struct{ c *Cluster }

// NewFloor returns the talk-back floor kept in Redis, with the semantics of
// floor.Memory: each operation is atomic across the cluster, and every node's
// hook sees every change (its own and other nodes'), in the one order Redis
// gave them. A node's own changes reach its hook before the operation
// returns; other nodes' changes reach it on the cluster's receiving
// goroutine. The hook must not block for long (every change waits for it),
// and must not call the floor's changing methods (it would deadlock). A
// node cut off from Redis misses changes it cannot fetch back from the log
// when it returns (the last 1024 are kept); its operations fail with
// ErrUnavailable meanwhile.
func NewFloor(c *Cluster, hook func(floor.Event)) floor.Floor {
	if hook != nil {
		c.floors.mu.Lock()
		c.floors.hooks = append(c.floors.hooks, hook)
		c.floors.mu.Unlock()
	}
	return &redisFloor{c: c}
}

var _ floor.Floor = (*redisFloor)(nil)

// run runs a floor script and delivers the changes it made; it returns the
// script's other results (the speaker of a grant).
func (f *redisFloor) run(ctx context.Context, what string, s *redis.Script, session, participant, arg string) (other []string, changes int, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	res, err := s.Run(ctx, f.c.rdb, floorKeys(session), session, participant, now, floorChannel,
		floorStateTTL.Milliseconds(), arg).StringSlice()
	if err != nil {
		return nil, 0, unavailable(fmt.Sprintf("floor %s %s/%s", what, session, participant), err)
	}
	var evs []wireEvent
	for _, r := range res {
		var w wireEvent
		if err := json.Unmarshal([]byte(r), &w); err == nil && w.V > 0 {
			evs = append(evs, w)
		} else {
			other = append(other, r)
		}
	}
	if len(evs) > 0 {
		f.c.floors.deliver(f.c.ctx, evs)
	}
	return other, len(evs), nil
}

// Raise implements floor.Floor.
func (f *redisFloor) Raise(ctx context.Context, session, participant, display string) error {
	hand, err := json.Marshal(floor.Hand{Participant: participant, Display: display, RaisedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("cluster: floor raise: %w", err)
	}
	_, _, err = f.run(ctx, "raise", raiseScript, session, participant, string(hand))
	return err
}

// Lower implements floor.Floor.
func (f *redisFloor) Lower(ctx context.Context, session, participant string) (bool, error) {
	_, n, err := f.run(ctx, "lower", lowerScript, session, participant, "")
	return n > 0, err
}

// Grant implements floor.Floor.
func (f *redisFloor) Grant(ctx context.Context, session, participant string) (floor.Speaker, error) {
	other, _, err := f.run(ctx, "grant", grantScript, session, participant, floor.SitePublication(participant))
	if err != nil {
		return floor.Speaker{}, err
	}
	var sp floor.Speaker
	if len(other) != 1 || json.Unmarshal([]byte(other[0]), &sp) != nil {
		return floor.Speaker{}, fmt.Errorf("cluster: floor grant %s/%s: unexpected answer %q", session, participant, other)
	}
	return sp, nil
}

// Revoke implements floor.Floor.
func (f *redisFloor) Revoke(ctx context.Context, session, participant string) (bool, error) {
	_, n, err := f.run(ctx, "revoke", revokeScript, session, participant, "")
	return n > 0, err
}

// Holds implements floor.Floor.
func (f *redisFloor) Holds(ctx context.Context, session, participant string) (bool, error) {
	_, speakers, err := f.Snapshot(ctx, session)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(speakers, func(s floor.Speaker) bool { return s.Participant == participant }), nil
}

// Snapshot implements floor.Floor.
func (f *redisFloor) Snapshot(ctx context.Context, session string) ([]floor.Hand, []floor.Speaker, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	keys := floorKeys(session)
	var hc, sc *redis.StringSliceCmd
	_, err := f.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hc = p.LRange(ctx, keys[0], 0, -1)
		sc = p.LRange(ctx, keys[1], 0, -1)
		return nil
	})
	if err != nil {
		return nil, nil, unavailable("floor of "+session, err)
	}
	hands := make([]floor.Hand, 0, len(hc.Val()))
	for _, s := range hc.Val() {
		var h floor.Hand
		if err := json.Unmarshal([]byte(s), &h); err != nil {
			return nil, nil, fmt.Errorf("cluster: floor of %s: bad hand: %w", session, err)
		}
		hands = append(hands, h)
	}
	speakers := make([]floor.Speaker, 0, len(sc.Val()))
	for _, s := range sc.Val() {
		var sp floor.Speaker
		if err := json.Unmarshal([]byte(s), &sp); err != nil {
			return nil, nil, fmt.Errorf("cluster: floor of %s: bad speaker: %w", session, err)
		}
		speakers = append(speakers, sp)
	}
	return hands, speakers, nil
}

// Forget implements floor.Floor.
func (f *redisFloor) Forget(ctx context.Context, session string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	keys := floorKeys(session)
	if err := f.c.rdb.Del(ctx, keys[0], keys[1]).Err(); err != nil {
		return unavailable("forget the floor of "+session, err)
	}
	return nil
}
