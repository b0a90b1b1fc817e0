package peer

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/net/ipv4"
)

// The floor: what it costs, at the least, to send one 1200-byte media packet to one
// subscriber — SRTP-encrypt it (RFC 3711, RFC 7714 for AEAD) into a reused buffer
// and write it on a UDP socket to a loopback receiver that discards it. Lectern's
// per-packet, per-subscriber cost (BenchmarkForward) is reported as a multiple of it.
//
// Besides ns/op (wall time), the benchmarks report cpu-ns/op: the process's CPU time
// (user + system, getrusage) per operation, which includes the receiving goroutine's
// reads and, on loopback, the kernel's receive path run in the sender's system call.
// On this 2-core machine cpu-ns/op is the figure to compare with BenchmarkForward,
// whose senders run in parallel. BenchmarkFloor also reports sender-cpu-ns/op, the
// CPU time of the sending thread alone: what a server pays per packet when its
// receivers are other processes.

const floorPayload = 1200

// floorProfiles are the SRTP protection profiles a pion peer offers, in its order of
// preference: two pion peers (Lectern and a pion or browser subscriber) negotiate the
// first, AEAD_AES_256_GCM.
var floorProfiles = []struct {
	name string
	p    srtp.ProtectionProfile
}{
	{"aead_aes_256_gcm", srtp.ProtectionProfileAeadAes256Gcm},
	{"aead_aes_128_gcm", srtp.ProtectionProfileAeadAes128Gcm},
	{"aes128_cm_hmac_sha1_80", srtp.ProtectionProfileAes128CmHmacSha1_80},
}

