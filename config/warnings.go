package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Warnings lists the settings that are valid but weaken the gateway: the
// lab's escape hatches (gateway.testing), which must never reach a
// gateway that talks to AWS, a GoBGP API any local user can reach, and
// weak algorithms (weakPhase). FileWarnings checks the file itself.
// cgw-control logs each at WARN on every start; `cgwctl config check`
// lists them.
func (c *Config) Warnings() []Problem {
	var ps []Problem
	if c.Gateway.Testing.ShortLifetimes {
		ps = append(ps, Problem{Path: "gateway.testing.short_lifetimes", Got: "true",
			Msg: fmt.Sprintf("FOR LABS AND TESTS ONLY: lifetimes down to %s and rekey margins down to %s are accepted (AWS requires at least %s and %s); remove it on a gateway that talks to AWS",
				Duration(LabMinLifetime), Duration(LabMinRekeyMargin), Duration(MinPhase2Lifetime), Duration(MinRekeyMargin))})
	}
	if c.Gateway.Testing.NonAWSGroups {
		ps = append(ps, Problem{Path: "gateway.testing.non_aws_dh_groups", Got: "true",
			Msg: "FOR LABS AND TESTS ONLY: DH groups AWS does not offer (31) are accepted; AWS refuses them: remove it on a gateway that talks to AWS"})
	}
	o := &c.Gateway.Observability
	if _, warn, err := ParseGoBGPAPI(o.GoBGPAPI, o.GoBGPAPITLS); err == nil && warn != "" {
		ps = append(ps, Problem{Path: "gateway.observability.gobgp_api", Got: quote(o.GoBGPAPI), Msg: warn})
	}
	for i := range c.Connections {
		cn := &c.Connections[i]
		for j := range cn.Tunnels {
			t := &cn.Tunnels[j]
			p := fmt.Sprintf("connections[%d].tunnels[%d]", i, j)
			label := tunnelLabel(cn, j)
			ps = append(ps, weakPhase(p+".phase1", label, "phase1", &t.Phase1)...)
			ps = append(ps, weakPhase(p+".phase2", label, "phase2", &t.Phase2)...)
		}
	}
	return ps
}

// Why each weak algorithm is weak, and what AWS also accepts instead.
const (
	sha1Why = "which is being retired (RFC 8247 §2.2, RFC 8221 §6: MUST-, not for new configurations)"
	sha1Use = "use SHA2-256 or SHA2-384 (AWS accepts both on both sides)"
	dhUse   = "use 20 (ECP-384), 19 (ECP-256) or 14 (MODP-2048): AWS accepts them in both phases"
)

// WeakDHGroup says why an AWS DH group is weak ("" if it is not).
func WeakDHGroup(id int) string {
	switch id {
	case 2:
		return "group 2 (MODP-1024) is too small: RFC 8247 §2.4 SHOULD NOT"
	case 5:
		return "group 5 (MODP-1536) is too small: RFC 8247 §2.4 SHOULD NOT"
	case 22, 23, 24:
		return "group " + strconv.Itoa(id) + " (RFC 5114 MODP with a prime-order subgroup) has parameters nobody can check were generated honestly: RFC 8247 §2.4 SHOULD NOT"
	}
	return ""
}

// weakPhase warns about SHA1 and weak DH groups in one phase. They are
// kept when written (AWS's file or the operator may need them) but never
// offered by default.
func weakPhase(path, label, which string, ph *Phase) []Problem {
	var ps []Problem
	for k, n := range ph.Integrity {
		if c, _ := CanonicalIntegrity(n); c == SHA1 && (which == "phase1" || ph.hasCBC()) {
			ps = append(ps, Problem{Path: fmt.Sprintf("%s.integrity[%d]", path, k), Got: quote(n),
				Msg: fmt.Sprintf("%s: %s offers SHA1, %s; %s", label, which, sha1Why, sha1Use)})
		}
	}
	var weak []string
	for _, id := range ph.DHGroups {
		if w := WeakDHGroup(id); w != "" {
			weak = append(weak, w)
		}
	}
	if len(weak) > 0 {
		got := make([]string, len(ph.DHGroups))
		for k, id := range ph.DHGroups {
			got[k] = strconv.Itoa(id)
		}
		ps = append(ps, Problem{Path: path + ".dh_groups", Got: strings.Join(got, ", "),
			Msg: fmt.Sprintf("%s: %s offers weak DH groups: %s; %s", label, which, strings.Join(weak, "; "), dhUse)})
	}
	return ps
}

// FileWarnings checks the file c was loaded from: holding pre-shared
// keys, it must be readable by its owner only.
func FileWarnings(path string, c *Config) []Problem {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 || !c.hasPSK() {
		return nil
	}
	m := uint32(fi.Mode().Perm())
	return []Problem{{Path: path, Got: fmt.Sprintf("mode %04o", m),
		Msg: fmt.Sprintf("the file holds pre-shared keys and other users can read it (mode %04o): chmod 600 %s", m, path)}}
}

func (c *Config) hasPSK() bool {
	for _, cn := range c.Connections {
		for _, t := range cn.Tunnels {
			if t.PreSharedKey != "" {
				return true
			}
		}
	}
	return false
}
