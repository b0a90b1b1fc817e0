package rtsp

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"lectern/sfu"
)

// benchReadersEnv makes the test binary a reader process for BenchmarkRTSPReaders:
// "URL|N|tcp" (or "|udp") connects N RTSP clients to URL over that transport.
const benchReadersEnv = "LECTERN_RTSP_BENCH_READERS"

const (
	benchPayload   = 1200 // bytes of RTP payload per packet
	benchAUPackets = 8    // packets per access unit (2.5 Mbit/s at 30 fps averages ~9)
	benchGOPAUs    = 60   // access units per keyframe interval (2 s)
	benchRate      = 2_500_000 / 8 / benchPayload
)

// BenchmarkRTSPReaders measures the server's per-reader cost: one H.264 track
// written through a lease (as a publisher's read goroutine does) is fanned out to N
// RTSP readers that play it on loopback, over TCP (interleaved) or UDP: one feed
// (queue, goroutine, header rewrite) marshals each packet once; for TCP it appends
// it to each reader's connection, whose gathered packets the shared writers
// (connWriters) send; for UDP one sendmmsg per batch carries it to every reader,
// a reader's packets of the batch as one UDP GSO train.
//
// The readers are gortsplib clients in a separate process, the test binary run
// again, so the process CPU measured here is the server's alone, except that over
// loopback the kernel does the readers' receive (TCP or UDP, up to the wake-up of
// their goroutines) within the server's send calls: most of what is left, since a
// profile of the paced phase shows the send system calls at 65-80 % of the
// server's CPU.
//
// One op is one 1200-byte packet written to the track, sent N times. Packets are
// written in access-unit bursts (8 packets) and each burst waits until every
// reader's copy was sent (or queued), so no queue drops. Reported:
// ns/packet/reader (wall ÷ N), cpu-ns/packet/reader (server process CPU ÷ packets
// sent). Then, untimed, the stream is paced at 2.5 Mbit/s for 3 s: cpu-%/reader is
// the server's CPU per reader at that rate (% of one core: the process's CPU
// divided by N), cpu-%/added-reader what each reader added to that of the stream
// with one reader (N > 1: the paced phase runs first with one reader; the
// stream's own cost, its packets arriving and the feed's wake-ups, is then left
// out: 2-4 % of a core here), writes/packet/reader the
// server's write system calls per packet sent (the pacing writes about 2.6 packets
// every 10 ms, so about 0.38 is one call per reader and tick), allocs/packet/reader
// the server process's heap allocations per packet sent (gortsplib's RTCP and the
// track's buffer pool count too: the packet path itself allocates nothing), and
// p50-us / p99-us the latency from Track.WriteRTP to the reader process reading
// the packet.
func BenchmarkRTSPReaders(b *testing.B) {
	for _, transport := range []string{"tcp", "udp"} {
		for _, n := range []int{1, 50} {
			b.Run(fmt.Sprintf("%s/readers=%d", transport, n), func(b *testing.B) { benchReaders(b, transport, n) })
		}
	}
}

type readersBench struct {
	b     *testing.B
	f     *fixture
	track *sfu.Track
	stats *sfu.Stats
	src   rtp.Packet
	n     uint64 // packets written
}

