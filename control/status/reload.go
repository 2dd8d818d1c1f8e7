package status

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Reloader is implemented by a Source that can re-read its configuration
// file: POST /v1/reload (cgwctl reload; SIGHUP does the same). The answer
// is a ReloadResult: 200 when applied, 422 when refused (Problems say
// why; nothing changed).
type Reloader interface {
	Reload() (*ReloadResult, error)
}

// ReloadResult is what a reload did, by tunnel name.
type ReloadResult struct {
	Config  string `json:"config,omitempty"` // the file read
	Applied bool   `json:"applied"`
	// Problems: why the configuration was refused (config check's
	// findings, or settings that need a restart). Nothing changed.
	Problems []string `json:"problems,omitempty"`
	// Added and Changed tunnels are being negotiated; Removed ones were
	// deleted (the peer was told); Unchanged ones kept their SAs and BGP
	// sessions.
	Added     []string `json:"added,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Changed   []string `json:"changed,omitempty"`
	Unchanged []string `json:"unchanged,omitempty"`
	Notes     []string `json:"notes,omitempty"`  // warnings (config check's, restarts needed elsewhere)
	Errors    []string `json:"errors,omitempty"` // steps of an applied reload that failed
}

func serveReload(mux *http.ServeMux, r Reloader) {
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, _ *http.Request) {
		res, err := r.Reload()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !res.Applied {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	})
}

// Reload asks cgw-control to re-read its configuration file and apply
// the difference. A refused reload is a result with Applied false and
// Problems, not an error.
func (c *Client) Reload(ctx context.Context) (*ReloadResult, error) {
	var res ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", &res)
	if e, ok := err.(*APIError); ok && e.Code == http.StatusUnprocessableEntity {
		if jerr := json.Unmarshal([]byte(e.Msg), &res); jerr != nil {
			return nil, fmt.Errorf("reload refused: %s", e.Msg)
		}
		return &res, nil
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
}
