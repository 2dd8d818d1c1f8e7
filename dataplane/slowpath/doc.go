// Package slowpath gives each tunnel a kernel interface, a TUN device with
// the gateway's inside address and MTU 1399 (DESIGN §1, §3), through which
// the host's own traffic enters and leaves the tunnel: BGP to the AWS inside
// address, pings, and packets whose next hop the dataplane cannot resolve.
// Packets the kernel routes into the device are Read by the dataplane and
// encrypted; decrypted packets for the gateway itself are Written to it.
//
// The interface is batch-first, like wireguard-go's tun.Device. The file
// descriptor is non-blocking and registered with the Go runtime poller, so a
// Read that finds nothing parks the goroutine, not a thread; a Read drains
// everything already queued (until EAGAIN), up to the batch size.
//
// The device is not persistent (no IFF_PERSIST): the kernel removes it when
// its descriptor is closed, by Close or by the process ending, so a crashed
// dataplane leaves no interface behind. One queue (no IFF_MULTI_QUEUE): the
// slow path carries control traffic, a few packets per second per tunnel.
package slowpath
