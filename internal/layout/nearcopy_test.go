package layout

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The IKE engines share their core through control/ike (issue #12): a
// function written twice, once in each engine, is logic that belongs
// there. These numbers say what counts as written twice.
const (
	// minStmts: shorter functions (accessors, one-line wrappers) may
	// look alike without being a copy of any logic.
	minStmts = 8
	// maxSimilar: the share of tokens two function bodies have in common
	// (in order, 2·LCS/(len a + len b)) above which they are one function
	// written twice; string literals and comments are left out, so a
	// copy whose messages name another engine still counts. The most
	// alike functions the engines keep, each its own protocol's, are
	// under 0.80 (New: the Options each engine takes).
	maxSimilar = 0.85
)

// engines are the packages whose functions must not be near-copies of
// each other's.
var engines = [2]string{"control/ikev1", "control/ikev2"}

// fn is one function of an engine, as a normalised token sequence.
type fn struct {
	name  string // file:Recv.Name
	stmts int
	toks  []string
}

// TestNoNearCopies fails on a function of more than minStmts statements
// that is identical or nearly identical in control/ikev1 and
// control/ikev2 (not counting tests): move it to control/ike, with the
// engine's difference as a parameter.
func TestNoNearCopies(t *testing.T) {
	r := root(t)
	var sides [2][]fn
	for i, dir := range engines {
		sides[i] = engineFuncs(t, filepath.Join(r, dir))
		if len(sides[i]) < 20 {
			t.Fatalf("%s: only %d functions of more than %d statements found; is the directory right?", dir, len(sides[i]), minStmts)
		}
	}
	for _, c := range nearCopies(sides[0], sides[1]) {
		t.Errorf("near-copy (%.0f%% alike): %s/%s and %s/%s: move the shared logic to control/ike", 100*c.sim, engines[0], c.a, engines[1], c.b)
	}
}

// TestNearCopyCatches makes sure the check fires on a copy with renamed
// strings and one changed line, and not on unrelated functions.
func TestNearCopyCatches(t *testing.T) {
	const a = `package p
func (m *M) command(name string, f func(t *T) error) error {
	t, ok := m.Tunnel(name)
	if !ok {
		return &NotFoundError{Tunnel: name}
	}
	res := make(chan error, 1)
	stopped := fmt.Errorf("tunnel %s: stopped", name)
	if !t.do(func() {
		err := fmt.Errorf("tunnel %s: internal error", name)
		defer func() { res <- err }()
		err = f(t)
	}) {
		return stopped
	}
	select {
	case err := <-res:
		return err
	case <-t.done:
		return stopped
	}
}
func other(x int) int {
	for i := 0; i < x; i++ {
		x += i
		if x > 10 {
			x--
		}
		x *= 2
		x -= 3
		x /= 2
		x |= 1
		x &= 7
	}
	return x
}`
	b := strings.Replace(strings.Replace(a, "tunnel %s: stopped", "ikev2 tunnel %s has stopped", 1), "case <-t.done:", "case <-t.quit:", 1)
	fa, fb := funcsOf(t, "a.go", a), funcsOf(t, "b.go", b)
	cs := nearCopies(fa, fb)
	if len(cs) != 2 || cs[0].a != "a.go:M.command" || cs[1].a != "a.go:other" {
		t.Fatalf("near copies of itself: %+v, want command and other", cs)
	}
	if cs := nearCopies(fa[:1], fa[1:]); len(cs) != 0 {
		t.Fatalf("unrelated functions reported alike: %+v", cs)
	}
}

type nearCopy struct {
	a, b string
	sim  float64
}

func nearCopies(as, bs []fn) []nearCopy {
	var out []nearCopy
	for _, a := range as {
		for _, b := range bs {
			la, lb := len(a.toks), len(b.toks)
			if float64(min(la, lb))*2/float64(la+lb) < maxSimilar {
				continue // too different in length to reach maxSimilar
			}
			if s := similarity(a.toks, b.toks); s >= maxSimilar {
				out = append(out, nearCopy{a.name, b.name, s})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].a+out[i].b < out[j].a+out[j].b })
	return out
}

// similarity is 2·LCS/(len a + len b) of two token sequences.
func similarity(a, b []string) float64 {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return 2 * float64(prev[len(b)]) / float64(len(a)+len(b))
}

// engineFuncs reads the functions of the package in dir and of the
// packages under it (tests left out).
func engineFuncs(t *testing.T, dir string) []fn {
	t.Helper()
	var out []fn
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, funcsOf(t, filepath.ToSlash(rel), string(src))...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// funcsOf parses one file and returns its functions of more than
// minStmts statements.
func funcsOf(t *testing.T, name, src string) []fn {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []fn
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		n := 0
		ast.Inspect(fd.Body, func(x ast.Node) bool {
			if _, ok := x.(ast.Stmt); ok {
				if _, block := x.(*ast.BlockStmt); !block {
					n++
				}
			}
			return true
		})
		if n <= minStmts {
			continue
		}
		fname := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			fname = recvName(fd.Recv.List[0].Type) + "." + fname
		}
		start, end := fset.Position(fd.Body.Pos()).Offset, fset.Position(fd.Body.End()).Offset
		out = append(out, fn{name: name + ":" + fname, stmts: n, toks: tokens(src[start:end])})
	}
	return out
}

func recvName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return recvName(x.X)
	case *ast.IndexExpr:
		return recvName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return fmt.Sprintf("%T", e)
}

// tokens is a function body as tokens, string and character literals
// replaced by their kind and comments dropped.
func tokens(body string) []string {
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile("", -1, len(body)), []byte(body), nil, 0)
	var out []string
	for {
		_, tok, lit := s.Scan()
		switch tok {
		case token.EOF:
			return out
		case token.STRING, token.CHAR:
			out = append(out, tok.String())
		case token.SEMICOLON:
			if lit == "\n" {
				continue // inserted at a line end: layout, not code
			}
			out = append(out, ";")
		default:
			if lit != "" {
				out = append(out, lit)
			} else {
				out = append(out, tok.String())
			}
		}
	}
}
