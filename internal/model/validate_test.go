package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func f(v float64) *float64 { return &v }

func s3Region() Region {
	return Region{Name: "us-east-1", Kind: KindS3, Bucket: "mirror-us-east-1", PublicURL: "https://mirror-us-east-1.s3.amazonaws.com/"}
}

func TestRegionNormalizeRejects(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *Region)
		field string // the field the error must name
	}{
		{"empty name", func(r *Region) { r.Name = "" }, "region name"},
		{"upper-case name", func(r *Region) { r.Name = "US-East-1" }, "region name"},
		{"name with underscore", func(r *Region) { r.Name = "us_east_1" }, "region name"},
		{"name with dot", func(r *Region) { r.Name = "us.east" }, "region name"},
		{"name starting with hyphen", func(r *Region) { r.Name = "-east" }, "region name"},
		{"name ending with hyphen", func(r *Region) { r.Name = "east-" }, "region name"},
		{"name too long", func(r *Region) { r.Name = strings.Repeat("a", 64) }, "region name"},
		{"name with space", func(r *Region) { r.Name = "us east" }, "region name"},
		{"reserved name", func(r *Region) { r.Name = "origin" }, "region name"},
		{"unicode name", func(r *Region) { r.Name = "zürich" }, "region name"},
		{"bucket too short", func(r *Region) { r.Bucket = "ab" }, "bucket"},
		{"bucket too long", func(r *Region) { r.Bucket = strings.Repeat("b", 64) }, "bucket"},
		{"bucket upper case", func(r *Region) { r.Bucket = "MyBucket" }, "bucket"},
		{"bucket underscore", func(r *Region) { r.Bucket = "my_bucket" }, "bucket"},
		{"bucket adjacent dots", func(r *Region) { r.Bucket = "my..bucket" }, "bucket"},
		{"bucket dot hyphen", func(r *Region) { r.Bucket = "my.-bucket" }, "bucket"},
		{"bucket ends with hyphen", func(r *Region) { r.Bucket = "bucket-" }, "bucket"},
		{"bucket is an IP", func(r *Region) { r.Bucket = "192.168.5.4" }, "bucket"},
		{"bucket xn-- prefix", func(r *Region) { r.Bucket = "xn--bucket" }, "bucket"},
		{"bucket sthree- prefix", func(r *Region) { r.Bucket = "sthree-bucket" }, "bucket"},
		{"bucket -s3alias suffix", func(r *Region) { r.Bucket = "bucket-s3alias" }, "bucket"},
		{"bucket --ol-s3 suffix", func(r *Region) { r.Bucket = "bucket--ol-s3" }, "bucket"},
		{"missing bucket", func(r *Region) { r.Bucket = "" }, "bucket"},
		{"bucket and dir", func(r *Region) { r.Dir = "/srv/x" }, "dir"},
		{"ftp public url", func(r *Region) { r.PublicURL = "ftp://example.org/pub" }, "public-url"},
		{"schemeless public url", func(r *Region) { r.PublicURL = "example.org/pub" }, "public-url"},
		{"public url without host", func(r *Region) { r.PublicURL = "https:///pub" }, "public-url"},
		{"public url with credentials", func(r *Region) { r.PublicURL = "https://u:p@example.org/" }, "public-url"},
		{"public url with query", func(r *Region) { r.PublicURL = "https://example.org/?x=1" }, "public-url"},
		{"public url with fragment", func(r *Region) { r.PublicURL = "https://example.org/#x" }, "public-url"},
		{"public url bad port", func(r *Region) { r.PublicURL = "https://example.org:99999/" }, "public-url"},
		{"public url unparsable", func(r *Region) { r.PublicURL = "https://exa mple.org/%zz" }, "public-url"},
		{"missing public url", func(r *Region) { r.PublicURL = "" }, "public-url"},
		{"endpoint not http", func(r *Region) { r.Endpoint = "s3://minio:9000" }, "endpoint"},
		{"bad s3 region", func(r *Region) { r.S3Region = "US East" }, "s3-region"},
		{"unknown country", func(r *Region) { r.Country = "UK" }, "country"},
		{"three-letter country", func(r *Region) { r.Country = "USA" }, "country"},
		{"unknown continent", func(r *Region) { r.Continent = "XX" }, "continent"},
		{"continent contradicts country", func(r *Region) { r.Country = "DE"; r.Continent = "NA" }, "continent"},
		{"latitude too big", func(r *Region) { r.Latitude, r.Longitude = f(90.5), f(0) }, "lat"},
		{"latitude too small", func(r *Region) { r.Latitude, r.Longitude = f(-91), f(0) }, "lat"},
		{"longitude too big", func(r *Region) { r.Latitude, r.Longitude = f(0), f(180.01) }, "lon"},
		{"longitude too small", func(r *Region) { r.Latitude, r.Longitude = f(0), f(-200) }, "lon"},
		{"latitude without longitude", func(r *Region) { r.Latitude = f(10) }, "coordinates"},
		{"bad alias", func(r *Region) { r.Aliases = []string{"virginia", "Bad Alias"} }, "alias"},
		{"alias equal to name", func(r *Region) { r.Aliases = []string{"us-east-1"} }, "alias"},
		{"non-canonical netblock", func(r *Region) { r.Netblocks = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} }, "netblock"},
		{"include with ..", func(r *Region) { r.Includes = []string{"fedora/../epel"} }, "include"},
		{"absolute include", func(r *Region) { r.Includes = []string{"/fedora"} }, "include"},
		{"include of the whole tree", func(r *Region) { r.Includes = []string{"."} }, "include"},
		{"prefix with ..", func(r *Region) { r.Prefix = "../x" }, "prefix"},
		{"negative weight", func(r *Region) { r.Weight = -1 }, "weight"},
		{"huge weight", func(r *Region) { r.Weight = 10001 }, "weight"},
		{"bad access", func(r *Region) { r.Access = "private" }, "access"},
		{"credentials with spaces", func(r *Region) { r.Credentials = "my profile" }, "credentials"},
		{"negative concurrency", func(r *Region) { r.Concurrency = -2 }, "concurrency"},
		{"unknown kind", func(r *Region) { r.Kind = "gcs" }, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s3Region()
			tc.edit(&r)
			before := r
			err := r.Normalize()
			if err == nil {
				t.Fatalf("Normalize accepted %+v", r)
			}
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %v is %T, want *ValidationError", err, err)
			}
			if ve.Field != tc.field {
				t.Errorf("error names field %q, want %q (%v)", ve.Field, tc.field, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if r.Name != before.Name || r.Bucket != before.Bucket || r.Country != before.Country {
				t.Errorf("Normalize changed the region on error")
			}
		})
	}
}

