package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// Client asks a cgw-control for its status over the unix socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client of the socket at path. Nothing is dialled
// until a request.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Status returns the whole snapshot.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.get(ctx, "/v1/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// RekeyChild asks cgw-control to rekey a tunnel's Child SA now.
func (c *Client) RekeyChild(ctx context.Context, tunnel string) error {
	return c.post(ctx, "/v1/tunnels/"+url.PathEscape(tunnel)+"/rekey-child")
}

// RekeyIKE asks cgw-control to rekey a tunnel's IKE SA now.
func (c *Client) RekeyIKE(ctx context.Context, tunnel string) error {
	return c.post(ctx, "/v1/tunnels/"+url.PathEscape(tunnel)+"/rekey-ike")
}

// Initiate asks cgw-control to (re)negotiate a tunnel now.
func (c *Client) Initiate(ctx context.Context, tunnel string) error {
	return c.post(ctx, "/v1/tunnels/"+url.PathEscape(tunnel)+"/initiate")
}

func (c *Client) post(ctx context.Context, p string) error {
	return c.do(ctx, http.MethodPost, p, nil)
}

func (c *Client) get(ctx context.Context, p string, v any) error {
	return c.do(ctx, http.MethodGet, p, v)
}

func (c *Client) do(ctx context.Context, method, p string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://cgw-control"+p, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // a refused reload lists every problem
		return &APIError{Code: resp.StatusCode, Method: method, Path: p, Msg: strings.TrimSpace(string(b))}
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("status API %s%s: bad answer: %w", c.path, p, err)
	}
	return nil
}

// dialError says what to do when the socket does not answer.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cgw-control is not running (nothing answers on %s): start it, or give the instance's socket with -socket", c.path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: permission denied (the status socket is mode 0600: run as root)", c.path)
	}
	return fmt.Errorf("status API %s: %w", c.path, err)
}

// APIError is an answer of the status API other than 2xx: Code is the
// HTTP status (404 no such tunnel, 409 the command cannot start now), Msg
// cgw-control's explanation.
type APIError struct {
	Code         int
	Method, Path string
	Msg          string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.Msg) }

// IsConflict reports whether err is the API's 409: the command was
// refused because of the tunnel's state (e.g. the SA is already being
// rekeyed) and nothing was done.
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == http.StatusConflict
}
