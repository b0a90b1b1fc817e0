// Package udpgso sends UDP datagrams in batches with sendmmsg(2), a run of
// equal-sized datagrams to one address going as one message with Linux's UDP
// segmentation offload (a "train": the kernel walks routing, netfilter and the
// device once for it and splits it at the end, or the NIC does). The WebRTC edge's
// batched socket (sfu/peer) and the RTSP server's UDP readers (sfu/rtsp) share it.
//
// It exists on Linux amd64 and arm64 only (the layouts of struct msghdr and
// mmsghdr are those of 64-bit Linux); its users keep a plain path elsewhere.
package udpgso
