// Package netns gives tests kernel-shaped links: a network namespace joined to the
// host by a veth pair, with a tbf qdisc on the host-side end that limits what the
// host (the server under test) sends into the namespace, and optionally one on the
// namespace end for the other direction. This kernel has tbf but no netem; add loss
// and delay with internal/udprelay.
//
// A client is put behind the link either in-process, with sockets created by a
// goroutine locked to an OS thread that joined the namespace (Net gives pion such a
// transport.Net, for webrtc.SettingEngine.SetNet; Do, ListenUDP, DialTCP and
// HTTPClient do the same for other code), or as a process run with Command
// (`ip netns exec`). The server is reached at HostIP (the namespace's default route
// points there, so any of the host's addresses goes through the veth and is shaped;
// 127.0.0.1 inside the namespace is the namespace's own loopback). A server that
// must be reached from a namespace therefore cannot bind 127.0.0.1 only.
//
// Names are "lt<pid>x<n>" (namespace) and that plus "h"/"n" (veth ends); subnets
// are /30s of 10.77.0.0/16 picked free under a lock file shared by all test
// processes. Namespaces of processes that no longer run are deleted on first use.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a namespace's link.
type Options struct {
	// DownBps limits host -> namespace traffic (tbf on the host's veth end), in
	// bit/s; 0 = unlimited.
	DownBps int64
	// UpBps limits namespace -> host traffic (tbf on the namespace's end); 0 =
	// unlimited.
	UpBps int64
	// Burst is the tbf bucket in bytes; 0 = 20 ms of the rate, at least 4000.
	Burst int
	// Queue is how long a packet may wait in the tbf queue (its "latency"); more is
	// dropped; 0 = 100 ms.
	Queue time.Duration
}

// NS is a namespace linked to the host.
type NS struct {
	Name   string     // the namespace (as `ip netns` knows it)
	HostIf string     // the host's veth end
	NSIf   string     // the namespace's veth end
	HostIP netip.Addr // the host's address on the link: where the server is reached
	NSIP   netip.Addr // the namespace's address

	opts   Options
	optsMu sync.Mutex
	w      *worker
	pion   atomic.Pointer[pionNet]
	closed sync.Once
}

var (
	counter      atomic.Int64
	staleCleanup sync.Once
	namePattern  = regexp.MustCompile(`^lt([0-9]+)x[0-9]+$`)
)

// Require fails t with a hint unless namespaces can be made here (root, ip, tc).
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("netns: this test makes network namespaces and veth links and needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run it as root, e.g. in the project's container")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("netns: %s not found in PATH (%v); install it with: apt-get install iproute2", tool, err)
		}
	}
}

// New makes a namespace for the test, removed when it ends.
func New(t testing.TB, o Options) *NS {
	t.Helper()
	Require(t)
	n, err := Create(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("netns: %v", err)
		}
	})
	return n
}

// Create makes a namespace (Close removes it); New is the form for tests.
func Create(o Options) (_ *NS, err error) {
	staleCleanup.Do(removeStale)
	name := fmt.Sprintf("lt%dx%d", os.Getpid(), counter.Add(1))
	n := &NS{Name: name, HostIf: name + "h", NSIf: name + "n", opts: o}
	if err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if err := run("ip", "link", "add", n.HostIf, "type", "veth", "peer", "name", n.NSIf, "netns", name); err != nil {
		return nil, err
	}
	if err := n.assignAddresses(); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "set", n.HostIf, "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "link", "set", n.NSIf, "up"},
		{"-n", name, "route", "add", "default", "via", n.HostIP.String()},
	} {
		if err := run("ip", args...); err != nil {
			return nil, err
		}
	}
	if err := n.applyTBF(false, o.DownBps); err != nil {
		return nil, err
	}
	if err := n.applyTBF(true, o.UpBps); err != nil {
		return nil, err
	}
	if n.w, err = startWorker(filepath.Join("/var/run/netns", name)); err != nil {
		return nil, err
	}
	return n, nil
}

// assignAddresses picks a free /30 of 10.77.0.0/16 and gives its first address
// to the host end, its second to the namespace end, holding a lock file so that
// test processes running at once do not pick the same one.
func (n *NS) assignAddresses() error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "lectern-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("netns: lock file: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("netns: lock: %w", err)
	}
	defer func() { _ = unix.Flock(int(lock.Fd()), unix.LOCK_UN) }()
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return fmt.Errorf("netns: ip addr show: %w", err)
	}
	used := map[int]bool{}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			if b := p.Addr().As4(); b[0] == 10 && b[1] == 77 {
				used[int(b[2])*64+int(b[3])/4] = true
			}
		}
	}
	start := (os.Getpid()*31 + int(counter.Load())) % 16384
	for i := 0; i < 16384; i++ {
		k := (start + i) % 16384
		if used[k] {
			continue
		}
		base := [4]byte{10, 77, byte(k / 64), byte(k % 64 * 4)}
		host, ns := base, base
		host[3]++
		ns[3] += 2
		n.HostIP, n.NSIP = netip.AddrFrom4(host), netip.AddrFrom4(ns)
		if err := run("ip", "addr", "add", n.HostIP.String()+"/30", "dev", n.HostIf); err != nil {
			return err
		}
		return run("ip", "-n", n.Name, "addr", "add", n.NSIP.String()+"/30", "dev", n.NSIf)
	}
	return errors.New("netns: no free /30 left in 10.77.0.0/16")
}

