package status

import "testing"

func TestSummary(t *testing.T) {
	s := &Status{Tunnels: []Tunnel{{State: "up"}, {State: "connecting"}}}
	if got := s.Summary(); got != "1/2 tunnels up" {
		t.Errorf("static: %q", got)
	}
	s.Tunnels[1].State = "up"
	s.Neighbors = []Neighbor{{State: "established"}, {State: "active"}}
	if got := s.Summary(); got != "2/2 tunnels up, 1/2 BGP sessions established" {
		t.Errorf("BGP: %q", got)
	}
}
