// Package e2e holds tests that cross the edges of Lectern's packages: real
// clients (ffmpeg, pion peers) talk to an in-process stack (registry, WebRTC edge,
// RTSP server, recorder on a local store) on loopback, wired as cmd/lectern wires
// them, and what comes out is checked with ffprobe. It has no code of its own.
package e2e