// BenchmarkFloor is the floor per protection profile: EncryptRTP + UDPConn.Write.
func BenchmarkFloor(b *testing.B) {
	for _, pr := range floorProfiles {
		b.Run(pr.name, func(b *testing.B) {
			ctx := newFloorContext(b, pr.p)
			conn := dialDiscard(b)
			hdr, plain := floorPacket()
			out := make([]byte, 0, 1500)
			stop := startFloorTimer(b)
			for i := 0; i < b.N; i++ {
				if err := sendFloor(ctx, conn, out, plain, hdr); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
	}
}

// BenchmarkFloorParts splits the floor (AEAD_AES_256_GCM) into its two halves, adds
// the unconnected WriteTo that pion's ICE UDP mux uses (one socket for every
// subscriber, the destination given per packet), and a batched send (sendmmsg of 16
// packets), the fair way below the floor.
func BenchmarkFloorParts(b *testing.B) {
	b.Run("encrypt", func(b *testing.B) {
		ctx := newFloorContext(b, srtp.ProtectionProfileAeadAes256Gcm)
		hdr, plain := floorPacket()
		out := make([]byte, 0, 1500)
		b.ReportAllocs()
		b.SetBytes(floorPayload)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			hdr.SequenceNumber++
			if _, err := encryptInto(ctx, out, plain, hdr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		conn := dialDiscard(b)
		pkt := make([]byte, floorPayload+12+16)
		stop := startFloorTimer(b)
		for i := 0; i < b.N; i++ {
			if _, err := conn.Write(pkt); err != nil {
				b.Fatal(err)
			}
		}
		stop()
	})
	b.Run("writeto", func(b *testing.B) {
		dst := listenDiscard(b)
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
		pkt := make([]byte, floorPayload+12+16)
		stop := startFloorTimer(b)
		for i := 0; i < b.N; i++ {
			if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
				b.Fatal(err)
			}
		}
		stop()
	})
	b.Run("encrypt+sendmmsg16", func(b *testing.B) {
		const batch = 16
		ctx := newFloorContext(b, srtp.ProtectionProfileAeadAes256Gcm)
		conn := dialDiscard(b)
		pc := ipv4.NewPacketConn(conn)
		hdr, plain := floorPacket()
		msgs := make([]ipv4.Message, batch)
		bufs := make([][]byte, batch)
		for i := range msgs {
			bufs[i] = make([]byte, 0, 1500)
			msgs[i].Buffers = [][]byte{nil}
		}
		stop := startFloorTimer(b)
		for i := 0; i < b.N; i += batch {
			n := min(batch, b.N-i)
			for j := 0; j < n; j++ {
				hdr.SequenceNumber++
				enc, err := encryptInto(ctx, bufs[j], plain, hdr)
				if err != nil {
					b.Fatal(err)
				}
				msgs[j].Buffers[0] = enc
			}
			for sent := 0; sent < n; {
				k, err := pc.WriteBatch(msgs[sent:n], 0)
				if err != nil {
					b.Fatal(err)
				}
				sent += k
			}
		}
		stop()
	})
}

func newFloorContext(b *testing.B, p srtp.ProtectionProfile) *srtp.Context {
	b.Helper()
	keyLen, err := p.KeyLen()
	if err != nil {
		b.Fatal(err)
	}
	saltLen, err := p.SaltLen()
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, keyLen)
	salt := make([]byte, saltLen)
	for i := range key {
		key[i] = byte(i)
	}
	ctx, err := srtp.CreateContext(key, salt, p)
	if err != nil {
		b.Fatal(err)
	}
	return ctx
}

// floorPacket returns a video RTP header and the marshalled packet (header and a
// 1200-byte payload) that EncryptRTP takes as plaintext.
func floorPacket() (*rtp.Header, []byte) {
	hdr := &rtp.Header{Version: 2, PayloadType: 102, SSRC: 0x1234, Timestamp: 90000}
	pkt := rtp.Packet{Header: *hdr, Payload: make([]byte, floorPayload)}
	plain, err := pkt.Marshal()
	if err != nil {
		panic(err)
	}
	return hdr, plain
}

// encryptInto encrypts plain (whose header is hdr, with hdr's sequence number
// written into it first) into out's storage.
func encryptInto(ctx *srtp.Context, out, plain []byte, hdr *rtp.Header) ([]byte, error) {
	plain[2], plain[3] = byte(hdr.SequenceNumber>>8), byte(hdr.SequenceNumber)
	return ctx.EncryptRTP(out[:0], plain, hdr)
}

// sendFloor is one packet of the floor: the next sequence number, encrypted into
// out and written on conn.
func sendFloor(ctx *srtp.Context, conn *net.UDPConn, out, plain []byte, hdr *rtp.Header) error {
	hdr.SequenceNumber++
	enc, err := encryptInto(ctx, out, plain, hdr)
	if err != nil {
		return err
	}
	_, err = conn.Write(enc)
	return err
}

// startFloorTimer starts a floor measurement: the goroutine locked to its thread
// (the sender, whose CPU time sender-cpu-ns/op is), allocations and bytes
// reported, the CPU marked and the timer reset. The returned stop stops the timer,
// reports the CPU figures and unlocks the thread.
func startFloorTimer(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	b.ReportAllocs()
	b.SetBytes(floorPayload)
	cpu := startCPU()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		cpu.report(b, true)
		runtime.UnlockOSThread()
	}
}

// listenDiscard opens a loopback UDP socket whose goroutine reads and discards
// everything until the benchmark ends.
func listenDiscard(b *testing.B) *net.UDPConn {
	b.Helper()
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = rc.SetReadBuffer(4 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			if _, _, err := rc.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		_ = rc.Close()
		<-done
	})
	return rc
}

// dialDiscard returns a UDP socket connected to a discarding loopback receiver.
func dialDiscard(b *testing.B) *net.UDPConn {
	b.Helper()
	rc := listenDiscard(b)
	conn, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return conn
}

// cpuMark is the process's and the calling thread's CPU time at the start of a
// measurement.
type cpuMark struct{ at, thread time.Duration }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

func startCPU() cpuMark {
	return cpuMark{at: processCPU(), thread: rusage(syscall.RUSAGE_THREAD)}
}

// report adds cpu-ns/op and, when the benchmark locked its goroutine to its thread
// (the thread is the sender), sender-cpu-ns/op.
func (m cpuMark) report(b *testing.B, locked bool) {
	if b.N == 0 {
		return
	}
	b.ReportMetric(float64(processCPU()-m.at)/float64(b.N), "cpu-ns/op")
	if locked {
		b.ReportMetric(float64(rusage(syscall.RUSAGE_THREAD)-m.thread)/float64(b.N), "sender-cpu-ns/op")
	}
}
