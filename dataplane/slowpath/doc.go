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
// The device is persistent (IFF_PERSIST) while its Device is open, and
// Close removes it. A killed process leaves it: unregistering a device
// costs the kernel ~10 ms, which the process's exit — and so a restart —
// would wait for. Meanwhile it has no carrier and what the kernel routes
// into it is dropped (never sent anywhere in clear); the next Create of
// that name takes it over, and Manager.RemoveStale removes those no
// longer wanted. One queue (no IFF_MULTI_QUEUE): the slow path carries
// control traffic, a few packets per second per tunnel.
package slowpath
