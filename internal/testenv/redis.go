package testenv

import (
	"bufio"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisStartTimeout bounds how long a redis-server start may take to answer PING.
const redisStartTimeout = 15 * time.Second

// Redis is a redis-server process on 127.0.0.1 with its data (append-only
// file) in a test temporary directory. Create it with [StartRedis].
type Redis struct {
	// Addr is "127.0.0.1:port"; it stays the same across Stop and Restart.
	Addr string

	t   testing.TB
	bin string
	dir string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// StartRedis starts a redis-server on a kernel-chosen loopback port with a
// fresh data directory (appendonly yes, so Restart keeps the data), waits
// until it answers PING, and registers a cleanup that kills it. It fails the
// test when redis-server is missing (with the install command) or does not
// come up.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{
		t:   t,
		bin: RequireTool(t, "redis-server", "apt-get install redis-server"),
		dir: t.TempDir(),
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.kill()
	})
	// A port picked by listening on :0 and closing can be taken by someone
	// else before redis-server binds it; such a start fails fast, so try anew.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if r.Addr, err = freeAddr(); err != nil {
			break
		}
		if err = r.start(); err == nil || !errors.Is(err, errRedisExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	return r
}

// URL returns the go-redis URL of the server, "redis://127.0.0.1:port/0".
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Stop kills the server, as a crash would, and waits for it to exit. The
// port and data directory are kept for [Redis.Restart]. Stopping a stopped
// server does nothing.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill()
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data (the append-only file), and waits until it answers.
// Call it from the test goroutine.
func (r *Redis) Restart() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill()
	var err error
	// The port was just released by the killed process; binding it again
	// may briefly fail while the kernel lets go of it.
	for attempt := 0; attempt < 20; attempt++ {
		if err = r.start(); err == nil || !errors.Is(err, errRedisExited) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("testenv: restart redis-server: %v", err)
	}
}

// errRedisExited reports a server process that ended before becoming ready.
var errRedisExited = errors.New("redis-server exited before it was ready")

// start launches the binary and waits until it answers PING. r.mu must be
// held (or r not yet shared).
func (r *Redis) start() error {
	_, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin,
		"--bind", "127.0.0.1",
		"--port", port,
		"--dir", r.dir,
		"--appendonly", "yes",
		"--appendfsync", "always", // a kill loses nothing the test wrote
		"--save", "",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	p, err := startProcess(cmd, readiness{name: "redis-server", addr: r.Addr,
		// Until PONG: it answers LOADING while it replays its append-only file.
		ready:   func() bool { return redisPong(r.Addr) },
		every:   20 * time.Millisecond,
		timeout: redisStartTimeout,
		exited:  errRedisExited,
	})
	if err != nil {
		return err
	}
	r.proc = p
	return nil
}

// kill ends the current process, if any, and waits for it. r.mu must be held.
func (r *Redis) kill() {
	if r.proc == nil {
		return
	}
	r.proc.kill()
	r.proc = nil
}

// redisPong reports whether a PING over RESP gets +PONG.
func redisPong(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}

// Port returns the server's port.
func (r *Redis) Port() int {
	_, p, _ := net.SplitHostPort(r.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
