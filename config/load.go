package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads a YAML configuration file, decodes it strictly and applies
// the defaults. It does not validate: call Validate (or Check) next.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a YAML configuration strictly (an unknown key is an error
// naming the key, its line and the keys that are allowed there) and
// applies the defaults.
func Parse(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, explainDecodeError(err)
	}
	fuzz := explicitFuzz(&root)
	c.applyDefaults(func(i, j int) bool { return fuzz[[2]int{i, j}] })
	return &c, nil
}

// Marshal writes c as YAML with two-space indentation. Required fields
// that are still empty (as after ImportAWS) get a comment saying what to
// put there.
func Marshal(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	annotate(&n, c)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// annotate comments the empty fields an operator must fill in.
func annotate(n *yaml.Node, c *Config) {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	todo := func(m *yaml.Node, key, text string) {
		if v := mapValue(m, key); v != nil && (v.Value == "" && len(v.Content) == 0) {
			v.LineComment = "TODO: " + text
		}
	}
	gw := mapValue(n, "gateway")
	out, in := mapValue(gw, "outside"), mapValue(gw, "inside")
	todo(out, "interface", "the NIC towards the Internet/AWS, e.g. eth0")
	todo(out, "address", "this NIC's address with prefix length, e.g. 192.0.2.10/24")
	todo(in, "interface", "the NIC towards the on-premises network, e.g. eth1")
	todo(in, "address", "this NIC's address with prefix length, e.g. 198.18.0.1/24")
	conns := mapValue(n, "connections")
	if conns == nil {
		return
	}
	for i, cn := range conns.Content {
		if i >= len(c.Connections) {
			break
		}
		switch c.Connections[i].Routing {
		case RoutingBGP:
			todo(mapValue(cn, "bgp"), "advertise", "on-premises prefixes to announce to AWS, e.g. [198.18.0.0/24]")
		case RoutingStatic:
			if len(c.Connections[i].Static) == 0 {
				for k := 0; k+1 < len(cn.Content); k += 2 {
					if cn.Content[k].Value == "routing" {
						cn.Content[k+1].LineComment = "TODO: add static_routes: [VPC prefixes, e.g. 10.0.0.0/16]"
					}
				}
			}
		}
	}
}

// explicitFuzz finds the tunnels whose rekey_fuzz_percent is written in
// the file, so that an explicit 0 (no fuzz) survives ApplyDefaults.
func explicitFuzz(root *yaml.Node) map[[2]int]bool {
	out := map[[2]int]bool{}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	conns := mapValue(doc, "connections")
	if conns == nil || conns.Kind != yaml.SequenceNode {
		return out
	}
	for i, cn := range conns.Content {
		tuns := mapValue(cn, "tunnels")
		if tuns == nil || tuns.Kind != yaml.SequenceNode {
			continue
		}
		for j, t := range tuns.Content {
			if mapValue(t, "rekey_fuzz_percent") != nil {
				out[[2]int{i, j}] = true
			}
		}
	}
	return out
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == key {
			return n.Content[k+1]
		}
	}
	return nil
}

// sections names the YAML section each Go type is decoded from, for
// error messages.
var sections = map[string]reflect.Type{
	"config.Config":        reflect.TypeOf(Config{}),
	"config.Gateway":       reflect.TypeOf(Gateway{}),
	"config.Interface":     reflect.TypeOf(Interface{}),
	"config.Dataplane":     reflect.TypeOf(Dataplane{}),
	"config.Observability": reflect.TypeOf(Observability{}),
	"config.Connection":    reflect.TypeOf(Connection{}),
	"config.BGP":           reflect.TypeOf(BGP{}),
	"config.Tunnel":        reflect.TypeOf(Tunnel{}),
	"config.Phase":         reflect.TypeOf(Phase{}),
	"config.DPD":           reflect.TypeOf(DPD{}),
}

var sectionNames = map[string]string{
	"config.Config":        "the top level",
	"config.Gateway":       "gateway",
	"config.Interface":     "an interface (gateway.outside/inside)",
	"config.Dataplane":     "gateway.dataplane",
	"config.Observability": "gateway.observability",
	"config.Connection":    "a connection",
	"config.BGP":           "a connection's bgp",
	"config.Tunnel":        "a tunnel",
	"config.Phase":         "a phase1/phase2",
	"config.DPD":           "a tunnel's dpd",
}

var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)

// explainDecodeError rewrites yaml.v3's type errors so that an unknown key
// says where it is and what is allowed there.
func explainDecodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, key, typ := m[1], m[2], m[3]
		msg := fmt.Sprintf("line %s: unknown key %q", line, key)
		if name, ok := sectionNames[typ]; ok {
			msg += " in " + name
		}
		if t, ok := sections[typ]; ok {
			msg += "; allowed keys: " + strings.Join(yamlKeys(t), ", ")
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}