// SetRate changes the host -> namespace rate (bit/s; 0 removes the limit).
func (n *NS) SetRate(bps int64) error { return n.applyTBF(false, bps) }

// SetUpRate changes the namespace -> host rate (bit/s; 0 removes the limit).
func (n *NS) SetUpRate(bps int64) error { return n.applyTBF(true, bps) }

// applyTBF sets (or with bps 0 removes) the tbf on one end of the link.
func (n *NS) applyTBF(up bool, bps int64) error {
	n.optsMu.Lock()
	defer n.optsMu.Unlock()
	dev, prefix := n.HostIf, []string{}
	if up {
		dev, prefix = n.NSIf, []string{"-n", n.Name}
	}
	if bps <= 0 {
		out, err := exec.Command("tc", append(prefix, "qdisc", "del", "dev", dev, "root")...).CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("No such file")) && !bytes.Contains(out, []byte("Cannot delete qdisc with handle of zero")) {
			return fmt.Errorf("netns: tc qdisc del dev %s: %v: %s", dev, err, out)
		}
		return nil
	}
	burst := n.opts.Burst
	if burst <= 0 {
		burst = max(4000, int(bps/8/50))
	}
	queue := n.opts.Queue
	if queue <= 0 {
		queue = 100 * time.Millisecond
	}
	// A tbf keeps its queue across a replace, and a queued packet (the edge sends
	// GSO trains) longer than a smaller new bucket never gets the tokens to leave:
	// nothing would cross the link again. The new rate starts with an empty queue.
	_ = exec.Command("tc", append(prefix, "qdisc", "del", "dev", dev, "root")...).Run()
	args := append(prefix, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(bps, 10)+"bit", "burst", strconv.Itoa(burst),
		"latency", strconv.FormatInt(queue.Milliseconds(), 10)+"ms")
	return run("tc", args...)
}

// Command returns cmd prepared to run inside the namespace (`ip netns exec`).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs f on an OS thread inside the namespace: sockets f creates belong to the
// namespace for their whole life, whichever goroutine uses them later. Calls are
// serialized; f must not call Do.
func (n *NS) Do(f func() error) error { return n.w.do(f) }

// ListenUDP opens a UDP socket inside the namespace.
func (n *NS) ListenUDP(network string, laddr *net.UDPAddr) (c *net.UDPConn, err error) {
	err = n.Do(func() (err error) { c, err = net.ListenUDP(network, laddr); return })
	return c, err
}

// Listen opens a listener (e.g. "tcp") inside the namespace.
func (n *NS) Listen(network, address string) (l net.Listener, err error) {
	err = n.Do(func() (err error) { l, err = net.Listen(network, address); return })
	return l, err
}

// DialTCP connects from inside the namespace (address: literal IP and port).
func (n *NS) DialTCP(ctx context.Context, address string) (c net.Conn, err error) {
	err = n.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, "tcp", address); return })
	return c, err
}

// HTTPClient returns a client whose connections start inside the namespace (use
// literal IPs: names are resolved by the host). Its idle connections are closed
// with the namespace.
func (n *NS) HTTPClient() *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = n.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return })
			return c, err
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	n.w.onClose(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// Close removes the namespace (and with it the veth pair and its qdiscs) and
// stops the namespace's thread. Sockets opened in it should be closed first.
func (n *NS) Close() error {
	var err error
	n.closed.Do(func() {
		if n.w != nil {
			n.w.close()
		}
		err = run("ip", "netns", "del", n.Name)
		// The host end goes with the namespace end; delete it in case the pair was
		// only half made.
		_ = exec.Command("ip", "link", "del", n.HostIf).Run()
	})
	return err
}

// removeStale deletes namespaces this package made in processes that have ended.
func removeStale() {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		m := namePattern.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue // ours, or its process still runs
		}
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		_ = exec.Command("ip", "link", "del", e.Name()+"h").Run()
	}
}

// run runs a command, returning its output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// worker is a goroutine on an OS thread that joined a namespace.
type worker struct {
	reqs     chan func()
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	closers  []func()
	stopOnce sync.Once
}

func startWorker(path string) (*worker, error) {
	w := &worker{reqs: make(chan func()), stop: make(chan struct{}), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(w.done)
		// Never unlocked: the thread has left the host's namespace, and a goroutine
		// that ends locked takes its thread with it instead of returning it to the
		// scheduler.
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			started <- fmt.Errorf("netns: open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			started <- fmt.Errorf("netns: setns %s: %w", path, err)
			return
		}
		started <- nil
		for {
			select {
			case f := <-w.reqs:
				f()
			case <-w.stop:
				return
			}
		}
	}()
	if err := <-started; err != nil {
		<-w.done
		return nil, err
	}
	return w, nil
}

var errClosed = errors.New("netns: namespace closed")

func (w *worker) do(f func() error) error {
	var err error
	ran := make(chan struct{})
	select {
	case w.reqs <- func() { err = f(); close(ran) }:
	case <-w.done:
		return errClosed
	}
	<-ran
	return err
}

func (w *worker) onClose(f func()) {
	w.mu.Lock()
	w.closers = append(w.closers, f)
	w.mu.Unlock()
}

func (w *worker) close() {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		closers := w.closers
		w.mu.Unlock()
		for _, f := range closers {
			f()
		}
		close(w.stop)
		<-w.done
	})
}
