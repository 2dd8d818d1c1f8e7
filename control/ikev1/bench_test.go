package ikev1

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// BenchmarkHandshake times Main Mode + Quick Mode (PFS with the same
// group) between two loopback Managers, until both report the SA pair.
func BenchmarkHandshake(b *testing.B) {
	for _, g := range []int{14, 19, 20} {
		b.Run(fmt.Sprintf("dh%d", g), func(b *testing.B) {
			c := testTunnel("t1")
			c.Phase1.Encryption, c.Phase1.Integrity, c.Phase1.DHGroups = []string{"AES256"}, []string{"SHA2-256"}, []int{g}
			c.Phase2.Encryption, c.Phase2.Integrity, c.Phase2.DHGroups = []string{"AES256"}, []string{"SHA2-256"}, []int{g}
			for i := 0; i < b.N; i++ {
				done := make(chan struct{}, 2)
				mk := func() (*Manager, uint16, uint16) {
					c500, _ := net.ListenPacket("udp4", "127.0.0.1:0")
					c4500, _ := net.ListenPacket("udp4", "127.0.0.1:0")
					m, err := New(Options{Conn500: c500, Conn4500: c4500, Tick: 10 * time.Millisecond, Events: func(e Event) {
						if e.Type == ChildSAInstalled {
							done <- struct{}{}
						}
					}})
					if err != nil {
						b.Fatal(err)
					}
					return m, port(c500), port(c4500)
				}
				ma, a5, a4 := mk()
				mb, b5, b4 := mk()
				cb := c
				cb.StartupAction = "add"
				if err := mb.AddTunnel(cb, TunnelOptions{PeerPort: a5, PeerNATPort: a4}); err != nil {
					b.Fatal(err)
				}
				if err := ma.AddTunnel(c, TunnelOptions{PeerPort: b5, PeerNATPort: b4}); err != nil {
					b.Fatal(err)
				}
				<-done
				<-done
				b.StopTimer()
				ma.Close(context.Background())
				mb.Close(context.Background())
				b.StartTimer()
			}
		})
	}
}
