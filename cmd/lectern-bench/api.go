package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiClient talks to a running Lectern: the admin REST API, WHIP/WHEP and /metrics.
type apiClient struct {
	base  string // e.g. "http://127.0.0.1:8080", no trailing slash
	admin string // admin bearer token
	http  *http.Client
}

// HTTPError is a non-2xx answer from the server.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

func newAPIClient(base, admin string) *apiClient {
	return &apiClient{
		base:  strings.TrimRight(base, "/"),
		admin: admin,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 16, // many WHEP posts in parallel
		}},
	}
}

// do sends one request and returns the response body and Location header; a status
// other than want is an *HTTPError.
func (c *apiClient) do(ctx context.Context, method, path, bearer, contentType string, body []byte, want int) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, "", &HTTPError{Method: method, URL: path, Status: resp.StatusCode, Body: string(b)}
	}
	return b, resp.Header.Get("Location"), nil
}

func (c *apiClient) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	b, _, err := c.do(ctx, http.MethodPost, path, c.admin, "application/json", body, http.StatusCreated)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: answer: %w", path, err)
	}
	return nil
}

// createSession creates a session and returns its id.
func (c *apiClient) createSession(ctx context.Context, title string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := c.postJSON(ctx, "/api/sessions", map[string]string{"title": title}, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("POST /api/sessions: no id in the answer")
	}
	return out.ID, nil
}

// mintToken mints a participant token (role "trainer", "site" or "viewer").
func (c *apiClient) mintToken(ctx context.Context, session, role, name string, ttl time.Duration) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	in := map[string]string{"role": role, "name": name, "ttl": ttl.String()}
	if err := c.postJSON(ctx, "/api/sessions/"+session+"/tokens", in, &out); err != nil {
		return "", err
	}
	return out.Token, nil
}

// offer posts an SDP offer (WHIP or WHEP, RFC 9725) and returns the answer and the
// resource's path.
func (c *apiClient) offer(ctx context.Context, path, token, sdp string) (answer, resource string, err error) {
	b, loc, err := c.do(ctx, http.MethodPost, path, token, "application/sdp", []byte(sdp), http.StatusCreated)
	if err != nil {
		return "", "", err
	}
	return string(b), loc, nil
}

// remove ends a WHIP/WHEP resource.
func (c *apiClient) remove(ctx context.Context, resource, token string) error {
	if resource == "" {
		return nil
	}
	_, _, err := c.do(ctx, http.MethodDelete, resource, token, "", nil, http.StatusOK)
	var he *HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusNoContent || he.Status == http.StatusNotFound) {
		return nil
	}
	return err
}

// serverCounters are the lectern_* counters the report uses, and the Go runtime's
// gauges that explain the server's memory (exported by the Prometheus Go collector).
type serverCounters struct {
	PacketsIn        float64 `json:"packets_in"`
	PacketsOut       float64 `json:"packets_out"`
	QueueDrops       float64 `json:"queue_drops"`
	NACKsAnswered    float64 `json:"nacks_answered"`
	NACKsMissed      float64 `json:"nacks_missed"`
	KeyframeRequests float64 `json:"keyframe_requests"`

	// Gauges, not counters: sub keeps the later value.
	HeapInuse  float64 `json:"go_heap_inuse_bytes"`
	StackInuse float64 `json:"go_stack_inuse_bytes"`
	Goroutines float64 `json:"go_goroutines"`
	// LiveHeap is the heap the last GC found live, from its next goal (liveHeap):
	// unlike HeapInuse it holds no garbage waiting for the next cycle, so it does
	// not depend on when in the GC cycle /metrics was read.
	LiveHeap float64 `json:"go_live_heap_bytes"`
}

// liveHeap estimates the heap marked live by the last GC from the Go collector's
// gauges: the runtime sets the next goal to live + (live + stacks + globals) ×
// GOGC/100 (globals, a few hundred KB, are left in). 0 when a gauge is missing
// (GOGC off, or an older server).
func liveHeap(nextGC, stacks, gogc float64) float64 {
	if nextGC <= 0 || gogc <= 0 {
		return 0
	}
	g := gogc / 100
	return max((nextGC-g*stacks)/(1+g), 0)
}

// add sums two nodes' counters and gauges.
func (a serverCounters) add(b serverCounters) serverCounters {
	return serverCounters{
		PacketsIn: a.PacketsIn + b.PacketsIn, PacketsOut: a.PacketsOut + b.PacketsOut,
		QueueDrops: a.QueueDrops + b.QueueDrops, NACKsAnswered: a.NACKsAnswered + b.NACKsAnswered,
		NACKsMissed: a.NACKsMissed + b.NACKsMissed, KeyframeRequests: a.KeyframeRequests + b.KeyframeRequests,
		HeapInuse: a.HeapInuse + b.HeapInuse, StackInuse: a.StackInuse + b.StackInuse, Goroutines: a.Goroutines + b.Goroutines,
		LiveHeap: a.LiveHeap + b.LiveHeap,
	}
}

// sub returns the counters' increase from b to a, and a's gauges.
func (a serverCounters) sub(b serverCounters) serverCounters {
	return serverCounters{
		PacketsIn: a.PacketsIn - b.PacketsIn, PacketsOut: a.PacketsOut - b.PacketsOut,
		QueueDrops: a.QueueDrops - b.QueueDrops, NACKsAnswered: a.NACKsAnswered - b.NACKsAnswered,
		NACKsMissed: a.NACKsMissed - b.NACKsMissed, KeyframeRequests: a.KeyframeRequests - b.KeyframeRequests,
		HeapInuse: a.HeapInuse, StackInuse: a.StackInuse, Goroutines: a.Goroutines, LiveHeap: a.LiveHeap,
	}
}

// counters scrapes /metrics (Prometheus text format).
func (c *apiClient) counters(ctx context.Context) (serverCounters, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/metrics", "", "", nil, http.StatusOK)
	if err != nil {
		return serverCounters{}, err
	}
	fields := map[string]*float64{}
	var s serverCounters
	fields["lectern_rtp_packets_in_total"] = &s.PacketsIn
	fields["lectern_rtp_packets_out_total"] = &s.PacketsOut
	fields["lectern_queue_drops_total"] = &s.QueueDrops
	fields["lectern_nacks_answered_total"] = &s.NACKsAnswered
	fields["lectern_nacks_missed_total"] = &s.NACKsMissed
	fields["lectern_keyframe_requests_total"] = &s.KeyframeRequests
	fields["go_memstats_heap_inuse_bytes"] = &s.HeapInuse
	fields["go_memstats_stack_inuse_bytes"] = &s.StackInuse
	fields["go_goroutines"] = &s.Goroutines
	var nextGC, gogc float64
	fields["go_memstats_next_gc_bytes"] = &nextGC
	fields["go_gc_gogc_percent"] = &gogc
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if p := fields[name]; ok && p != nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				*p = v
			}
		}
	}
	s.LiveHeap = liveHeap(nextGC, s.StackInuse, gogc)
	return s, nil
}
