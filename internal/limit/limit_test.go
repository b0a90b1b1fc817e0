package limit

import (
	"net/http/httptest"
	"sync"
	"testing"
)

func TestCounterBoundsEachKey(t *testing.T) {
	c := NewCounter(2)
	r1, ok1 := c.Acquire("a")
	_, ok2 := c.Acquire("a")
	_, ok3 := c.Acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquire a three times: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := c.Acquire("b"); !ok {
		t.Fatal("another key is refused while a is full")
	}
	r1()
	r1() // twice is harmless
	if got := c.Count("a"); got != 1 {
		t.Fatalf("count after one release (called twice) = %d, want 1", got)
	}
	if _, ok := c.Acquire("a"); !ok {
		t.Fatal("a released unit is not available again")
	}
}

func TestCounterForgetsIdleKeys(t *testing.T) {
	c := NewCounter(0)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, ok := c.Acquire("k")
			if !ok {
				t.Error("unlimited counter refused")
			}
			rel()
		}()
	}
	wg.Wait()
	if c.Keys() != 0 {
		t.Fatalf("keys after every release = %d, want 0", c.Keys())
	}
}

func TestClientAddrIgnoresForwardingHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.7:51000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := ClientAddr(r); got != "192.0.2.7" {
		t.Fatalf("ClientAddr = %q, want 192.0.2.7", got)
	}
	if got := Host("[2001:db8::1]:443"); got != "2001:db8::1" {
		t.Fatalf("Host(ipv6) = %q", got)
	}
}
