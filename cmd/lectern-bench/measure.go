package main

import (
	"context"
	"errors"
	"time"
)

// snapshot is every counter a step compares at the start and end of its window.
type snapshot struct {
	at         time.Time
	serverCPU  time.Duration
	toolCPU    time.Duration
	sys        systemCPU
	udpErrs    uint64
	counters   serverCounters
	pubPackets uint64
	pubBytes   uint64
	recv       []uint64 // per subscriber, video + audio
	lost       []int64
	nodes      []nodeSnapshot // per node (bench.nodes)
}

// nodeSnapshot is one node's part of a snapshot.
type nodeSnapshot struct {
	counters serverCounters
	cpu      time.Duration
}

// counters reads every node's /metrics and sums them (one server: its own).
func (b *bench) counters(ctx context.Context) (serverCounters, error) {
	var sum serverCounters
	var errs []error
	for _, n := range b.nodes {
		c, err := n.api.counters(ctx)
		errs = append(errs, err)
		sum = sum.add(c)
	}
	return sum, errors.Join(errs...)
}

func (b *bench) snapshot(ctx context.Context) (snapshot, error) {
	var s snapshot
	var errs [4]error
	var nodeErrs []error
	for _, n := range b.nodes {
		var ns nodeSnapshot
		var err error
		ns.counters, err = n.api.counters(ctx)
		nodeErrs = append(nodeErrs, err)
		s.counters = s.counters.add(ns.counters)
		s.nodes = append(s.nodes, ns)
	}
	s.at = time.Now()
	for i, n := range b.nodes {
		var err error
		s.nodes[i].cpu, err = procCPU(n.pid)
		nodeErrs = append(nodeErrs, err)
	}
	for _, pid := range b.pids() { // a process serving two URLs counts once
		for i, n := range b.nodes {
			if n.pid == pid {
				s.serverCPU += s.nodes[i].cpu
				break
			}
		}
	}
	errs[0] = errors.Join(nodeErrs...)
	s.toolCPU, errs[1] = procCPU("self")
	s.sys, errs[2] = readSystemCPU()
	s.udpErrs, errs[3] = udpRcvbufErrors()
	s.pubPackets, s.pubBytes = b.pub.sentCounts()
	for _, sub := range b.subs {
		s.recv = append(s.recv, sub.video.packets.Load()+sub.audio.packets.Load())
		s.lost = append(s.lost, sub.video.lost.Load()+sub.audio.lost.Load())
	}
	return s, errors.Join(errs[:]...)
}

// measure holds for d and returns the step's figures; base is the publisher-only
// baseline (nil when measuring it).
func (b *bench) measure(ctx context.Context, d time.Duration, base *step) (step, error) {
	for _, h := range []*histogram{&b.sh.latency, &b.sh.keyLatency, &b.sh.netLatency, &b.sh.netKeyLatency} {
		h.reset()
	}
	for _, n := range b.nodes {
		n.latency.reset()
	}
	b.sh.unmatched.Store(0)
	start, err := b.snapshot(ctx)
	if err != nil {
		return step{}, err
	}
	b.sh.measuring.Store(true)
	var rss []int64
	nodeRSS := make([][]int64, len(b.nodes))
	deadline := time.Now().Add(d)
	for {
		byPID := map[string]int64{}
		var r int64
		for _, pid := range b.pids() {
			v, err := procRSS(pid)
			if err != nil {
				return step{}, err
			}
			byPID[pid] = v
			r += v
		}
		for i, n := range b.nodes {
			nodeRSS[i] = append(nodeRSS[i], byPID[n.pid])
		}
		rss = append(rss, r)
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if err := sleep(ctx, min(time.Second, left)); err != nil {
			return step{}, err
		}
	}
	b.sh.measuring.Store(false)
	end, err := b.snapshot(ctx)
	if err != nil {
		return step{}, err
	}
	st := b.compute(start, end, rss, base)
	if len(b.nodes) > 1 {
		st.Nodes = b.computeNodes(start, end, nodeRSS, base)
	}
	return st, nil
}

// computeNodes is compute for each node: its subscribers, CPU and RSS (per
// subscriber over its own baseline), loss and drops, forwarding latency.
func (b *bench) computeNodes(start, end snapshot, rss [][]int64, base *step) []nodeStep {
	wall := end.at.Sub(start.at)
	out := make([]nodeStep, len(b.nodes))
	for i, n := range b.nodes {
		ns := nodeStep{URL: n.url, PID: n.pid, Subscribes: n.subscribe,
			ServerCPU: pct(end.nodes[i].cpu-start.nodes[i].cpu, wall), RSSMB: meanMB(rss[i]),
			Server:       end.nodes[i].counters.sub(start.nodes[i].counters),
			LatencyP50ms: ms(n.latency.percentile(50)), LatencyP99ms: ms(n.latency.percentile(99)), LatencyN: n.latency.samples()}
		var recv uint64
		var gaps int64
		for j, s := range b.subs {
			if s.node != i || j >= len(start.recv) || j >= len(end.recv) {
				continue
			}
			ns.Subscribers++
			recv += end.recv[j] - start.recv[j]
			gaps += end.lost[j] - start.lost[j]
		}
		ns.SeqGaps = gaps
		if missing := float64(gaps) + ns.Server.QueueDrops; recv > 0 {
			ns.LossPct = 100 * missing / (float64(recv) + max(missing, 0))
		}
		if base != nil && i < len(base.Nodes) && ns.Subscribers > 0 {
			ns.CPUPerSubPct = (ns.ServerCPU - base.Nodes[i].ServerCPU) / float64(ns.Subscribers)
			ns.RSSPerSubKB = (ns.RSSMB - base.Nodes[i].RSSMB) * 1024 / float64(ns.Subscribers)
		}
		out[i] = ns
	}
	return out
}