func benchReaders(b *testing.B, transport string, n int) {
	f := newFixture(b, func(c *Config) {
		if transport == "tcp" {
			c.UDPRTPAddress, c.UDPRTCPAddress = "", ""
		}
	})
	lease, err := f.sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		b.Fatal(err)
	}
	track, err := lease.Track("video", sfu.KindVideo, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	rb := &readersBench{b: b, f: f, track: track, stats: f.reg.Stats(),
		src: rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 0xbeef}, Payload: make([]byte, benchPayload)}}
	rb.write(false) // a keyframe in the cache, so DESCRIBE has one to look at

	// With more than one reader, the paced phase runs first with one: what the
	// stream costs whoever reads it (the packets' arrival, the feed's wake-ups), so
	// that the cost of each reader added to it can be told apart.
	child := startReaders(b, f.url(testSession, testAdmin), transport, min(n, 1))
	waitFor(f.ctx, b, "the first reader to play", func() bool { return f.sess.Subscribers() == 1 })
	var one pacedResult
	if n > 1 {
		for range 2 * benchGOPAUs {
			rb.burst(false)
		}
		rb.quiesce()
		one = rb.paced()
		child.add(n - 1)
		waitFor(f.ctx, b, "every reader to play", func() bool { return f.sess.Subscribers() == n })
	}

	// Warm up, then measure bursts that each wait until every copy was sent.
	for range 2 * benchGOPAUs {
		rb.burst(false)
	}
	base := rb.quiesce()
	start := rb.n
	cpu := processCPU()
	for b.Loop() {
		rb.write(false)
		if rb.n%benchAUPackets == 0 {
			rb.waitSent(base + (rb.n-start)*uint64(n))
		}
	}
	b.StartTimer()
	rb.waitSent(base + (rb.n-start)*uint64(n))
	b.StopTimer()
	ops := rb.n - start
	sent := float64(ops * uint64(n))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/sent, "ns/packet/reader")
	b.ReportMetric(float64(processCPU()-cpu)/sent, "cpu-ns/packet/reader")

	// Paced at 2.5 Mbit/s: CPU share, system calls and latency.
	child.reset() // the latencies of this phase only
	all := rb.paced()
	b.ReportMetric(all.cpuShare/float64(n)*100, "cpu-%/reader")
	if n > 1 {
		b.ReportMetric((all.cpuShare-one.cpuShare)/float64(n-1)*100, "cpu-%/added-reader")
	}
	b.ReportMetric(all.allocsPerPacket, "allocs/packet/reader")
	if transport == "tcp" && all.writesPerPacket >= 0 {
		b.ReportMetric(all.writesPerPacket, "writes/packet/reader")
	}
	p50, p99, sock50, sock99 := child.finish()
	b.ReportMetric(p50, "p50-us")
	b.ReportMetric(p99, "p99-us")
	b.ReportMetric(sock50, "sock-p50-us")
	b.ReportMetric(sock99, "sock-p99-us")
	if d := rb.stats.QueueDrops.Load(); d != 0 {
		b.Fatalf("%d packets dropped by reader queues", d)
	}
}

// pacedResult is what the server spent in a paced phase.
type pacedResult struct {
	cpuShare        float64 // server process CPU ÷ wall time (1 = one core)
	allocsPerPacket float64 // heap allocations per packet sent
	writesPerPacket float64 // write(2) calls per packet sent; -1: not known
}

// paced writes the stream at 2.5 Mbit/s for 3 s, in 10 ms ticks, and measures
// the server's CPU, allocations and write calls meanwhile.
func (rb *readersBench) paced() pacedResult {
	sent0, writes0 := rb.stats.PacketsOut.Load(), processWrites()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs0 := ms.Mallocs
	cpu := processCPU()
	began := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	for paced := 0; time.Since(began) < 3*time.Second; {
		<-tick.C
		for want := int(time.Since(began) * benchRate / time.Second); paced < want; paced++ {
			rb.write(true)
		}
	}
	tick.Stop()
	rb.quiesce()
	elapsed := time.Since(began)
	r := pacedResult{cpuShare: float64(processCPU()-cpu) / float64(elapsed), writesPerPacket: -1}
	runtime.ReadMemStats(&ms)
	sent := float64(rb.stats.PacketsOut.Load() - sent0)
	r.allocsPerPacket = float64(ms.Mallocs-mallocs0) / sent
	// Only write(2) counts in syscw, not sendto/sendmmsg: TCP only.
	if w := processWrites(); w >= 0 && writes0 >= 0 {
		r.writesPerPacket = float64(w-writes0) / sent
	}
	return r
}

// write writes one packet of the synthetic stream. Paced packets carry their send
// time for the readers' latency figures.
func (rb *readersBench) write(paced bool) {
	i := rb.n
	rb.n++
	au := i / benchAUPackets
	p := &rb.src
	p.SequenceNumber++
	p.Timestamp = uint32(au * 3000)
	p.Marker = i%benchAUPackets == benchAUPackets-1
	p.Payload[0], p.Payload[1] = 0x7c, 0x01 // FU-A, non-IDR slice
	if au%benchGOPAUs == 0 {
		p.Payload[1] = 0x05
	}
	if i%benchAUPackets == 0 {
		p.Payload[1] |= 0x80
	}
	p.Payload[10] = 0
	if paced {
		binary.BigEndian.PutUint64(p.Payload[2:10], uint64(time.Now().UnixNano()))
		p.Payload[10] = 1
	}
	if err := rb.track.WriteRTP(p); err != nil {
		rb.b.Fatal(err)
	}
}

func (rb *readersBench) burst(paced bool) {
	for range benchAUPackets {
		rb.write(paced)
	}
	time.Sleep(time.Millisecond)
}

