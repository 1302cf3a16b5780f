package model

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/regionmirror/regionmirror/internal/geo"
)

var (
	// A DNS label: what region names and aliases look like (us-east-1, eu-central).
	labelRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	s3RegionRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)
	profileRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
	bucketRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	repoNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	archRE     = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
)

// reservedNames cannot name a region: the server uses them for itself.
var reservedNames = []string{"origin", "global", "all"}

// ValidateName checks a region name or alias.
func ValidateName(field, name string) error {
	if !labelRE.MatchString(name) {
		if strings.ToLower(name) != name && labelRE.MatchString(strings.ToLower(name)) {
			return invalid(field, name, "must be lower case (try %q)", strings.ToLower(name))
		}
		return invalid(field, name, "must be 1-63 lower-case letters, digits and hyphens, starting and ending with a letter or digit")
	}
	if slices.Contains(reservedNames, name) {
		return invalid(field, name, "is reserved")
	}
	return nil
}

// ValidateRepoName checks a repository name.
func ValidateRepoName(name string) error {
	if !repoNameRE.MatchString(name) {
		return invalid("repository name", name, "must be letters, digits and . _ + - (up to 128), starting with a letter or digit")
	}
	return nil
}

// ValidateBucket applies S3's general-purpose bucket naming rules.
func ValidateBucket(name string) error {
	const field = "bucket"
	switch {
	case len(name) < 3 || len(name) > 63:
		return invalid(field, name, "must be 3 to 63 characters long")
	case !bucketRE.MatchString(name):
		return invalid(field, name, "may contain only lower-case letters, digits, dots and hyphens, and must start and end with a letter or digit")
	case strings.Contains(name, ".."):
		return invalid(field, name, "must not contain two adjacent dots")
	case strings.Contains(name, ".-") || strings.Contains(name, "-."):
		return invalid(field, name, "must not have a dot next to a hyphen")
	}
	if addr, err := netip.ParseAddr(name); err == nil && addr.Is4() {
		return invalid(field, name, "must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return invalid(field, name, "must not start with %q (reserved by S3)", p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return invalid(field, name, "must not end with %q (reserved by S3)", s)
		}
	}
	return nil
}

// ValidateHTTPURL checks an absolute http(s) URL without credentials, query or fragment,
// and returns it without a trailing slash.
func ValidateHTTPURL(field, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input; say only what is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", invalid(field, raw, "not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", invalid(field, raw, "must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return "", invalid(field, raw, "has no host")
	case u.User != nil:
		// Credentials in a URL end up in logs and pages; they belong in a profile.
		return "", &ValidationError{Field: field, Value: redactUserinfo(u), Reason: "must not contain credentials"}
	case u.RawQuery != "" || u.ForceQuery:
		return "", invalid(field, raw, "must not have a query")
	case u.Fragment != "":
		return "", invalid(field, raw, "must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", invalid(field, raw, "port %q out of range", p)
		}
	}
	return strings.TrimRight(raw, "/"), nil
}

func redactUserinfo(u *url.URL) string {
	c := *u
	c.User = url.User("REDACTED")
	return c.String()
}

// CleanRelPath checks a path relative to a root (a repository directory, a key prefix, an
// include prefix): no absolute paths, no "..", no empty or "." segments, no backslashes or
// control characters. It returns the path without leading "./" and trailing slashes;
// "." (the root) becomes "".
func CleanRelPath(field, p string) (string, error) {
	if p == "." || p == "./" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", invalid(field, p, "must be relative, not absolute")
	}
	if strings.ContainsRune(p, '\\') {
		return "", invalid(field, p, "must use / as separator")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "", invalid(field, p, "contains a control character")
		}
	}
	if len(p) > 1024 {
		return "", invalid(field, p, "is longer than 1024 bytes")
	}
	p = strings.TrimPrefix(p, "./")
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "", invalid(field, p, "is empty")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "..":
			return "", invalid(field, p, "must not contain ..")
		case ".", "":
			return "", invalid(field, p, "has an empty or . segment")
		}
	}
	return p, nil
}

// ParseNetblock parses a CIDR and insists it is written in canonical form, so that what
// the operator typed is what the server matches.
func ParseNetblock(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, invalid("netblock", s, "not a CIDR (want e.g. 10.0.0.0/8 or 2001:db8::/32)")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, invalid("netblock", s, "must not have an IPv6 zone")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, invalid("netblock", s, "has host bits set (did you mean %s?)", m)
	}
	return p, nil
}