// meanMB is the mean of byte counts, in MiB.
func meanMB(v []int64) float64 {
	if len(v) == 0 {
		return 0
	}
	var sum int64
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v)) / (1 << 20)
}

// compute turns two snapshots into a step.
func (b *bench) compute(start, end snapshot, rss []int64, base *step) step {
	wall := end.at.Sub(start.at)
	n := len(start.recv)
	st := step{
		Subscribers:   n,
		Seconds:       wall.Seconds(),
		ServerCPU:     pct(end.serverCPU-start.serverCPU, wall),
		ToolCPU:       pct(end.toolCPU-start.toolCPU, wall),
		MachineBusy:   busyPercent(start.sys, end.sys),
		LoadAvg:       loadAverage(),
		UDPBufDrops:   end.udpErrs - start.udpErrs,
		Server:        end.counters.sub(start.counters),
		PublisherKbps: float64(end.pubBytes-start.pubBytes) * 8 / 1000 / wall.Seconds(),
		LatencyP50ms:  ms(b.sh.netLatency.percentile(50)),
		LatencyP99ms:  ms(b.sh.netLatency.percentile(99)),
		LatencyN:      b.sh.netLatency.samples(),
		KeyLatencyP50: ms(b.sh.netKeyLatency.percentile(50)),
		KeyLatencyP99: ms(b.sh.netKeyLatency.percentile(99)),
		AppLatencyP50: ms(b.sh.latency.percentile(50)),
		AppLatencyP99: ms(b.sh.latency.percentile(99)),
		AppKeyP99:     ms(b.sh.keyLatency.percentile(99)),
		Unmatched:     b.sh.unmatched.Load(),
	}
	var sum int64
	for _, r := range rss {
		sum += r
	}
	st.RSSMB = float64(sum) / float64(len(rss)) / (1 << 20)
	if out := st.Server.PacketsOut; out > 0 {
		st.ServerUsPerPacket = float64(end.serverCPU-start.serverCPU) / float64(time.Microsecond) / out
	}
	sent := end.pubPackets - start.pubPackets
	// Loss is what never reached a subscriber: gaps in its sequence numbers (lost in
	// transit) plus what the server's queues dropped, which the server hides from
	// the receiver by renumbering (so it never NACKs what will not come).
	var recv uint64
	var gaps int64
	for i := 0; i < n && i < len(end.recv); i++ {
		r, l := end.recv[i]-start.recv[i], end.lost[i]-start.lost[i]
		recv += r
		gaps += l
		if exp := r + uint64(max(l, 0)); exp > 0 {
			st.WorstGapPct = max(st.WorstGapPct, 100*float64(l)/float64(exp))
		}
	}
	st.SeqGaps = gaps
	if missing := float64(gaps) + st.Server.QueueDrops; recv > 0 {
		st.LossPct = 100 * missing / (float64(recv) + max(missing, 0))
	}
	if sent > 0 && n > 0 {
		st.RecvPerSent = float64(recv) / float64(sent*uint64(n))
	}
	if base != nil && n > 0 {
		st.CPUPerSubPct = (st.ServerCPU - base.ServerCPU) / float64(n)
		st.RSSPerSubKB = (st.RSSMB - base.RSSMB) * 1024 / float64(n)
		st.HeapPerSubKB = (st.Server.HeapInuse + st.Server.StackInuse - base.Server.HeapInuse - base.Server.StackInuse) / 1024 / float64(n)
		if st.Server.LiveHeap > 0 && base.Server.LiveHeap > 0 {
			st.LivePerSubKB = (st.Server.LiveHeap + st.Server.StackInuse - base.Server.LiveHeap - base.Server.StackInuse) / 1024 / float64(n)
		}
		st.GoroutinesPerSub = (st.Server.Goroutines - base.Server.Goroutines) / float64(n)
		if out := st.Server.PacketsOut; out > 0 { // the baseline sends none
			extra := (st.ServerCPU - base.ServerCPU) / 100 * wall.Seconds()
			st.MarginalUsPerPacket = extra * 1e6 / out
		}
	}
	return st
}
