package main

import (
	"context"
	"log/slog"
	"sync"
)

// cleanup is the stack of what the app opened, each with how to close it. newApp
// and start push onto it as they open things; a failed start and shutdown both
// pop it, so every path closes exactly what was opened, newest first, and a step
// added later cannot be forgotten on one of them.
type cleanup struct {
	mu    sync.Mutex
	steps []cleanupStep
}

type cleanupStep struct {
	name  string // what is closed, for the log
	close func(context.Context) error
}

// push records how to close what was just opened.
func (c *cleanup) push(name string, close func(context.Context) error) {
	c.mu.Lock()
	c.steps = append(c.steps, cleanupStep{name: name, close: close})
	c.mu.Unlock()
}

// run closes everything pushed, newest first, within ctx; each step runs even
// when an earlier one failed (its error is logged). Running it again closes
// only what was pushed since.
func (c *cleanup) run(ctx context.Context, log *slog.Logger) {
	for {
		c.mu.Lock()
		n := len(c.steps)
		if n == 0 {
			c.mu.Unlock()
			return
		}
		step := c.steps[n-1]
		c.steps = c.steps[:n-1]
		c.mu.Unlock()
		if err := step.close(ctx); err != nil {
			log.Warn("shutdown: "+step.name, "err", err)
		}
	}
}
