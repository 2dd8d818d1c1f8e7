package lab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// IKESA is one IKE_SA as `swanctl --list-sas --raw` reports it.
type IKESA struct {
	Name       string
	State      string // ESTABLISHED, CONNECTING, ...
	Version    int
	LocalHost  string
	LocalPort  int
	RemoteHost string
	RemotePort int
	NATAny     bool // strongSwan saw (or, with libipsec, faked) NAT
	Children   []ChildSA
	Fields     map[string]string // every scalar field, by vici name
}

// ChildSA is one CHILD_SA (an ESP SA pair) of an IKE_SA.
type ChildSA struct {
	Name       string
	State      string // INSTALLED, REKEYING, ...
	SPIIn      string
	SPIOut     string
	Encap      bool // ESP in UDP (RFC 3948)
	EncrAlg    string
	BytesIn    uint64
	BytesOut   uint64
	PacketsIn  uint64
	PacketsOut uint64
	Fields     map[string]string
}

// Up reports whether the IKE_SA is established with an installed child.
func (s IKESA) Up() bool {
	if s.State != "ESTABLISHED" {
		return false
	}
	for _, c := range s.Children {
		if c.State == "INSTALLED" {
			return true
		}
	}
	return false
}

// InstalledChild returns the first installed CHILD_SA.
func (s IKESA) InstalledChild() (ChildSA, bool) {
	for _, c := range s.Children {
		if c.State == "INSTALLED" {
			return c, true
		}
	}
	return ChildSA{}, false
}

// SwanctlListSAs lists the SAs of an endpoint's charon ("aws-t1",
// "aws-t2"; the stand-in's are "gw-t1", "gw-t2").
func (l *Lab) SwanctlListSAs(ctx context.Context, endpoint string) ([]IKESA, error) {
	out, err := l.Swanctl(ctx, endpoint, "--list-sas", "--raw")
	if err != nil {
		return nil, err
	}
	return ParseListSAs(out)
}

// viciNode is a section of a vici message in swanctl's --raw rendering.
type viciNode struct {
	kv    map[string]string
	lists map[string][]string
	subs  []viciSub
}

type viciSub struct {
	name string
	node *viciNode
}

func (n *viciNode) sub(name string) *viciNode {
	for _, s := range n.subs {
		if s.name == name {
			return s.node
		}
	}
	return nil
}

func viciTokens(s string) []string {
	var toks []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '{' || r == '}' || r == '[' || r == ']' || r == '=':
			flush()
			toks = append(toks, string(r))
		case unicode.IsSpace(r):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks
}

// parseSection parses from just after '{' up to and including its '}'.
func parseSection(toks []string, i int) (*viciNode, int, error) {
	n := &viciNode{kv: map[string]string{}, lists: map[string][]string{}}
	for i < len(toks) {
		t := toks[i]
		if t == "}" {
			return n, i + 1, nil
		}
		if i+1 >= len(toks) {
			break
		}
		switch toks[i+1] {
		case "{":
			c, j, err := parseSection(toks, i+2)
			if err != nil {
				return nil, 0, err
			}
			n.subs = append(n.subs, viciSub{t, c})
			i = j
		case "=":
			if i+2 >= len(toks) {
				return nil, 0, fmt.Errorf("vici: %s= without a value", t)
			}
			if toks[i+2] == "[" {
				j := i + 3
				var vals []string
				for j < len(toks) && toks[j] != "]" {
					vals = append(vals, toks[j])
					j++
				}
				n.lists[t] = vals
				i = j + 1
			} else if toks[i+2] == "}" { // empty value: key=
				n.kv[t] = ""
				i += 2
			} else {
				n.kv[t] = toks[i+2]
				i += 3
			}
		default:
			return nil, 0, fmt.Errorf("vici: unexpected %q after %q", toks[i+1], t)
		}
	}
	return nil, 0, fmt.Errorf("vici: section not closed")
}

// ParseListSAs parses `swanctl --list-sas --raw` output: one
// "list-sa event {<ike-name> {...}}" line per IKE_SA.
func ParseListSAs(out string) ([]IKESA, error) {
	var sas []IKESA
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "list-sa event") {
			continue
		}
		toks := viciTokens(line[strings.Index(line, "{"):])
		if len(toks) == 0 || toks[0] != "{" {
			continue
		}
		root, _, err := parseSection(toks, 1)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, line)
		}
		for _, s := range root.subs {
			sas = append(sas, ikeFromNode(s.name, s.node))
		}
	}
	return sas, nil
}

func atoi(s string) int    { v, _ := strconv.Atoi(s); return v }
func atou(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
func yes(s string) bool    { return s == "yes" }

func ikeFromNode(name string, n *viciNode) IKESA {
	s := IKESA{
		Name: name, State: n.kv["state"], Version: atoi(n.kv["version"]),
		LocalHost: n.kv["local-host"], LocalPort: atoi(n.kv["local-port"]),
		RemoteHost: n.kv["remote-host"], RemotePort: atoi(n.kv["remote-port"]),
		NATAny: yes(n.kv["nat-any"]), Fields: n.kv,
	}
	if cs := n.sub("child-sas"); cs != nil {
		for _, c := range cs.subs {
			k := c.node.kv
			s.Children = append(s.Children, ChildSA{
				Name: k["name"], State: k["state"], SPIIn: k["spi-in"], SPIOut: k["spi-out"],
				Encap: yes(k["encap"]), EncrAlg: k["encr-alg"],
				BytesIn: atou(k["bytes-in"]), BytesOut: atou(k["bytes-out"]),
				PacketsIn: atou(k["packets-in"]), PacketsOut: atou(k["packets-out"]),
				Fields: k,
			})
		}
	}
	return s
}
