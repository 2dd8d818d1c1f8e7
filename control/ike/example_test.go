package ike_test

import (
	"context"
	"log"
	"net"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1"
	"github.com/cgw-project/cgw/control/ikev2"
)

// Example shows how cgw-control can run IKEv1 tunnels next to IKEv2 ones:
// both engines share UDP 500/4500 through SplitVersions, each tunnel goes
// to the engine its ike_version names, and both engines' events (the same
// ike.Event type) go to one handler.
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
	v1c500, v2c500 := ike.SplitVersions(c500, false)
	v1c4500, v2c4500 := ike.SplitVersions(c4500, true)
	events := make(chan ike.Event, 256)
	emit := func(e ike.Event) { events <- e }
	m2, err := ikev2.New(ikev2.Options{Conn500: v2c500, Conn4500: v2c4500, Events: emit})
	if err != nil {
		log.Fatal(err)
	}
	m1, err := ikev1.New(ikev1.Options{Conn500: v1c500, Conn4500: v1c4500, Events: emit})
	if err != nil {
		log.Fatal(err)
	}
	for _, conn := range cfg.Connections {
		for _, t := range conn.Tunnels {
			if t.IKEVersion == 1 {
				err = m1.AddTunnel(t, ike.TunnelOptions{})
			} else {
				err = m2.AddTunnel(t, ike.TunnelOptions{})
			}
			if err != nil {
				log.Fatal(err)
			}
		}
	}
	go func() {
		for e := range events {
			_ = e // as for ikev2: install, switch, retire, tunnel state, metrics
		}
	}()
	m1.Close(context.Background()) // sends Deletes for the SA pairs and ISAKMP SAs
	m2.Close(context.Background())
}
