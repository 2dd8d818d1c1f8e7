package config

import (
	"os"
	"testing"
)

// The loaders must never panic, and whatever they accept must marshal to
// YAML that loads again. Seeds: testdata/fuzz/Fuzz*/ and the sample files.

func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../testdata/cgw-example.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimalYAML))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		roundTrip(t, c)
	})
}

func FuzzImportAWS(f *testing.F) {
	for _, p := range []string{"../testdata/aws/vpn-bgp.xml", "../testdata/aws/vpn-static.xml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ImportAWS(b)
		if err != nil {
			return
		}
		roundTrip(t, c)
	})
}

func roundTrip(t *testing.T, c *Config) {
	t.Helper()
	_ = c.Validate()
	_ = c.Check()
	for i := range c.Connections {
		for j := range c.Connections[i].Tunnels {
			tu := &c.Connections[i].Tunnels[j]
			_, _, _ = tu.Phase1.StrongSwanIKE(), tu.Phase2.StrongSwanESP(), tu.Phase2.ESPSuites()
			_, _ = tu.LocalInside(), tu.AWSInside()
		}
	}
	y, err := Marshal(c)
	if err != nil {
		t.Fatalf("Marshal of an accepted config: %v", err)
	}
	if _, err := Parse(y); err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, y)
	}
}
