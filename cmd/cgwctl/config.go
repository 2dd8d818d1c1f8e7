package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/cgw-project/cgw/config"
)

var configCommands = []command{
	{name: "import", summary: "turn AWS's generic VPN configuration (XML) into cgw YAML", run: configImport},
	{name: "check", summary: "validate a configuration file and list every problem", run: configCheck},
}

// prefixFlag is a flag holding an address with prefix length.
type prefixFlag struct{ p *netip.Prefix }

func (f prefixFlag) String() string {
	if f.p == nil || !f.p.IsValid() {
		return ""
	}
	return f.p.String()
}

func (f prefixFlag) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("want an address with prefix length, e.g. 192.0.2.10/24")
	}
	*f.p = p
	return nil
}

// listFlag is a comma-separated, repeatable list flag.
type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*f.l = append(*f.l, v)
		}
	}
	return nil
}

func configImport(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl config import", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var o config.ImportOptions
	out := fs.String("o", "", "write the YAML to this `file` (mode 0600: it holds the pre-shared keys) instead of stdout")
	fs.StringVar(&o.Name, "name", "", "connection `name` (default: AWS's vpn-… id)")
	fs.StringVar(&o.GatewayName, "gateway-name", "", "gateway instance `name` (default cgw)")
	fs.StringVar(&o.OutsideIf, "outside-if", "", "outside NIC `name`, towards AWS (e.g. eth0)")
	fs.StringVar(&o.InsideIf, "inside-if", "", "inside NIC `name`, towards on-premises (e.g. eth1)")
	fs.Var(prefixFlag{&o.OutsideAddress}, "outside-address", "outside NIC `address/len` (default: the customer gateway address from the file, as /32)")
	fs.Var(prefixFlag{&o.InsideAddress}, "inside-address", "inside NIC `address/len`, e.g. 198.18.0.1/24")
	fs.IntVar(&o.IKEVersion, "ike-version", 0, "use IKE `version` 1 or 2 (default: the file's <ike_version>, else 2: the file is written for IKEv1 main mode, but AWS endpoints accept both)")
	fs.Var(listFlag{&o.Advertise}, "advertise", "BGP: on-premises `prefixes` to announce to AWS, comma-separated")
	fs.Var(listFlag{&o.StaticRoutes}, "static-routes", "static routing: VPC `prefixes`, comma-separated")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: cgwctl config import [flags] aws-vpn.xml [more.xml ...]\n\n"+
			"Reads AWS's configuration for one VPN connection (download it with vendor\n"+
			"\"Generic\"), or the JSON of 'aws ec2 describe-vpn-connections', and prints\n"+
			"the cgw configuration. What AWS's file does not hold is taken from\n"+
			"the flags or left as TODO comments for you to fill in. Several files (one\n"+
			"per VPN connection) make one gateway configuration.\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) == 0 {
		fmt.Fprintln(e.stderr, "cgwctl config import: want one AWS XML file (or several, one per VPN connection)")
		fs.Usage()
		return exitUsage
	}
	if len(pos) > 1 && o.Name != "" {
		fmt.Fprintln(e.stderr, "cgwctl config import: -name names one connection; with several files each is named by its AWS id")
		return exitUsage
	}
	if o.IKEVersion != 0 && o.IKEVersion != 1 && o.IKEVersion != 2 {
		fmt.Fprintln(e.stderr, "cgwctl config import: -ike-version must be 1 or 2")
		return exitUsage
	}
	// Several files (CloudHub: one gateway, many VPN connections) become
	// one configuration; the gateway settings come from the first.
	var c *config.Config
	var ids []string
	for _, path := range pos {
		xmlBytes, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(e.stderr, "cgwctl config import: %v\n", err)
			return exitProblem
		}
		one, err := config.ImportAWSWith(xmlBytes, o)
		if err != nil {
			fmt.Fprintf(e.stderr, "cgwctl config import: %s: %v\n", path, err)
			return exitProblem
		}
		for _, cn := range one.Connections {
			ids = append(ids, cn.AWSID)
		}
		if c == nil {
			c = one
		} else {
			c.Connections = append(c.Connections, one.Connections...)
		}
	}
	y, err := config.Marshal(c)
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl config import: %v\n", err)
		return exitProblem
	}
	header := fmt.Sprintf("# cgw configuration imported from %s (AWS VPN connections: %s).\n# Check it with: cgwctl config check <this file>\n",
		strings.Join(pos, ", "), strings.Join(ids, ", "))
	y = append([]byte(header), y...)
	if *out == "" {
		e.stdout.Write(y)
	} else if err := writePrivate(*out, y); err != nil {
		fmt.Fprintf(e.stderr, "cgwctl config import: %v\n", err)
		return exitProblem
	}
	if ps := c.Validate(); len(ps) > 0 {
		fmt.Fprintf(e.stderr, "cgwctl config import: imported; %d setting(s) still to fill in before 'cgwctl config check' passes:\n", len(ps))
		for _, p := range ps {
			fmt.Fprintf(e.stderr, "  %s\n", p)
		}
	}
	return exitOK
}

// writePrivate writes a file only its owner can read, also when it
// already existed with a wider mode: it holds pre-shared keys.
func writePrivate(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

func configCheck(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl config check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: cgwctl config check cgw.yaml\n\n"+
			"Loads the file strictly, applies AWS's defaults and lists every problem\n"+
			"with its place in the file and how to fix it. Exit status 1 if any.\n")
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "cgwctl config check: want exactly one configuration file")
		fs.Usage()
		return exitUsage
	}
	c, err := config.Load(pos[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl config check: %v\n", err)
		return exitProblem
	}
	ps := c.Validate()
	if len(ps) > 0 {
		fmt.Fprintf(e.stdout, "%s: %v\n", pos[0], config.Problems(ps))
		return exitProblem
	}
	tunnels := 0
	for _, cn := range c.Connections {
		tunnels += len(cn.Tunnels)
	}
	ws := append(config.FileWarnings(pos[0], c), c.Warnings()...)
	for _, w := range ws {
		fmt.Fprintf(e.stdout, "warning: %s: %s\n", w.Path, w.Msg)
	}
	fmt.Fprintf(e.stdout, "ok: %d connections, %d tunnels", len(c.Connections), tunnels)
	if len(ws) > 0 {
		fmt.Fprintf(e.stdout, ", %d warning(s): valid, but weaker than it should be on a gateway that talks to AWS", len(ws))
	}
	fmt.Fprintln(e.stdout)
	return exitOK
}