// Normalize validates r and puts it in canonical form (upper-case country and continent,
// continent derived from the country, defaults filled in). It changes nothing on error.
func (r *Region) Normalize() error {
	n := *r
	if err := ValidateName("region name", n.Name); err != nil {
		return err
	}
	switch n.Kind {
	case KindS3:
		if n.Dir != "" {
			return invalid("dir", n.Dir, "an S3 region has --bucket, not --dir")
		}
		if err := ValidateBucket(n.Bucket); err != nil {
			return err
		}
		if n.Endpoint != "" {
			ep, err := ValidateHTTPURL("endpoint", n.Endpoint)
			if err != nil {
				return err
			}
			n.Endpoint = ep
		}
		if n.S3Region == "" {
			// Custom endpoints rarely care; AWS needs the bucket's region, which is
			// usually the region's own name.
			n.S3Region = "us-east-1"
			if n.Endpoint == "" {
				n.S3Region = n.Name
			}
		}
		if !s3RegionRE.MatchString(n.S3Region) {
			return invalid("s3-region", n.S3Region, "must be lower-case letters, digits and hyphens")
		}
		if n.Credentials != "" && !profileRE.MatchString(n.Credentials) {
			return invalid("credentials", n.Credentials, "must name a shared-config profile (letters, digits, . _ @ + -)")
		}
	case KindFile:
		if n.Bucket != "" || n.Endpoint != "" || n.Credentials != "" {
			return invalid("dir", n.Dir, "a file region takes no --bucket, --endpoint or --credentials")
		}
		if !strings.HasPrefix(n.Dir, "/") {
			return invalid("dir", n.Dir, "must be an absolute path")
		}
		for seg := range strings.SplitSeq(n.Dir, "/") {
			if seg == ".." {
				return invalid("dir", n.Dir, "must not contain ..")
			}
		}
		n.S3Region = ""
	default:
		return invalid("kind", n.Kind, "must be %q (--bucket) or %q (--dir)", KindS3, KindFile)
	}
	if n.Prefix != "" {
		p, err := CleanRelPath("prefix", n.Prefix)
		if err != nil {
			return err
		}
		n.Prefix = p
	}
	if n.PublicURL == "" {
		return invalid("public-url", "", "is required: clients are sent there")
	}
	pu, err := ValidateHTTPURL("public-url", n.PublicURL)
	if err != nil {
		return err
	}
	n.PublicURL = pu

	if n.Country != "" {
		c, ok := geo.NormalizeCountry(n.Country)
		if !ok {
			return invalid("country", n.Country, "not an ISO 3166-1 alpha-2 country code")
		}
		n.Country = c
	}
	if n.Continent != "" {
		c, ok := geo.NormalizeContinent(n.Continent)
		if !ok {
			return invalid("continent", n.Continent, "not a continent code (AF AN AS EU NA OC SA)")
		}
		if n.Country != "" && geo.ContinentOf(n.Country) != c {
			return invalid("continent", n.Continent, "country %s is in %s", n.Country, geo.ContinentOf(n.Country))
		}
		n.Continent = c
	} else if n.Country != "" {
		n.Continent = geo.ContinentOf(n.Country)
	}
	if (n.Latitude == nil) != (n.Longitude == nil) {
		return invalid("coordinates", coordString(n.Latitude, n.Longitude), "give both --lat and --lon, or neither")
	}
	if n.Latitude != nil {
		if lat := *n.Latitude; math.IsNaN(lat) || lat < -90 || lat > 90 {
			return invalid("lat", strconv.FormatFloat(lat, 'g', -1, 64), "must be between -90 and 90")
		}
		if lon := *n.Longitude; math.IsNaN(lon) || lon < -180 || lon > 180 {
			return invalid("lon", strconv.FormatFloat(lon, 'g', -1, 64), "must be between -180 and 180")
		}
	}

	aliases := make([]string, 0, len(n.Aliases))
	for _, a := range n.Aliases {
		if err := ValidateName("alias", a); err != nil {
			return err
		}
		if a == n.Name {
			return invalid("alias", a, "is the region's own name")
		}
		if !slices.Contains(aliases, a) {
			aliases = append(aliases, a)
		}
	}
	n.Aliases = aliases

	var blocks []netip.Prefix
	for _, b := range n.Netblocks {
		if m := b.Masked(); !b.IsValid() || m != b {
			return invalid("netblock", b.String(), "not a canonical CIDR")
		}
		if !slices.Contains(blocks, b) {
			blocks = append(blocks, b)
		}
	}
	n.Netblocks = blocks
	if n.Netblocks == nil {
		n.Netblocks = []netip.Prefix{}
	}

	includes := make([]string, 0, len(n.Includes))
	for _, inc := range n.Includes {
		p, err := CleanRelPath("include", inc)
		if err != nil {
			return err
		}
		if p == "" {
			return invalid("include", inc, "is the whole tree; leave --include out instead")
		}
		if !slices.Contains(includes, p) {
			includes = append(includes, p)
		}
	}
	n.Includes = includes

	if n.Fill == "" {
		n.Fill = FillPush
	}
	if n.Fill != FillPush && n.Fill != FillOnDemand {
		return invalid("fill", n.Fill, "must be %q or %q", FillPush, FillOnDemand)
	}
	pins := make([]string, 0, len(n.Pins))
	for _, pin := range n.Pins {
		p, err := CleanRelPath("pin", pin)
		if err != nil {
			return err
		}
		if p == "" {
			return invalid("pin", pin, "is the whole tree; use --fill push instead")
		}
		if !CarriesPath(n.Includes, p) {
			return invalid("pin", pin, "is outside the region's --include prefixes")
		}
		if !slices.Contains(pins, p) {
			pins = append(pins, p)
		}
	}
	n.Pins = pins
	if n.Fill == FillPush && len(n.Pins) > 0 {
		return invalid("pin", n.Pins[0], "only an on-demand region (--fill on-demand) has pins: a push region gets everything")
	}
	if n.MaxBytes < 0 {
		return invalid("max-bytes", strconv.FormatInt(n.MaxBytes, 10), "must not be negative")
	}
	if n.Fill == FillPush && n.MaxBytes > 0 {
		return invalid("max-bytes", strconv.FormatInt(n.MaxBytes, 10), "only an on-demand region (--fill on-demand) has a cap")
	}

	if n.Weight < 0 || n.Weight > 10000 {
		return invalid("weight", strconv.Itoa(n.Weight), "must be between 0 and 10000")
	}
	if n.Access == "" {
		n.Access = AccessPublic
	}
	if n.Access != AccessPublic && n.Access != AccessLocationOnly {
		return invalid("access", n.Access, "must be %q or %q", AccessPublic, AccessLocationOnly)
	}
	if n.Concurrency < 0 || n.Concurrency > 1024 {
		return invalid("concurrency", strconv.Itoa(n.Concurrency), "must be between 0 (the configured default) and 1024")
	}
	*r = n
	return nil
}

