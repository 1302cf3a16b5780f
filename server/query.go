package server

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/regionmirror/regionmirror/internal/geo"
)

// Input bounds: the longest query string accepted, and the longest value of a parameter
// after percent-decoding. Real requests are far shorter.
const (
	maxQueryLen  = 2048
	maxValueLen  = 256
	maxListItems = 16
)

// Query holds the parameters of /metalink and /mirrorlist that regionmirror reads. Every
// other parameter (countme=, ...) is ignored.
type Query struct {
	Repo, Arch string
	Location   string
	Countries  []string // upper-case ISO codes, valid ones only
	Global     bool     // country=global
	Protocols  []string // lower case
	Notes      []string // what was ignored, for the answer's header
}

// BadRequestError is input that cannot be answered; it maps to 400.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...)}
}

// ParseQuery reads a raw query string: values are percent-decoded, a repeated key keeps
// its last value, unknown keys are ignored and every value is bounded.
func ParseQuery(raw string) (Query, error) {
	var q Query
	if len(raw) > maxQueryLen {
		return q, badRequest("query string longer than %d bytes", maxQueryLen)
	}
	var country, protocol string
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue // not a key this server reads
		}
		var dst *string
		switch key {
		case "repo":
			dst = &q.Repo
		case "arch":
			dst = &q.Arch
		case "location":
			dst = &q.Location
		case "country":
			dst = &country
		case "protocol":
			dst = &protocol
		default:
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return q, badRequest("parameter %s: bad percent-encoding", key)
		}
		if len(val) > maxValueLen {
			return q, badRequest("parameter %s: longer than %d bytes", key, maxValueLen)
		}
		*dst = strings.TrimSpace(val)
	}
	if q.Location != "" && (strings.HasPrefix(q.Location, "$") || strings.Contains(q.Location, "${")) {
		// A repo file's $location that the machine did not define arrives unexpanded.
		q.Notes = append(q.Notes, "location= is an unexpanded variable; ignored")
		q.Location = ""
	}
	items := splitList(country)
	if len(items) > maxListItems {
		return q, badRequest("parameter country: more than %d codes", maxListItems)
	}
	for _, c := range items {
		if strings.EqualFold(c, "global") {
			q.Global = true
			continue
		}
		cc, ok := geo.NormalizeCountry(c)
		if !ok {
			q.Notes = append(q.Notes, fmt.Sprintf("country=%s is not an ISO 3166-1 code; ignored", safeText(c, 16)))
			continue
		}
		if !containsString(q.Countries, cc) {
			q.Countries = append(q.Countries, cc)
		}
	}
	items = splitList(protocol)
	if len(items) > maxListItems {
		return q, badRequest("parameter protocol: more than %d values", maxListItems)
	}
	for _, p := range items {
		p = strings.ToLower(p)
		if !containsString(q.Protocols, p) {
			q.Protocols = append(q.Protocols, safeText(p, 16))
		}
	}
	return q, nil
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