func TestRegionNormalizeRedactsCredentialsInURL(t *testing.T) {
	r := s3Region()
	r.PublicURL = "https://user:hunter2@example.org/"
	err := r.Normalize()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v leaks the password", err)
	}
}

func TestFileRegionRejects(t *testing.T) {
	for name, r := range map[string]Region{
		"relative dir":      {Name: "local", Kind: KindFile, Dir: "srv/x", PublicURL: "http://127.0.0.1/x"},
		"dir with ..":       {Name: "local", Kind: KindFile, Dir: "/srv/../etc", PublicURL: "http://127.0.0.1/x"},
		"dir with bucket":   {Name: "local", Kind: KindFile, Dir: "/srv/x", Bucket: "abc", PublicURL: "http://127.0.0.1/x"},
		"dir with endpoint": {Name: "local", Kind: KindFile, Dir: "/srv/x", Endpoint: "http://s3", PublicURL: "http://127.0.0.1/x"},
	} {
		if err := r.Normalize(); err == nil || !IsValidation(err) {
			t.Errorf("%s: Normalize() = %v, want a validation error", name, err)
		}
	}
}

func TestRegionNormalizeAccepts(t *testing.T) {
	r := Region{
		Name: "eu-central-1", Kind: KindS3, Bucket: "my.mirror-eu", Endpoint: "http://127.0.0.1:9000/",
		PublicURL: "https://mirror.example.org/eu/", Prefix: "./pub/", Country: "de",
		Latitude: f(50.11), Longitude: f(8.68), Aliases: []string{"frankfurt", "fra", "fra"},
		Netblocks: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")},
		Includes:  []string{"fedora/", "epel"}, Weight: 50,
	}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if r.Country != "DE" || r.Continent != "EU" {
		t.Errorf("country/continent = %s/%s, want DE/EU", r.Country, r.Continent)
	}
	if r.S3Region != "us-east-1" {
		t.Errorf("custom endpoint s3 region = %q, want us-east-1", r.S3Region)
	}
	if r.Endpoint != "http://127.0.0.1:9000" || r.PublicURL != "https://mirror.example.org/eu" {
		t.Errorf("URLs not trimmed: %q %q", r.Endpoint, r.PublicURL)
	}
	if r.Prefix != "pub" || len(r.Includes) != 2 || r.Includes[0] != "fedora" {
		t.Errorf("prefix %q includes %q", r.Prefix, r.Includes)
	}
	if len(r.Aliases) != 2 {
		t.Errorf("duplicate alias kept: %q", r.Aliases)
	}
	if r.Access != AccessPublic {
		t.Errorf("access = %q", r.Access)
	}

	aws := s3Region()
	if err := aws.Normalize(); err != nil || aws.S3Region != "us-east-1" {
		t.Errorf("AWS region s3 region = %q, %v", aws.S3Region, err)
	}
	file := Region{Name: "local", Kind: KindFile, Dir: "/srv/mirror", PublicURL: "http://127.0.0.1:8081/local"}
	if err := file.Normalize(); err != nil {
		t.Errorf("file region: %v", err)
	}
}

