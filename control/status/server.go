package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Source produces the snapshot the server returns.
type Source interface {
	Status() *Status
}

// Actor is implemented by a Source that also takes commands: POST
// /v1/tunnels/{name}/rekey-child, /rekey-ike and /initiate. A command
// that started answers 204. An error answers its text with 404 if it has
// a method NotFound() bool returning true (no such tunnel), 409 if it has
// Conflict() bool returning true (the command cannot start now, e.g. the
// SA is already being rekeyed), else 500.
type Actor interface {
	RekeyChild(tunnel string) error
	RekeyIKE(tunnel string) error
	Initiate(tunnel string) error
}

// Server serves the status API on a unix socket.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
}

// Listen creates the socket at path (its directory 0700 if missing; the
// socket 0600: the API shows SPIs and addresses) and serves src on it.
// A socket left by a process that died is replaced; a live one is an
// error (another cgw-control runs this instance).
func Listen(path string, src Source) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("status socket %s: %w (set gateway.observability.status_socket)", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("status socket %s: another cgw-control answers on it (one control process per gateway instance)", path)
		}
		os.Remove(path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	get := func(pattern string, part func(*Status) any) {
		mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(part(src.Status()))
		})
	}
	get("/v1/status", func(s *Status) any { return s })
	get("/v1/tunnels", func(s *Status) any { return s.Tunnels })
	get("/v1/routes", func(s *Status) any { return s.Routes })
	get("/v1/neighbors", func(s *Status) any { return s.Neighbors })
	if a, ok := src.(Actor); ok {
		act := func(verb string, fn func(string) error) {
			mux.HandleFunc("POST /v1/tunnels/{name}/"+verb, func(w http.ResponseWriter, r *http.Request) {
				if err := fn(r.PathValue("name")); err != nil {
					http.Error(w, err.Error(), actionCode(err))
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
		}
		act("rekey-child", a.RekeyChild)
		act("rekey-ike", a.RekeyIKE)
		act("initiate", a.Initiate)
	}
	if r, ok := src.(Reloader); ok {
		serveReload(mux, r)
	}
	if es, ok := src.(EventSource); ok {
		serveEvents(mux, es)
	}
	// Shutdown ends the requests' context, so event streams end at once.
	base, stop := context.WithCancel(context.Background())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	hs.RegisterOnShutdown(stop)
	s := &Server{path: path, ln: ln, srv: hs}
	go s.srv.Serve(ln)
	return s, nil
}

// actionCode is the HTTP status of an Actor's error (see Actor).
func actionCode(err error) int {
	var nf interface{ NotFound() bool }
	var cf interface{ Conflict() bool }
	switch {
	case errors.As(err, &nf) && nf.NotFound():
		return http.StatusNotFound
	case errors.As(err, &cf) && cf.Conflict():
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	os.Remove(s.path)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
