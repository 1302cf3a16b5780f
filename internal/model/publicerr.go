package model

import (
	"regexp"
	"strings"
)

// PublicReason turns an error recorded by a push, scan, gc or probe (region_health.last_error,
// region_repos.error, runs.error) into what public answers may show: what failed and the
// kind of cause ("listing failed: connection refused", "upload failed: access denied"),
// never a bucket name, an S3 endpoint, an object key, a key prefix, a directory or an
// address. The full error stays in the logs and the CLI. Our own messages that carry
// nothing but counts and words ("3 files of the repository are missing or corrupt in
// this region", "HTTP 404") are kept as they are.
func PublicReason(err string) string {
	err = strings.TrimSpace(err)
	if err == "" {
		return ""
	}
	lower := strings.ToLower(err)
	kind := ""
	var kept []string
	truncated := false
	for i, seg := range strings.Split(err, ": ") {
		if i == 0 {
			if m := runPrefix.FindStringSubmatch(seg); m != nil {
				kind = m[1] // "scan eu-west-1": the region's name is public, but adds nothing
				continue
			}
		}
		if !safeClause(seg) {
			truncated = true
			break
		}
		kept = append(kept, seg)
	}
	cause := causeOf(lower)
	if len(kept) > 0 {
		out := strings.Join(kept, ": ")
		switch {
		case !truncated:
		case cause != "":
			out += ": " + cause
		default:
			out += " (details in the logs)"
		}
		return out
	}
	op := operationOf(lower)
	if op == "" && kind != "" {
		op = kind + " failed"
	}
	switch {
	case op != "" && cause != "":
		return op + ": " + cause
	case cause != "":
		return cause
	case op != "":
		return op + " (details in the logs)"
	}
	return "failed (details in the logs)"
}

// runPrefix is how push, scan and gc start their errors: "push REGION".
var runPrefix = regexp.MustCompile(`^(push|scan|gc) [a-z0-9-]+$`)

// safeClause: a clause of words and an optional leading count, nothing that can be a
// name, host, key or path (no digits inside words, no dots but repomd.xml's, no slashes,
// no colons).
var safeClauseRE = regexp.MustCompile(`^([0-9]+ )?[A-Za-z][A-Za-z ,()]*$`)
var httpStatusClause = regexp.MustCompile(`^HTTP [1-5][0-9][0-9]$`)

func safeClause(s string) bool {
	if len(s) > 160 {
		return false
	}
	if httpStatusClause.MatchString(s) {
		return true
	}
	s = strings.ReplaceAll(s, "repomd.xml.asc", "repomd")
	s = strings.ReplaceAll(s, "repomd.xml", "repomd")
	if !safeClauseRE.MatchString(s) {
		return false
	}
	// An S3 SDK error's words ("operation error S3", "api error AccessDenied") are causes,
	// not clauses, and our verbs ("put KEY") name keys.
	for _, w := range []string{"operation error", "api error", "https response error", "dial ", "lookup "} {
		if strings.Contains(strings.ToLower(s), w) {
			return false
		}
	}
	first, _, _ := strings.Cut(s, " ")
	switch strings.ToLower(first) {
	case "put", "get", "head", "list", "delete", "copy", "multipart", "read", "write", "open", "stat":
		return false
	}
	return true
}

// operations maps what an error says was being done to its public name, most specific
// first: the S3 SDK's operation names, then our own verbs ("put KEY: ...").
var operations = []struct{ match, name string }{
	{"listobjects", "listing failed"},
	{"putobject", "upload failed"},
	{"createmultipartupload", "upload failed"},
	{"uploadpart", "upload failed"},
	{"completemultipartupload", "upload failed"},
	{"copyobject", "copy failed"},
	{"getobjectattributes", "checking an object failed"},
	{"headobject", "checking an object failed"},
	{"getobject", "download failed"},
	{"deleteobject", "delete failed"},
	{"headbucket", "checking the bucket failed"},
	{"list ", "listing failed"},
	{"put ", "upload failed"},
	{"multipart ", "upload failed"},
	{"copy ", "copy failed"},
	{"delete ", "delete failed"},
	{"head ", "checking an object failed"},
	{"get ", "download failed"},
	{"read ", "reading failed"},
	{"probe request", "probe failed"},
}

func operationOf(lower string) string {
	best, at := "", -1
	for _, op := range operations {
		verb := strings.HasSuffix(op.match, " ")
		for from := 0; ; {
			j := strings.Index(lower[from:], op.match)
			if j < 0 {
				break
			}
			j += from
			// The outermost operation named is the one that failed; our verbs only count at
			// the start of a clause.
			if !verb || j == 0 || strings.HasSuffix(lower[:j], ": ") {
				if at < 0 || j < at {
					best, at = op.name, j
				}
				break
			}
			from = j + 1
		}
	}
	return best
}

// causes maps the text of an error to a public cause, first match wins: S3 error codes,
// then HTTP statuses, then network and TLS failures, then our own sentinels.
var causes = []struct {
	match []string
	name  string
}{
	{[]string{"nosuchbucket"}, "bucket does not exist"},
	{[]string{"accessdenied", "access denied", "statuscode: 403", "http 403", " 403 forbidden", "allaccessdisabled"}, "access denied"},
	{[]string{"invalidaccesskeyid", "signaturedoesnotmatch", "expiredtoken", "invalidtoken", "no valid credential", "failed to retrieve credentials", "sharedconfigprofilenotexist"}, "credentials rejected"},
	{[]string{"baddigest", "checksum mismatch", "invaliddigest", "xamzcontentsha256mismatch", "checksum did not match", "invalid checksum"}, "checksum mismatch"},
	{[]string{"slowdown", "statuscode: 503", "http 503", "serviceunavailable", "503 service unavailable"}, "service unavailable"},
	{[]string{"statuscode: 500", "statuscode: 502", "statuscode: 504", "http 500", "http 502", "http 504", "internalerror", "internal server error", "bad gateway", "gateway timeout"}, "server error"},
	{[]string{"nosuchkey", "statuscode: 404", "http 404", "404 not found", "object does not exist", "notfound"}, "not found"},
	{[]string{"connection refused"}, "connection refused"},
	{[]string{"permission denied", "read-only file system"}, "permission denied"},
	{[]string{"no space left on device", "disk quota exceeded"}, "no space left"},
	{[]string{"no such host", "server misbehaving"}, "host not found"},
	{[]string{"network is unreachable", "no route to host", "host is unreachable"}, "network unreachable"},
	{[]string{"x509:", "tls:", "certificate"}, "TLS error"},
	{[]string{"i/o timeout", "deadline exceeded", "timeout", "timed out", "no answer within"}, "timed out"},
	{[]string{"connection reset", "broken pipe"}, "connection reset"},
	{[]string{"unexpected eof", ": eof", "server closed", "connection closed"}, "connection closed"},
	{[]string{"context canceled"}, "cancelled"},
	{[]string{"lock lost", "lock is no longer held"}, "lock lost"},
	{[]string{"changed at the origin", "changed while it was read"}, "the origin changed during the run"},
	{[]string{"is withheld"}, "metadata withheld"},
	{[]string{"not fresh there"}, "a repository is not fresh there"},
}

func causeOf(lower string) string {
	for _, c := range causes {
		for _, m := range c.match {
			if strings.Contains(lower, m) {
				return c.name
			}
		}
	}
	return ""
}