func TestRepositoryNormalize(t *testing.T) {
	good := []Repository{
		{Name: "fedora-40", Arch: "x86_64", Directory: "fedora/linux/releases/40/Everything/x86_64/os/"},
		{Name: "epel-9", Arch: "aarch64", Directory: "./epel/9"},
		{Name: "root", Arch: "noarch", Directory: "."},
		{Name: "c++-tools", Arch: "source", Directory: "a b/c+d"},
	}
	for _, r := range good {
		if err := r.Normalize(); err != nil {
			t.Errorf("Normalize(%+v): %v", r, err)
		}
		if strings.HasSuffix(r.Directory, "/") || strings.HasPrefix(r.Directory, ".") {
			t.Errorf("directory not cleaned: %q", r.Directory)
		}
	}
	bad := map[string]Repository{
		"dotdot directory":          {Name: "x", Arch: "x86_64", Directory: "fedora/../../etc"},
		"leading dotdot":            {Name: "x", Arch: "x86_64", Directory: "../etc"},
		"absolute directory":        {Name: "x", Arch: "x86_64", Directory: "/srv/pub/fedora"},
		"empty directory":           {Name: "x", Arch: "x86_64", Directory: ""},
		"double slash":              {Name: "x", Arch: "x86_64", Directory: "a//b"},
		"backslash":                 {Name: "x", Arch: "x86_64", Directory: `a\b`},
		"control character":         {Name: "x", Arch: "x86_64", Directory: "a\x00b"},
		"empty name":                {Name: "", Arch: "x86_64", Directory: "a"},
		"name with slash":           {Name: "a/b", Arch: "x86_64", Directory: "a"},
		"name with query character": {Name: "a&arch=b", Arch: "x86_64", Directory: "a"},
		"arch with hyphen":          {Name: "a", Arch: "x86-64", Directory: "a"},
		"empty arch":                {Name: "a", Arch: "", Directory: "a"},
	}
	for name, r := range bad {
		if err := r.Normalize(); err == nil || !IsValidation(err) {
			t.Errorf("%s: Normalize() = %v, want a validation error", name, err)
		}
	}
}

func TestParseNetblock(t *testing.T) {
	for _, s := range []string{"10.0.0.0/8", "2001:db8::/32", " 192.0.2.0/24"} {
		if _, err := ParseNetblock(s); err != nil {
			t.Errorf("ParseNetblock(%q): %v", s, err)
		}
	}
	for _, s := range []string{"10.0.0.1/8", "10.0.0.0", "10.0.0.0/33", "banana", "fe80::/10%eth0", ""} {
		if _, err := ParseNetblock(s); err == nil {
			t.Errorf("ParseNetblock(%q) accepted", s)
		}
	}
	if _, err := ParseNetblock("10.0.0.1/8"); err == nil || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("host-bits error does not suggest the fix: %v", err)
	}
}

func TestRegionURL(t *testing.T) {
	r := Region{PublicURL: "https://b.example.org", Prefix: "pub"}
	if got := r.URL("a/libc++ 1/ü.rpm"); got != "https://b.example.org/pub/a/libc%2B%2B%201/%C3%BC.rpm" {
		t.Errorf("URL = %s", got)
	}
	r.Prefix = ""
	if got := r.URL("x/y?z#w"); got != "https://b.example.org/x/y%3Fz%23w" {
		t.Errorf("URL = %s", got)
	}
}

func TestNormalizeFill(t *testing.T) {
	base := func() Region {
		return Region{Name: "od", Kind: KindS3, Bucket: "od-bucket", PublicURL: "https://od.example.org", Weight: 100}
	}
	r := base()
	if err := r.Normalize(); err != nil || r.Fill != FillPush || len(r.Pins) != 0 {
		t.Fatalf("default fill: %q %v %v", r.Fill, r.Pins, err)
	}
	for _, c := range []struct {
		edit  func(*Region)
		field string
	}{
		{func(r *Region) { r.Fill = "lazy" }, "fill"},
		{func(r *Region) { r.Pins = []string{"f/hot"} }, "pin"},
		{func(r *Region) { r.MaxBytes = 1 << 30 }, "max-bytes"},
		{func(r *Region) { r.Fill, r.Pins = FillOnDemand, []string{"../x"} }, "pin"},
		{func(r *Region) { r.Fill, r.Includes, r.Pins = FillOnDemand, []string{"f"}, []string{"g/hot"} }, "pin"},
		{func(r *Region) { r.Fill, r.MaxBytes = FillOnDemand, -1 }, "max-bytes"},
	} {
		r := base()
		c.edit(&r)
		var v *ValidationError
		if err := r.Normalize(); !errors.As(err, &v) || v.Field != c.field {
			t.Errorf("%+v: Normalize = %v, want a %s error", r, err, c.field)
		}
	}
	r = base()
	r.Fill, r.Pins, r.MaxBytes = FillOnDemand, []string{"f/hot/", "f/hot"}, 1<<30
	if err := r.Normalize(); err != nil || len(r.Pins) != 1 || r.Pins[0] != "f/hot" {
		t.Fatalf("on-demand with pins: %v %v", r.Pins, err)
	}
}
