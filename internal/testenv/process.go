package testenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// process is one run of a server binary a test depends on (MinIO, redis-server).
type process struct {
	cmd     *exec.Cmd
	out     *outputBuffer
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // valid after exited is closed
}

// readiness says how startProcess knows a server is up.
type readiness struct {
	name    string      // the binary, for messages: "minio", "redis-server"
	addr    string      // where it listens, for messages
	ready   func() bool // probes the server once
	every   time.Duration
	timeout time.Duration
	// exited is the error wrapped when the process ends before it is ready: the
	// callers try again on it (the port picked was taken meanwhile).
	exited error
}

// startProcess starts cmd with its output collected and polls r.ready until it
// reports true. When the process exits first or r.timeout passes, the process is
// killed and the error carries its output.
func startProcess(cmd *exec.Cmd, r readiness) (*process, error) {
	p := &process{cmd: cmd, out: &outputBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	go func() { // owned by p: kill waits for it
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(r); err != nil {
		p.kill()
		return nil, fmt.Errorf("%w\n--- %s output ---\n%s", err, r.name, p.out.String())
	}
	return p, nil
}

// waitReady polls r.ready until it reports true, the process exits, or the
// timeout passes.
func (p *process) waitReady(r readiness) error {
	deadline := time.NewTimer(r.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		if r.ready() {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %v", r.exited, p.waitErr)
		case <-deadline.C:
			return fmt.Errorf("%s at %s not ready after %v", r.name, r.addr, r.timeout)
		case <-tick.C:
		}
	}
}

// kill ends the process and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Kill() // fails only if it already exited
	<-p.exited
}

// outputBuffer collects a process's output for error messages, keeping
// the first maxOutput bytes. It is safe for concurrent use.
type outputBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// maxOutput caps the captured output of one server run.
const maxOutput = 256 << 10

// Write implements io.Writer; it never fails so the process never blocks.
func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns the output collected so far.
func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
