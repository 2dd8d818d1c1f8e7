package ikev2_test

import (
	"context"
	"log"
	"net"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2"
)

// Example shows how cgw-control wires the engine: one Manager on the
// outside address's UDP 500/4500, one AddTunnel per configured IKEv2
// tunnel, events to the map writer / BGP / metrics, and the dataplane's
// counters fed back in.
func Example() {
	cfg, err := config.Load("/etc/cgw/cgw.yaml")
	if err != nil {
		log.Fatal(err)
	}
	c500, err := net.ListenPacket("udp4", "0.0.0.0:500")
	if err != nil {
		log.Fatal(err)
	}
	c4500, err := net.ListenPacket("udp4", "0.0.0.0:4500")
	if err != nil {
		log.Fatal(err)
	}
	events := make(chan ikev2.Event, 256)
	m, err := ikev2.New(ikev2.Options{Conn500: c500, Conn4500: c4500, Events: func(e ikev2.Event) { events <- e }})
	if err != nil {
		log.Fatal(err)
	}
	for _, conn := range cfg.Connections {
		for _, t := range conn.Tunnels {
			if t.IKEVersion == 2 {
				if err := m.AddTunnel(t, ikev2.TunnelOptions{}); err != nil {
					log.Fatal(err)
				}
			}
		}
	}
	go func() {
		for e := range events {
			switch e.Type {
			case ikev2.ChildSAInstalled:
				// write the inbound SA (e.Child.InSPI, InKeymat) and keep the
				// outbound one (OutSPI, OutKeymat, Encap ports) ready
			case ikev2.OutboundSwitch:
				// point the tunnel's outbound entry at e.Child.OutSPI
			case ikev2.ChildSARetired:
				// delete both SAs of e.Child
			case ikev2.TunnelUp, ikev2.TunnelDown:
				// tunnel state map; BGP session up/down
			case ikev2.NegotiationFailed:
				// metric: negotiation failures by e.Notify; log e.Err
			}
		}
	}()
	// From the dataplane's per-SA counters, every few seconds:
	m.LastInbound(0x12345678, time.Now()) // last ESP received on this inbound SPI
	m.ChildNeedsRekey(0x12345678)         // byte lifetime or sequence space nearly used
	_ = m.Status()                        // cgwctl status / sas
	m.Close(context.Background())         // deletes the IKE SAs, tells the peers
}