func coordString(lat, lon *float64) string {
	f := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	return fmt.Sprintf("%s,%s", f(lat), f(lon))
}

// Normalize validates a repository and cleans its directory.
// suiteRE is a suite (codename) directory under dists/: one path component.
var suiteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

func (r *Repository) Normalize() error {
	n := *r
	switch n.Kind {
	case "":
		n.Kind = RepoYum
	case RepoYum, RepoApt:
	default:
		return invalid("kind", n.Kind, "must be yum or apt")
	}
	if n.IsApt() {
		if n.Arch == "" {
			n.Arch = AptArch
		}
		if n.Arch != AptArch {
			return invalid("arch", n.Arch, "an APT repository serves every architecture of its suite: leave it out")
		}
		if !suiteRE.MatchString(n.Suite) {
			return invalid("suite", n.Suite, "must be letters, digits and . _ + - (up to 64), starting with a letter or digit (the directory under dists/)")
		}
		switch n.ReleaseFile {
		case "":
			n.ReleaseFile = "InRelease"
		case "InRelease", "Release":
		default:
			return invalid("release file", n.ReleaseFile, "must be InRelease or Release")
		}
	} else if n.Suite != "" || n.Keyring != "" || n.ReleaseFile != "" {
		return invalid("kind", n.Kind, "--suite and --keyring are for APT repositories (--kind apt)")
	}
	if err := ValidateRepoName(n.Name); err != nil {
		return err
	}
	if !archRE.MatchString(n.Arch) {
		return invalid("arch", n.Arch, "must be 1-32 letters, digits or _ (x86_64, aarch64, noarch, source)")
	}
	if n.Directory == "" {
		return invalid("directory", n.Directory, "is required (relative to origin.path; . for the root)")
	}
	d, err := CleanRelPath("directory", n.Directory)
	if err != nil {
		return err
	}
	n.Directory = d
	*r = n
	return nil
}
