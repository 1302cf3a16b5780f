package fill

import (
	"math"
	"sort"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Candidate is a region that may serve as the source of a copy, with what the database
// says of it.
type Candidate struct {
	Region *model.Region
	// Healthy: the region's health is not down (never probed counts as healthy).
	Healthy bool
	// Object is the region's record of the file (nil: none).
	Object *model.RegionObject
}

// Source is the choice of where a copy comes from: Region nil means the origin. Why says,
// for logs, why that region or why the origin.
type Source struct {
	Region *model.Region
	Why    string
}

// SameService reports whether a server-side copy from src into dst can be made: both are
// S3 regions on the same endpoint and signing region, reached with the same credentials
// profile.
func SameService(dst, src *model.Region) bool {
	return dst.Kind == model.KindS3 && src.Kind == model.KindS3 && dst.Endpoint == src.Endpoint &&
		dst.S3Region == src.S3Region && dst.Credentials == src.Credentials
}

// ChooseSource picks the source of a copy of file f into dst: the nearest enabled, healthy
// region that holds f verified (present with f's size and SHA-256) on the same S3 service,
// nearest by coordinates, then same country, then same continent, then higher weight,
// then name; else the origin (a file region as destination always copies from the origin).
func ChooseSource(dst *model.Region, f *model.File, cands []Candidate) Source {
	if dst.Kind != model.KindS3 {
		return Source{Why: "destination is not S3"}
	}
	type ranked struct {
		r    *model.Region
		dist float64
	}
	var ok []ranked
	for _, c := range cands {
		r := c.Region
		switch {
		case r == nil || r.ID == dst.ID || !r.Enabled || !c.Healthy || !SameService(dst, r):
			continue
		case !c.Object.Holds(f):
			continue
		}
		d := math.Inf(1)
		if dst.Latitude != nil && dst.Longitude != nil && r.Latitude != nil && r.Longitude != nil {
			d = geo.DistanceKm(*dst.Latitude, *dst.Longitude, *r.Latitude, *r.Longitude)
		}
		ok = append(ok, ranked{r, d})
	}
	if len(ok) == 0 {
		return Source{Why: "no region of the same S3 service holds it verified"}
	}
	same := func(a, b string) bool { return a != "" && a == b }
	sort.SliceStable(ok, func(i, j int) bool {
		a, b := ok[i], ok[j]
		if a.dist != b.dist {
			return a.dist < b.dist
		}
		if ca, cb := same(a.r.Country, dst.Country), same(b.r.Country, dst.Country); ca != cb {
			return ca
		}
		if ca, cb := same(a.r.Continent, dst.Continent), same(b.r.Continent, dst.Continent); ca != cb {
			return ca
		}
		if a.r.Weight != b.r.Weight {
			return a.r.Weight > b.r.Weight
		}
		return a.r.Name < b.r.Name
	})
	why := "same S3 service, verified"
	if !math.IsInf(ok[0].dist, 1) {
		why = "nearest of the same S3 service, verified"
	}
	return Source{Region: ok[0].r, Why: why}
}
