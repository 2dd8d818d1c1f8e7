package config

import "fmt"

// Warnings lists the settings that are valid but weaken the gateway: the
// lab's escape hatches (gateway.testing), which must never reach a
// gateway that talks to AWS, and a GoBGP API any local user can reach.
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
	return ps
}
