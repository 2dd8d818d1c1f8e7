package afxdp_test

import (
	"log"
	"time"

	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cilium/ebpf"
)

// One worker (one core): an inside and an outside socket share a UMEM, so a
// frame received on one device is transmitted on the other in place. The
// XDP programs on both devices redirect to XSKMAP[rx_queue_index].
func Example_worker() {
	var (
		insideIfindex, outsideIfindex, queue = 2, 3, 0
		insideXSKs, outsideXSKs              *ebpf.Map // the XDP programs' XSKMAPs
	)
	u, err := afxdp.NewUMEM(afxdp.UMEMConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer u.Close()
	in, err := afxdp.NewSocket(u, afxdp.SocketConfig{Ifindex: insideIfindex, Queue: queue})
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	out, err := afxdp.NewSocket(u, afxdp.SocketConfig{Ifindex: outsideIfindex, Queue: queue})
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	if err := in.Register(insideXSKs); err != nil {
		log.Fatal(err)
	}
	if err := out.Register(outsideXSKs); err != nil {
		log.Fatal(err)
	}
	log.Printf("inside socket in %v mode", in.Mode())

	batch := make([]afxdp.Desc, 64)
	for {
		in.Complete() // transmitted frames back to the free list
		out.Complete()
		in.Refill()
		out.Refill()
		n := in.Receive(batch)
		if n == 0 {
			in.Poll(10 * time.Millisecond)
			continue
		}
		for _, d := range batch[:n] {
			pkt := u.Data(d) // Ethernet frame; u.DataOffset() bytes of headroom before it
			_ = pkt          // encrypt in place here, adjusting d.Addr and d.Len
		}
		sent := out.Transmit(batch[:n])
		for _, d := range batch[sent:n] { // TX ring full: drop
			u.Free(d.Addr)
		}
	}
}
