// Command mkdeb packs a staged install tree (make install DESTDIR=root
// PREFIX=/usr) into a Debian package with nFPM used as a library, so the
// layout is written once, in the Makefile's install target. Files under
// etc/ become conffiles: dpkg keeps an operator's edited /etc/cgw/cgw.yaml
// on upgrade. make deb runs it.
//
//	mkdeb -root bin/deb-root -version v1.2.3 -o bin/
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	root := flag.String("root", "", "staged install tree (required)")
	version := flag.String("version", "", "package version, e.g. v1.2.3 or a Go pseudo-version (required)")
	arch := flag.String("arch", runtime.GOARCH, "Debian architecture")
	out := flag.String("o", ".", "directory to write cgw_<version>_<arch>.deb into")
	flag.Parse()
	if *root == "" || *version == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mkdeb -root DIR -version V [-arch A] [-o DIR]")
		os.Exit(2)
	}
	path, err := pack(*root, *version, *arch, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

func pack(root, version, arch, outDir string) (string, error) {
	contents, err := walk(root)
	if err != nil {
		return "", err
	}
	info := &nfpm.Info{
		Name:          "cgw",
		Arch:          arch,
		Platform:      "linux",
		Version:       debVersion(version),
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "cgw project <cgw@example.org>",
		Description:   "software customer gateway for AWS Site-to-Site VPN\nXDP/AF_XDP fast path (cgw-dataplane) and a separate IKE/BGP control\nprocess (cgw-control), with cgwctl to import AWS's configuration.",
		Homepage:      "https://github.com/cgw-project/cgw",
		License:       "Apache-2.0",
		MTime:         time.Unix(0, 0).UTC(), // reproducible
		Overridables: nfpm.Overridables{
			Contents: contents,
			Depends:  []string{"libc6"},
			Umask:    0o022,
		},
	}
	if err := nfpm.PrepareForPackager(nfpm.WithDefaults(info), "deb"); err != nil {
		return "", err
	}
	p := deb.Default
	name := filepath.Join(outDir, p.ConventionalFileName(info))
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	return name, f.Close()
}

// debVersion turns a Go version (v1.2.3, v1.2.3-rc.1 or the pseudo-version
// v0.0.0-20261206121833-e87984d) into a Debian upstream version that sorts
// the same way: 1.2.3, 1.2.3~rc.1, 0.0.0~20261206121833.e87984d ("~"
// sorts before the release; no "-", which would start a Debian revision).
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexByte(v, '-'); i >= 0 {
		v = v[:i] + "~" + strings.ReplaceAll(v[i+1:], "-", ".")
	}
	return v
}

// walk lists root's regular files as package contents, keeping their
// modes; etc/ files are conffiles.
func walk(root string) (files.Contents, error) {
	var c files.Contents
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			// Directories under etc/ keep their mode (/etc/cgw is 0700:
			// the configuration holds pre-shared keys).
			if strings.HasPrefix(rel, "etc/") {
				st, err := d.Info()
				if err != nil {
					return err
				}
				c = append(c, &files.Content{Destination: "/" + rel, Type: files.TypeDir,
					FileInfo: &files.ContentFileInfo{Mode: st.Mode().Perm(), Owner: "root", Group: "root"}})
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files are packed", p)
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		typ := files.TypeFile
		if strings.HasPrefix(rel, "etc/") {
			typ = files.TypeConfig
		}
		c = append(c, &files.Content{Source: p, Destination: "/" + rel, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: st.Mode().Perm(), Owner: "root", Group: "root"}})
		return nil
	})
	if err == nil && !hasFiles(c) {
		err = fmt.Errorf("%s holds no files: run make install DESTDIR=%s PREFIX=/usr first", root, root)
	}
	return c, err
}

func hasFiles(c files.Contents) bool {
	for _, x := range c {
		if x.Type != files.TypeDir {
			return true
		}
	}
	return false
}
