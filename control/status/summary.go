package status

import "fmt"

// Summary is one line for "systemctl status" (sd_notify STATUS=):
// "2/2 tunnels up, 2/2 BGP sessions established".
func (s *Status) Summary() string {
	up := 0
	for _, t := range s.Tunnels {
		if t.State == "up" {
			up++
		}
	}
	line := fmt.Sprintf("%d/%d tunnels up", up, len(s.Tunnels))
	if len(s.Neighbors) > 0 {
		est := 0
		for _, n := range s.Neighbors {
			if n.State == "established" {
				est++
			}
		}
		line += fmt.Sprintf(", %d/%d BGP sessions established", est, len(s.Neighbors))
	}
	return line
}
