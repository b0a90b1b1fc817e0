// Package limit bounds what one client (an address, a token) may hold at once.
// Several defences of the server share it: connections per address, event
// streams per token, downloads per address, WebRTC offers still connecting.
package limit

import (
	"net"
	"net/http"
	"sync"
)

// Counter counts what each key holds and refuses more than Max at once.
// The zero Max means unlimited. Safe for concurrent use; not for the packet path.
type Counter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewCounter returns a Counter that lets each key hold at most max things;
// max <= 0 means no limit (Acquire always succeeds, and still counts).
func NewCounter(max int) *Counter {
	return &Counter{max: max, n: make(map[string]int)}
}

// Max is the per-key limit (0: none).
func (c *Counter) Max() int {
	if c.max < 0 {
		return 0
	}
	return c.max
}

// Acquire takes one unit for key. When key already holds Max, it returns ok false
// and nothing is taken. release gives the unit back; calling it more than once
// is harmless.
func (c *Counter) Acquire(key string) (release func(), ok bool) {
	c.mu.Lock()
	if c.max > 0 && c.n[key] >= c.max {
		c.mu.Unlock()
		return func() {}, false
	}
	c.n[key]++
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { c.release(key) }) }, true
}

func (c *Counter) release(key string) {
	c.mu.Lock()
	if c.n[key] <= 1 {
		delete(c.n, key) // the map holds only keys in use: it cannot grow without bound
	} else {
		c.n[key]--
	}
	c.mu.Unlock()
}

// Count is what key holds now.
func (c *Counter) Count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// Keys is how many keys hold something now.
func (c *Counter) Keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// Host is the host part of a "host:port" address (the address itself when it has
// no port). Limits are per host, never per port: a client opens each connection
// from a new port.
func Host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// ClientAddr is the address a request came from, for limits and logs. It is the
// TCP peer: forwarding headers are not trusted, since any client can set them.
func ClientAddr(r *http.Request) string { return Host(r.RemoteAddr) }
