package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// claimScript takes a publication for node ARGV[1] when it is free, already
// ours, or held by a node whose key is gone (dead); else it returns the
// owner's node record. Redis runs scripts one at a time: of two nodes claiming
// at once, the first to reach Redis wins, and the second sees it as owner.
//
// KEYS: pub key, pubs set. ARGV: node id, ttl ms, publication, node key prefix.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local owner = redis.call('GET', ARGV[4] .. cur)
  if owner then return owner end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return ''
`)

// releaseScript drops a claim if it is ours.
//
// KEYS: pub key, pubs set. ARGV: node id, publication.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
`)

// publicationsScript returns publication, owner record pairs of a session's
// claims whose owner is alive, and prunes the names whose claim expired.
//
// KEYS: pubs set. ARGV: pub key prefix of the session, node key prefix.
var publicationsScript = redis.NewScript(`
local out = {}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local owner = redis.call('GET', ARGV[1] .. p)
  if not owner then
    redis.call('SREM', KEYS[1], p)
  else
    local js = redis.call('GET', ARGV[2] .. owner)
    if js then
      out[#out + 1] = p
      out[#out + 1] = js
    end
  end
end
return out
`)

// checkNames refuses names that cannot make a key.
func checkNames(session, publication string) error {
	if session == "" || publication == "" || len(session) > 256 || len(publication) > 256 {
		return fmt.Errorf("cluster: bad session %q or publication %q", session, publication)
	}
	return nil
}

// ClaimPublication makes this node the source of session's publication: it
// succeeds when the claim is free, already ours, or its owner node is dead;
// else it returns a *[ClaimedError] naming the owner. The claim is refreshed
// by the heartbeat until released (or until Close); a dead node's claims
// expire with it.
func (c *Cluster) ClaimPublication(ctx context.Context, session, publication string) error {
	if err := checkNames(session, publication); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	owner, err := claimScript.Run(ctx, c.rdb, []string{pubKey(session, publication), pubsKey(session)},
		c.cfg.NodeID, c.ttl.Milliseconds(), publication, keyPrefix+"node:").Text()
	if err != nil {
		return unavailable(fmt.Sprintf("claim %s/%s", session, publication), err)
	}
	if owner != "" {
		var n Node
		if err := json.Unmarshal([]byte(owner), &n); err != nil {
			return fmt.Errorf("cluster: claim %s/%s: bad owner record: %w", session, publication, err)
		}
		return &ClaimedError{Owner: n}
	}
	c.mu.Lock()
	c.claims[claim{session, publication}] = struct{}{}
	c.mu.Unlock()
	return nil
}

// ReleasePublication gives up this node's claim (a no-op when it is not ours).
// The heartbeat stops refreshing it even when Redis cannot be reached, so the
// claim then expires by itself.
func (c *Cluster) ReleasePublication(ctx context.Context, session, publication string) error {
	if err := checkNames(session, publication); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.claims, claim{session, publication})
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := releaseScript.Run(ctx, c.rdb, []string{pubKey(session, publication), pubsKey(session)}, c.cfg.NodeID, publication).Err()
	if err != nil {
		return unavailable(fmt.Sprintf("release %s/%s", session, publication), err)
	}
	return nil
}

// Publications returns session's live publications (publication -> source
// node); a claim whose node died is not listed.
func (c *Cluster) Publications(ctx context.Context, session string) (map[string]Node, error) {
	if session == "" || len(session) > 256 {
		return nil, fmt.Errorf("cluster: bad session %q", session)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := publicationsScript.Run(ctx, c.rdb, []string{pubsKey(session)}, pubKey(session, ""), keyPrefix+"node:").StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("publications of "+session, err)
	}
	out := make(map[string]Node, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		var n Node
		if err := json.Unmarshal([]byte(res[i+1]), &n); err != nil {
			return nil, fmt.Errorf("cluster: publications of %s: bad node record: %w", session, err)
		}
		out[res[i]] = n
	}
	return out, nil
}