// waitSent waits until the readers' streams have written want packets in all.
func (rb *readersBench) waitSent(want uint64) {
	deadline := time.Now().Add(10 * time.Second)
	for rb.stats.PacketsOut.Load() < want {
		if time.Now().After(deadline) {
			rb.b.Fatalf("sent %d of %d packets (drops %d)", rb.stats.PacketsOut.Load(), want, rb.stats.QueueDrops.Load())
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// quiesce waits until the sent count stops moving and returns it.
func (rb *readersBench) quiesce() uint64 {
	last := rb.stats.PacketsOut.Load()
	for {
		time.Sleep(50 * time.Millisecond)
		now := rb.stats.PacketsOut.Load()
		if now == last {
			return now
		}
		last = now
	}
}

// processCPU returns the process's user + system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// processWrites returns the process's count of write system calls (syscw in
// /proc/self/io), or -1 where there is none: how well a reader's packets are
// batched, the main cost per reader.
func processWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// readersProcess is the child process running the readers.
type readersProcess struct {
	b     *testing.B
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startReaders(b *testing.B, url, transport string, n int) *readersProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchReadersEnv+"="+url+"|"+strconv.Itoa(n)+"|"+transport)
	// The reader process stands in for N readers on machines of their own: its
	// collector stopping all of them at once (its heap grows with 50 clients'
	// packets) would add a pause no reader sees from the server, about a
	// millisecond to the p99. It runs for seconds: no collection below 1 GiB.
	cmd.Env = append(cmd.Env, "GOGC=off", "GOMEMLIMIT=1GiB")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	rp := &readersProcess{b: b, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := rp.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("reader process: %q %v", line, err)
	}
	return rp
}

// add connects k more readers and waits until they play.
func (rp *readersProcess) add(k int) {
	rp.command(fmt.Sprintf("add %d", k))
}

// reset forgets the latencies measured so far.
func (rp *readersProcess) reset() {
	rp.command("reset")
}

func (rp *readersProcess) command(cmd string) {
	rp.b.Helper()
	if _, err := fmt.Fprintln(rp.stdin, cmd); err != nil {
		rp.b.Fatalf("reader process: %s: %v", cmd, err)
	}
	if line, err := rp.out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		rp.b.Fatalf("reader process: %s: %q %v", cmd, line, err)
	}
}

// finish stops the readers and returns their latency percentiles in µs: to the
// packet callback, and to the kernel's receive stamp.
func (rp *readersProcess) finish() (p50, p99, sock50, sock99 float64) {
	_ = rp.stdin.Close()
	line, err := rp.out.ReadString('\n')
	if _, scanErr := fmt.Sscanf(line, "latency %f %f %f %f", &p50, &p99, &sock50, &sock99); err != nil || scanErr != nil {
		rp.b.Fatalf("reader process result %q: %v %v", line, err, scanErr)
	}
	_ = rp.cmd.Wait()
	return p50, p99, sock50, sock99
}

// benchReader is one client of the reader process and the latencies of the
// paced packets it read, kept by its own packet callback (a lock shared by the
// readers would make them wait for each other, which is no part of the server's
// latency).
type benchReader struct {
	c       *gortsplib.Client
	stamps  *readerStamps
	reset   atomic.Bool // forget the latencies at the next packet
	lat     []float64
	sockLat []float64
}

func (r *benchReader) onPacket(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
	now := time.Now().UnixNano()
	if r.reset.Swap(false) {
		r.lat, r.sockLat = r.lat[:0], r.sockLat[:0]
	}
	p := pkt.Payload
	if len(p) < 11 || p[10] != 1 {
		return
	}
	sent := int64(binary.BigEndian.Uint64(p[2:10]))
	r.lat = append(r.lat, float64(now-sent)/1e3)
	if st := r.stamps.last(); st > 0 {
		r.sockLat = append(r.sockLat, float64(st-sent)/1e3)
	}
}

// runBenchReaders is the reader process: it plays the stream with N clients and
// says "ready"; then, line by line on its stdin, "add K" plays K more (then
// "ready"), "reset" forgets the latencies so far (then "ready"); at the end of
// its stdin it prints the latency percentiles (µs) of the paced packets: to the
// packet callback (the reader process's own scheduling included: 50 readers on a
// busy 2-core machine wait for each other), and to the kernel's receive stamp of
// the socket read that brought the packet (TCP: SO_TIMESTAMPNS; UDP: SIOCGSTAMPNS
// after the read; on loopback the kernel stamps a packet within the server's send
// call, so this is the track-to-socket-write latency, the server's part).
func runBenchReaders(spec string) int {
	target, rest, _ := strings.Cut(spec, "|")
	nStr, transport, _ := strings.Cut(rest, "|")
	n, _ := strconv.Atoi(nStr)
	u, err := url.Parse(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench readers:", err)
		return 1
	}
	var (
		readers []*benchReader
		wg      sync.WaitGroup
	)
	defer func() {
		for _, r := range readers {
			r.c.Close()
		}
		wg.Wait()
	}()
	play := func(k int) error {
		for range k {
			c, sc, err := playClient(u, transport == "udp")
			if err != nil {
				return err
			}
			r := &benchReader{c: c, stamps: sc}
			readers = append(readers, r)
			c.OnPacketRTPAny(r.onPacket)
			if _, err := c.Play(nil); err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.Wait()
			}()
		}
		fmt.Println("ready")
		return nil
	}
	if err := play(n); err != nil {
		fmt.Fprintln(os.Stderr, "bench readers:", err)
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "add":
			k, _ := strconv.Atoi(arg)
			if err := play(k); err != nil {
				fmt.Fprintln(os.Stderr, "bench readers:", err)
				return 1
			}
		case "reset":
			for _, r := range readers {
				r.reset.Store(true)
			}
			fmt.Println("ready")
		}
	}
	for _, r := range readers {
		r.c.Close()
	}
	wg.Wait()
	var latencies, sockLat []float64
	for _, r := range readers {
		latencies = append(latencies, r.lat...)
		sockLat = append(sockLat, r.sockLat...)
	}
	readers = nil
	slices.Sort(latencies)
	slices.Sort(sockLat)
	pct := func(l []float64, p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(p*float64(len(l))))]
	}
	fmt.Printf("latency %.1f %.1f %.1f %.1f\n", pct(latencies, 0.5), pct(latencies, 0.99), pct(sockLat, 0.5), pct(sockLat, 0.99))
	return 0
}

