package watch

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/pusher"
)

// maxTriggerBody bounds a trigger's body.
const maxTriggerBody = 64 << 10

// Queue takes the scopes a trigger names (Daemon.Trigger).
type Queue interface{ Trigger(scope []string) }

// TriggerHandler is POST /api/v1/push: a publisher names the origin directories it
// changed, with a bearer token whose hash is in Tokens, and they are queued for a push.
// Nothing is queued unless every path is an existing directory under Root reached
// without a symlink. Answers never show the origin's root.
type TriggerHandler struct {
	Root    string
	Tokens  func() []string // the configured token hashes (server.admin_tokens)
	Queue   Queue
	Metrics *Metrics
}

type triggerRequest struct {
	Paths []string `json:"paths"`
}

type triggerError struct {
	Error string `json:"error"`
	Path  string `json:"path,omitempty"`
}

// apiError is an answer other than 202: its status and what the publisher reads.
type apiError struct {
	status int
	body   triggerError
}

func (h *TriggerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	queued, aerr := h.serve(w, r)
	code := http.StatusAccepted
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	var body any = map[string][]string{"queued": queued}
	if aerr != nil {
		code, body = aerr.status, aerr.body
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="regionmirror"`)
		}
		if code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
	}
	if h.Metrics != nil {
		h.Metrics.Triggers.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func (h *TriggerHandler) serve(w http.ResponseWriter, r *http.Request) ([]string, *apiError) {
	if r.Method != http.MethodPost {
		return nil, &apiError{http.StatusMethodNotAllowed, triggerError{Error: "use POST"}}
	}
	var tokens []string
	if h.Tokens != nil {
		tokens = h.Tokens()
	}
	if len(tokens) == 0 {
		return nil, &apiError{http.StatusForbidden, triggerError{Error: "push triggers are refused: no token is configured; add the hash of one ('regionmirror config hash-token') to server.admin_tokens"}}
	}
	auth := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(auth, " ")
	if auth == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, &apiError{http.StatusUnauthorized, triggerError{Error: "a bearer token is required"}}
	}
	if !config.TokenAllowed(tokens, strings.TrimSpace(token)) {
		return nil, &apiError{http.StatusForbidden, triggerError{Error: "the token is not allowed"}}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTriggerBody))
	dec.DisallowUnknownFields()
	var req triggerRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, triggerError{Error: "the body is larger than 64 KiB"}}
		}
		return nil, &apiError{http.StatusBadRequest, triggerError{Error: "the body must be JSON: {\"paths\": [\"dir\", ...]}"}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &apiError{http.StatusBadRequest, triggerError{Error: "the body must be one JSON object"}}
	}
	scope, err := pusher.ResolveScope(h.Root, req.Paths)
	if err != nil {
		var se *pusher.ScopeError
		if errors.As(err, &se) {
			return nil, &apiError{http.StatusBadRequest, triggerError{Error: se.Error(), Path: se.Path}}
		}
		return nil, &apiError{http.StatusBadRequest, triggerError{Error: "the paths cannot be pushed"}}
	}
	h.Queue.Trigger(scope)
	if scope == nil {
		scope = []string{""}
	}
	return scope, nil
}
