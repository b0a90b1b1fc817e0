package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// maxNodeName is the longest node id or region (cluster.Open's rule: [a-z0-9-]{1,32}).
const maxNodeName = 32

// checkRedisURL accepts "" (a single node) or a URL go-redis takes:
// redis://[user:password@]host[:port][/db] or rediss:// (TLS). Errors never repeat
// the URL, which may hold a password.
func checkRedisURL(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return "", errors.New("is not a redis:// or rediss:// URL with a host (redis://[:password@]host:6379/0)")
	}
	if _, err := redis.ParseURL(v); err != nil {
		return "", fmt.Errorf("is not a Redis URL: %s", redactURL(err.Error(), u))
	}
	return v, nil
}

// redactURL removes the password of u from s.
func redactURL(s string, u *url.URL) string {
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}

// checkNodeName accepts "" (the default) or 1-32 characters of a-z, 0-9 and '-'.
func checkNodeName(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if len(v) > maxNodeName || strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return "", fmt.Errorf("%q is not 1-%d characters of a-z, 0-9 and '-'", v, maxNodeName)
	}
	return v, nil
}

// nodeIDFromHost turns a host name into a node id: lower case, every other
// character '-', at most 32 characters; "node" if nothing is left.
func nodeIDFromHost(host string) string {
	host, _, _ = strings.Cut(strings.ToLower(host), ".") // the short name: lectern-edge-hue
	id := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, host)
	if len(id) > maxNodeName {
		id = id[:maxNodeName]
	}
	if id = strings.Trim(id, "-"); id == "" {
		return "node"
	}
	return id
}

// checkCluster validates the cluster settings together and fills their defaults.
// It runs before -public-url gets its default from -http: a clustered node must be
// told the URL other nodes reach it at.
func (c *config) checkCluster() []error {
	redisURL := settingName("redis-url")
	if c.RedisURL == "" {
		var errs []error
		for _, s := range []struct {
			flag string
			set  bool
		}{{"node-id", c.NodeID != ""}, {"region", c.Region != ""}, {"node-max-subscribers", c.NodeMaxSubscribers != 0}} {
			if s.set {
				errs = append(errs, fmt.Errorf("%s: set but %s is empty (a single node)", settingName(s.flag), redisURL))
			}
		}
		return errs
	}
	var errs []error
	if c.NodeID == "" {
		host, _ := os.Hostname()
		c.NodeID = nodeIDFromHost(host)
	}
	if c.Region == "" {
		c.Region = "default"
	}
	if c.PublicURL == "" {
		errs = append(errs, fmt.Errorf("%s: required with %s: the URL other nodes and redirected clients reach this node at (e.g. http://10.0.0.2:8080)",
			settingName("public-url"), redisURL))
	}
	if c.TokenSecret == "" {
		errs = append(errs, fmt.Errorf("%s: required with %s, the same on every node: it signs the participant tokens every node accepts and the nodes' own credentials (a generated one would differ from node to node)",
			settingName("token-secret"), redisURL))
	}
	return errs
}