// readerStamps gives the kernel's receive stamp of the last packet a reader read:
// from its TCP connection, or from its UDP sockets.
type readerStamps struct {
	tcp *stampedConn
	udp syscall.RawConn // the reader's RTP socket (set up before it plays)
}

// siocgstampns is SIOCGSTAMPNS (linux/sockios.h): the receive time of the last
// packet read from a socket. The first call turns the stamping on.
const siocgstampns = 0x8907

func udpStamp(rc syscall.RawConn) int64 {
	var ts syscall.Timespec
	var errno syscall.Errno
	_ = rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocgstampns, uintptr(unsafe.Pointer(&ts)))
	})
	if errno != 0 {
		return 0
	}
	return ts.Nano()
}

func (r *readerStamps) last() int64 {
	if r.tcp != nil {
		return r.tcp.stamp.Load()
	}
	if r.udp != nil {
		return udpStamp(r.udp)
	}
	return 0
}

// stampedConn is a reader's TCP connection that keeps the kernel's receive stamp
// (SO_TIMESTAMPNS) of its last read. gortsplib's client calls the packet callback
// from the goroutine that reads, after the read that completed the packet.
type stampedConn struct {
	*net.TCPConn
	raw   syscall.RawConn
	stamp atomic.Int64 // Unix ns of the last read's data
	oob   []byte
}

func newStampedConn(nc net.Conn) (net.Conn, *stampedConn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc, nil, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil, nil, fmt.Errorf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	sc := &stampedConn{TCPConn: tc, raw: raw, oob: make([]byte, 128)}
	return sc, sc, nil
}

func (c *stampedConn) Read(b []byte) (int, error) {
	var n, oobn int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), b, c.oob, 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	if msgs, perr := syscall.ParseSocketControlMessage(c.oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				c.stamp.Store(sec*1e9 + nsec)
			}
		}
	}
	return n, nil
}

// playClient connects one reader (gortsplib's client, over TCP or UDP) and sets
// up the first track; the caller sets the packet callback and plays. Over TCP the
// connection keeps its receive stamps.
func playClient(u *url.URL, udp bool) (*gortsplib.Client, *readerStamps, error) {
	u2, err := base.ParseURL(u.String())
	if err != nil {
		return nil, nil, err
	}
	transport := gortsplib.TransportTCP
	if udp {
		transport = gortsplib.TransportUDP
	}
	sc := &readerStamps{}
	c := &gortsplib.Client{Transport: &transport, ReadTimeout: 30 * time.Second,
		ListenPacket: func(network, addr string) (net.PacketConn, error) {
			pc, err := net.ListenPacket(network, addr)
			if err != nil {
				return nil, err
			}
			// gortsplib's RTP port is the even one of its pair.
			if uc, ok := pc.(*net.UDPConn); ok && uc.LocalAddr().(*net.UDPAddr).Port%2 == 0 {
				if rc, err := uc.SyscallConn(); err == nil {
					udpStamp(rc) // turns stamping on
					sc.udp = rc
				}
			}
			return pc, nil
		},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil || udp {
				return nc, err
			}
			wrapped, s, err := newStampedConn(nc)
			if err != nil {
				_ = nc.Close()
				return nil, err
			}
			sc.tcp = s
			return wrapped, nil
		}}
	if err := c.Start(u2.Scheme, u2.Host); err != nil {
		return nil, nil, err
	}
	desc, _, err := c.Describe(u2)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if _, err := c.Setup(desc.BaseURL, desc.Medias[0], 0, 0); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, sc, nil
}
