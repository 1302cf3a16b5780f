package server

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Input bounds: the longest query string accepted, and the longest value of a parameter
// after percent-decoding. Real requests are far shorter.
const (
	maxQueryLen  = 2048
	maxValueLen  = 256
	maxListItems = 16
)

// Query holds the parameters of /metalink and /mirrorlist that regionmirror reads. Every
// other parameter is ignored.
type Query struct {
	Repo, Arch string
	Location   string
	// Countme is dnf's countme= bucket (1..4), 0 when absent or any other value: it never
	// changes the answer, and a bad one is no reason to refuse it.
	Countme   int
	Countries []string // upper-case ISO codes, valid ones only
	Global    bool     // country=global
	Protocols []string // lower case
	Notes     []string // what was ignored, for the answer's header
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
		case "countme":
			// The raw value: dnf sends a bare digit, and skipping the unescape keeps the
			// parse as cheap as it was when countme= was ignored.
			q.Countme = model.CountmeBucket(v)
			continue
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
	// An unknown value of a parameter the server reads is the client's error (400, naming
	// the parameter and what it accepts), never a selection that matches nothing (503).
	// location= is the exception: it names regions, which come and go, and a repo file's
	// location for a cloud region without a mirror must still get an answer.
	items := splitList(country)
	if len(items) > maxListItems {
		return q, badRequest("parameter country: more than %d codes", maxListItems)
	}
	for _, c := range items {
		if strings.EqualFold(c, "global") {
			q.Global = true
			continue
		}
		if strings.HasPrefix(c, "$") {
			// A repo file's $country that the machine did not define arrives unexpanded.
			q.Notes = append(q.Notes, "country= is an unexpanded variable; ignored")
			continue
		}
		cc, ok := geo.NormalizeCountry(c)
		if !ok {
			return q, unknownValue("country", c, "ISO 3166-1 alpha-2 codes (de, us, ...) and global, comma-separated")
		}
		if !containsString(q.Countries, cc) {
			q.Countries = append(q.Countries, cc)
		}
	}
	items = splitList(protocol)
	if len(items) > maxListItems {
		return q, badRequest("parameter protocol: more than %d values", maxListItems)
	}
	for _, item := range items {
		p := strings.ToLower(item)
		if !slices.Contains(protocols, p) {
			return q, unknownValue("protocol", item, strings.Join(protocols, ", ")+" (comma-separated)")
		}
		if !containsString(q.Protocols, p) {
			q.Protocols = append(q.Protocols, p)
		}
	}
	return q, nil
}

// protocols are the values of protocol=: the schemes of the regions' public URLs.
var protocols = []string{"http", "https"}

// unknownValue is the 400 for a value a parameter does not accept. The value is quoted
// with every byte but letters, digits and "._:+-" escaped: the answer echoes it into XML
// comments, text and JSON.
func unknownValue(param, value, accepted string) error {
	if len(value) > 32 {
		value = value[:32]
	}
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:+-", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return badRequest("parameter %s: unknown value \"%s\"; accepted values: %s", param, b.String(), accepted)
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
