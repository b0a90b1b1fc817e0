//go:build linux && (amd64 || arm64)

package peer

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// threadCPU returns the CPU time of the calling OS thread. Loopback delivery runs
// in the sender's context, so it counts what a send costs the kernel too.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBatchConn compares ways of sending one round of a 2.5 Mbit/s frame
// (8 packets of 1240 bytes and one of 600, as SRTP leaves them) to each of 100
// subscribers on loopback: a sendto per datagram (what pion does), sendmmsg
// batches, and sendmmsg batches whose per-subscriber trains use UDP GSO. It reports
// the sending thread's CPU per datagram (cpu-ns/datagram), kernel work included.
func BenchmarkBatchConn(b *testing.B) {
	const subs, perFrame = 100, 9
	for _, mode := range []string{"sendto", "sendmmsg", "sendmmsg+gso"} {
		b.Run(fmt.Sprintf("%s/subs=%d", mode, subs), func(b *testing.B) {
			sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			c, err := newBatchConn(sock)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.sender.SetGSO(mode == "sendmmsg+gso")
			var wg sync.WaitGroup
			var dests []*net.UDPAddr
			for range subs {
				r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				_ = r.SetReadBuffer(4 << 20)
				dests = append(dests, r.LocalAddr().(*net.UDPAddr))
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 2048)
					for {
						if _, _, err := r.ReadFrom(buf); err != nil {
							return
						}
					}
				}()
				defer r.Close()
			}
			full, last := make([]byte, 1240), make([]byte, 600)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			start := threadCPU()
			for b.Loop() {
				if mode != "sendto" {
					c.begin()
				}
				for _, d := range dests {
					for i := range perFrame {
						p := full
						if i == perFrame-1 {
							p = last
						}
						if _, err := c.WriteTo(p, d); err != nil {
							b.Fatal(err)
						}
					}
				}
				if mode != "sendto" {
					c.end()
				}
				time.Sleep(time.Millisecond) // let the receivers drain
			}
			used := threadCPU() - start
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N*subs*perFrame), "cpu-ns/datagram")
			b.StopTimer()
		})
	}
}
